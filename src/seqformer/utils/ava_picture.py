"""A still picture of action detections: a grid of keyframes with each detected actor's box and actions.

Stand-in until the video renderer of the video-inference work lands (it draws the same rows over whole
clips); :func:`render_ava_keyframes` takes the official detection rows, so swapping it is one call.
A detection row is one (box, action, score); rows sharing a box are one actor, drawn once with every action
scoring at least ``score_threshold`` in its label.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from seqformer.data.video_reader import JpegFrameSource
from seqformer.utils.visualize import PALETTE


def group_actors(rows: list[tuple], score_threshold: float) -> dict[tuple[str, int], list[tuple]]:
    """``{(video, second): [(box, [(action, score), ...]), ...]}``: one entry per box with an action above
    ``score_threshold``, actors ordered by their best score, actions by score."""
    boxes: dict[tuple[str, int], dict[tuple, list]] = defaultdict(lambda: defaultdict(list))
    for video, second, x1, y1, x2, y2, action, score in rows:
        if score >= score_threshold:
            boxes[(video, int(second))][(x1, y1, x2, y2)].append((int(action), float(score)))
    return {key: sorted(((box, sorted(acts, key=lambda a: -a[1])) for box, acts in per_box.items()),
                        key=lambda item: -item[1][0][1])
            for key, per_box in boxes.items()}


def render_ava_keyframes(frames_root: str | Path, frame_pattern: str, fps: float, start_second: float,
                         rows: list[tuple], action_names: dict[int, str], out_path: str | Path,
                         score_threshold: float = 0.5, max_keyframes: int = 6, scale: int = 3,
                         columns: int = 3) -> Path:
    """PNG grid of up to ``max_keyframes`` keyframes (those with the most detected actors first)."""
    actors = group_actors(rows, score_threshold)
    all_keys = sorted({(r[0], int(r[1])) for r in rows})
    keys = sorted(all_keys, key=lambda k: (-len(actors.get(k, [])), k))[:max_keyframes]
    source = JpegFrameSource(frames_root, frame_pattern)
    tiles = []
    for video, second in sorted(keys):
        frame = source.read_frame(video, round((second - start_second) * fps))
        image = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        w, h = image.size
        found = actors.get((video, second), [])
        for k, ((x1, y1, x2, y2), acts) in enumerate(found):
            colour = PALETTE[k % len(PALETTE)]
            draw.rectangle([x1 * w, y1 * h, x2 * w, y2 * h], outline=colour, width=2)
            for j, (action, score) in enumerate(acts[:3]):
                text = f"{action_names.get(action, action)} {score:.2f}"
                y = y1 * h + 2 + 11 * j
                draw.rectangle([x1 * w + 2, y, x1 * w + 4 + 6 * len(text), y + 10], fill=(0, 0, 0))
                draw.text((x1 * w + 3, y - 1), text, fill=colour)
        caption = f"{video} @ {second}s: " + (f"{len(found)} actor(s)" if found
                                              else f"nothing scored >= {score_threshold:.2f}")
        draw.rectangle([0, h - 12, 6 * len(caption) + 4, h], fill=(0, 0, 0))
        draw.text((2, h - 12), caption, fill=(255, 255, 255))
        tiles.append(image)
    if not tiles:
        raise ValueError("no detection rows to render")
    tw, th = tiles[0].size
    cols = min(columns, len(tiles))
    legend_h = 16
    sheet = Image.new("RGB", (cols * tw, legend_h + th * ((len(tiles) + cols - 1) // cols)), (255, 255, 255))
    ImageDraw.Draw(sheet).text((4, 2), f"actions scoring >= {score_threshold:.2f}; boxes: detected actors",
                               fill=(0, 0, 0))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * tw, legend_h + (i // cols) * th))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
