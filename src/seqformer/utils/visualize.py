"""Render predictions over video frames (animated GIF) so a person can look at what a model does."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image, ImageDraw

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def overlay_frame(image: Image.Image, instances: list[tuple[int, str, np.ndarray]], alpha: float = 0.5) -> Image.Image:
    """Blend each (instance id, label, HxW mask) onto ``image`` with a per-id colour and an id/label tag."""
    out = np.asarray(image.convert("RGB")).astype(np.float32)
    tags = []
    for inst_id, label, mask in instances:
        colour = np.array(PALETTE[inst_id % len(PALETTE)], dtype=np.float32)
        m = mask.astype(bool)
        out[m] = (1 - alpha) * out[m] + alpha * colour
        if m.any():
            ys, xs = np.nonzero(m)
            tags.append((int(xs.min()), max(int(ys.min()) - 10, 0), f"#{inst_id} {label}", tuple(int(c) for c in colour)))
    frame = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(frame)
    for x, y, text, colour in tags:
        draw.rectangle([x, y, x + 6 * len(text), y + 10], fill=(0, 0, 0))
        draw.text((x + 1, y), text, fill=colour)
    return frame


def render_vis_gif(image_dir: str | Path, video: dict, results: list[dict], categories: dict[int, str],
                   out_path: str | Path, score_threshold: float = 0.3, fps: float = 4.0) -> Path:
    """Animated GIF of one video's results (``video``: a YouTube-VIS ``videos`` entry)."""
    preds = [r for r in results if r["video_id"] == video["id"] and r["score"] >= score_threshold
             and r["segmentations"][0] is not None]
    frames = []
    for t, name in enumerate(video["file_names"]):
        with Image.open(Path(image_dir) / name) as im:
            image = im.convert("RGB")
        instances = [(i, f"{categories.get(r['category_id'], r['category_id'])} {r['score']:.2f}",
                      mask_util.decode(r["segmentations"][t])) for i, r in enumerate(preds)]
        frames.append(overlay_frame(image, instances))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return out
