"""Draw predictions on frames and write them as H.264 video: one renderer for ``infer`` and the demos.

The API is three calls:

* :func:`instance_colour` -- the colour of an instance/actor id, the same in every frame, video and picture;
* :func:`render_frame` -- a ``uint8 [H,W,3]`` frame with :class:`Drawable` items (a mask and/or a box, a
  label such as ``"#3 person 0.87"`` and extra lines such as top-k actions), an optional legend line
  (e.g. the score threshold) and an optional upscale (labels stay readable on small frames);
* :class:`VideoWriter` -- H.264 ``.mp4`` through PyAV, written under a temporary name and renamed when
  closed without error, so an interrupted run never leaves a broken file at the final name.

:func:`atomic_output` gives the same guarantee to any other output file (JSON, CSV, PNG).
"""
from __future__ import annotations

import colorsys
import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def instance_colour(instance_id: int) -> tuple[int, int, int]:
    """A fixed colour per id: the palette first, then golden-ratio hues (neighbouring ids never look alike)."""
    if 0 <= instance_id < len(PALETTE):
        return PALETTE[instance_id]
    hue = (instance_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass
class Drawable:
    """One thing to draw: ``mask`` (bool ``[H,W]`` at the frame's size) and/or ``box`` (pixel xyxy)."""
    id: int
    label: str
    mask: np.ndarray | None = None
    box: Sequence[float] | None = None
    lines: Sequence[str] = field(default_factory=tuple)


def fit_size(height: int, width: int, max_side: int | None, upscale: float = 1.0) -> tuple[int, int]:
    """(h, w) times ``upscale``, then scaled down so the long side is at most ``max_side`` (None: no cap)."""
    s = upscale
    if max_side and max(height, width) * s > max_side:
        s = max_side / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def render_frame(frame: np.ndarray, items: Sequence[Drawable], legend: str | None = None, alpha: float = 0.5,
                 scale: float = 1.0, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """``frame`` with every item drawn (masks blended at ``alpha``, boxes, labels), resized first to
    ``out_hw`` or by ``scale``; masks and boxes are given at the input frame's size."""
    h, w = frame.shape[:2]
    oh, ow = out_hw or (max(1, round(h * scale)), max(1, round(w * scale)))
    image = Image.fromarray(frame)
    if (oh, ow) != (h, w):
        image = image.resize((ow, oh), Image.BILINEAR)
    out = np.asarray(image).astype(np.float32)
    sy, sx = oh / h, ow / w
    tags = []
    for item in items:
        colour = np.array(instance_colour(item.id), np.float32)
        anchor = None
        if item.mask is not None:
            m = item.mask.astype(bool)
            if m.shape != (oh, ow):
                m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((ow, oh), Image.NEAREST)) > 127
            ys, xs = np.nonzero(m)
            if len(ys):
                out[ys, xs] = (1 - alpha) * out[ys, xs] + alpha * colour
                anchor = (int(xs.min()), int(ys.min()))
        if item.box is not None:
            x1, y1, x2, y2 = item.box
            anchor = (round(x1 * sx), round(y1 * sy))
        tags.append((item, anchor))
    canvas = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    size = max(8, min(oh, ow) // 28)
    font = _font(size)
    for item, _ in tags:
        if item.box is not None:
            x1, y1, x2, y2 = item.box
            draw.rectangle([x1 * sx, y1 * sy, x2 * sx, y2 * sy], outline=instance_colour(item.id), width=max(1, size // 6))
    taken = [_label(draw, (0, 0), [legend], (255, 255, 255), font, size, (ow, oh), below=True)] if legend else []
    for item, anchor in tags:
        if anchor is not None:
            taken.append(_label(draw, anchor, [item.label, *item.lines], instance_colour(item.id), font, size, (ow, oh),
                                avoid=taken))
    return np.asarray(canvas)


def _label(draw: ImageDraw.ImageDraw, anchor: tuple[int, int], lines: list[str], colour, font, size: int,
           frame_wh: tuple[int, int], below: bool = False,
           avoid: Sequence[tuple[int, int, int, int]] = ()) -> tuple[int, int, int, int]:
    """Text lines on a black box just above ``anchor`` (below it when there is no room), kept in the frame.

    The box moves down (then up) in steps of one line until it overlaps none of ``avoid`` (the legend and
    the labels drawn before it): on small frames neighbouring objects' tags would otherwise cover each
    other and the legend.  Returns the box used, ``(x1, y1, x2, y2)`` exclusive."""
    line_h = size + 2
    width = max(int(draw.textlength(line, font=font)) for line in lines) + 4
    height = line_h * len(lines) + 2
    x = min(max(anchor[0], 0), max(frame_wh[0] - width, 0))
    lowest = max(frame_wh[1] - height, 0)
    first = min(anchor[1] if below or anchor[1] - height < 0 else anchor[1] - height, lowest)
    candidates = [first, min(anchor[1], lowest), *range(first + line_h, lowest + 1, line_h),
                  *range(first - line_h, -1, -line_h)]

    def free(y: int) -> bool:
        return all(x + width <= a1 or a2 <= x or y + height <= b1 or b2 <= y for a1, b1, a2, b2 in avoid)

    y = next((c for c in candidates if free(c)), first)
    draw.rectangle([x, y, x + width - 1, y + height - 1], fill=(0, 0, 0))  # inclusive corners
    for i, line in enumerate(lines):
        draw.text((x + 2, y + 1 + i * line_h), line, fill=colour, font=font)
    return x, y, x + width, y + height


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); rename it to ``path`` only on success."""
    final = Path(path)
    tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


class VideoWriter:
    """H.264 (yuv420p) ``.mp4`` writer; frames of odd size are padded by one edge row/column
    (4:2:0 needs even sizes).  Use as a context manager: the file appears at ``path`` only when the
    block ends without an exception."""

    def __init__(self, path: str | Path, fps: float, height: int, width: int, crf: int = 20) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.height, self.width = height + height % 2, width + width % 2
        self.crf = crf
        self.frames = 0
        self._atomic = atomic_output(self.path)

    def __enter__(self) -> "VideoWriter":
        import av

        self._tmp = self._atomic.__enter__()
        self._container = av.open(str(self._tmp), "w")
        self._stream = self._container.add_stream("libx264", rate=self.fps,
                                                  options={"crf": str(self.crf), "preset": "veryfast"})
        self._stream.height, self._stream.width = self.height, self.width
        self._stream.pix_fmt = "yuv420p"
        return self

    def write(self, frame: np.ndarray) -> None:
        import av

        h, w = frame.shape[:2]
        if (h, w) != (self.height, self.width):
            frame = np.pad(frame, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._container.mux(self._stream.encode())
        finally:
            self._container.close()
        if exc_type is None:
            return bool(self._atomic.__exit__(None, None, None))
        return bool(self._atomic.__exit__(exc_type, exc, tb))
