"""Render predictions over video frames (animated GIF) so a person can look at what a model does.

A YouTube-VIS results file lists the top (query, class) pairs of a video, so one predicted instance (one
query, one mask track) can appear several times with different categories.  The GIF draws each predicted
instance once, under one id that does not change from frame to frame or with the threshold: instances are
the distinct mask tracks, numbered by their best score over all results of the video, and each is labelled
with its best-scoring category.  The legend names the score threshold; a video where nothing passes it
says so on every frame instead of looking like a clean miss-free video.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image, ImageDraw

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def predicted_instances(results: list[dict], video_id: int) -> list[dict]:
    """One entry per distinct mask track of ``video_id``: ``{"id", "score", "category_id", "segmentations"}``,
    ids 1, 2, ... in order of best score (results repeating a track under other categories are folded in)."""
    tracks: dict[str, dict] = {}
    for r in sorted((r for r in results if r["video_id"] == video_id), key=lambda r: -r["score"]):
        key = json.dumps(r["segmentations"], sort_keys=True)
        if key not in tracks:
            tracks[key] = {"id": len(tracks) + 1, "score": r["score"], "category_id": r["category_id"],
                           "segmentations": r["segmentations"]}
    return list(tracks.values())


def overlay_frame(image: Image.Image, instances: list[tuple[int, str, np.ndarray]], alpha: float = 0.5) -> Image.Image:
    """Blend each (instance id, label, HxW mask) onto ``image`` with a per-id colour and a ``#id`` tag at the
    mask's centre (labels belong in the legend: on small frames they would cover each other)."""
    out = np.asarray(image.convert("RGB")).astype(np.float32)
    tags = []
    for inst_id, _label, mask in instances:
        colour = np.array(PALETTE[inst_id % len(PALETTE)], dtype=np.float32)
        m = mask.astype(bool)
        out[m] = (1 - alpha) * out[m] + alpha * colour
        if m.any():
            ys, xs = np.nonzero(m)
            tags.append((int(xs.mean()), int(ys.mean()), f"#{inst_id}", tuple(int(c) for c in colour)))
    frame = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(frame)
    for x, y, text, colour in tags:
        x0, y0 = max(x - 3 * len(text), 0), max(y - 5, 0)
        draw.rectangle([x0, y0, x0 + 6 * len(text) + 2, y0 + 10], fill=(0, 0, 0))
        draw.text((x0 + 1, y0 - 1), text, fill=colour)
    return frame


def _legend(width: int, lines: list[tuple[str, tuple[int, int, int]]]) -> Image.Image:
    panel = Image.new("RGB", (width, 4 + 12 * len(lines)), (0, 0, 0))
    draw = ImageDraw.Draw(panel)
    for i, (text, colour) in enumerate(lines):
        draw.text((4, 2 + 12 * i), text, fill=colour)
    return panel


def legend_lines(title: str, instances: list[dict], score_threshold: float, categories: dict[int, str]
                 ) -> list[tuple[str, tuple[int, int, int]]]:
    """(text, colour) lines under the frames: the threshold, one line per shown instance, or a note that
    nothing passes the threshold (with the best score, so a near miss is told from no prediction)."""
    lines = [(f"{title}: predictions scoring >= {score_threshold:.2f}", (255, 255, 255))]
    shown = [i for i in instances if i["score"] >= score_threshold]
    lines += [(f"#{i['id']} {categories.get(i['category_id'], i['category_id'])} {i['score']:.2f}",
               PALETTE[i["id"] % len(PALETTE)]) for i in shown]
    if not shown:
        best = f"best score {instances[0]['score']:.2f}" if instances else "no predictions"
        lines.append((f"nothing passes the threshold ({best})", (255, 120, 120)))
    return lines


def render_vis_gif(image_dir: str | Path, video: dict, results: list[dict], categories: dict[int, str],
                   out_path: str | Path, score_threshold: float = 0.3, fps: float = 4.0, scale: int = 1) -> Path:
    """Animated GIF of one video's results (``video``: a YouTube-VIS ``videos`` entry), frames upscaled
    ``scale`` times (nearest neighbour) so that small frames stay readable, a legend below them."""
    instances = predicted_instances(results, video["id"])
    shown = [i for i in instances if i["score"] >= score_threshold]
    legend = legend_lines(video["file_names"][0].split("/")[0], instances, score_threshold, categories)
    frames = []
    for t, name in enumerate(video["file_names"]):
        with Image.open(Path(image_dir) / name) as im:
            image = im.convert("RGB")
        masks = []
        for inst in shown:
            seg = inst["segmentations"][t]
            if seg is not None:
                masks.append((inst["id"], "", mask_util.decode(seg)))
        if scale > 1:
            image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
            masks = [(i, label, np.kron(m, np.ones((scale, scale), dtype=m.dtype))) for i, label, m in masks]
        frame = overlay_frame(image, masks)
        panel = _legend(frame.width, legend)
        sheet = Image.new("RGB", (frame.width, frame.height + panel.height))
        sheet.paste(frame, (0, 0))
        sheet.paste(panel, (0, frame.height))
        frames.append(sheet)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return out
