"""Synthetic YouTube-VIS-format dataset: textured shapes moving over a cluttered background.

Meant for smoke tests and CPU demos: objects are large, each category has its own colour and texture (red
shaded disc, green striped square, blue checkered triangle, yellow ring, magenta dotted star), and the hard
parts of real VIS data are present: motion, scaling, rotation, mutual occlusion (z-order), objects entering
and leaving the frame (``null`` segmentation/bbox/area while absent or hidden).  Layout follows the official
release: ``<out>/{train,valid}/JPEGImages/<video>/<frame>.jpg`` and
``<out>/annotations/instances_{train,valid}_sub.json`` (the valid file keeps ground truth), plus a ``test``
split laid out like ``valid`` when ``num_test_videos > 0`` (select checkpoints on valid, report on test).

Masks are rasterised with pycocotools' polygon rasteriser, so a frame stored as a polygon decodes exactly to the
rendered mask.  Train annotations cycle frame by frame through polygon (used when the shape is fully visible and
has no hole, else compressed RLE), uncompressed RLE (list counts) and compressed RLE (string counts); valid
annotations use compressed RLE.  Every video uses its
own ``numpy`` generator seeded by ``(seed, split, index)``, so the output is a pure function of the arguments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from seqformer.data.ytvis_format import encode_rle, save_ytvis_json
from seqformer.errors import SeqFormerError

SYNTH_CATEGORIES = [
    {"id": 1, "name": "disc", "supercategory": "shape"},
    {"id": 2, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
    {"id": 4, "name": "ring", "supercategory": "shape"},
    {"id": 5, "name": "star", "supercategory": "shape"},
]
CATEGORY_COLOURS = {1: (225, 45, 40), 2: (40, 185, 65), 3: (45, 85, 230), 4: (240, 205, 30), 5: (205, 50, 205)}
MIN_VISIBLE_AREA = 16  # pixels; smaller remnants are annotated as absent
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}  # adding a split leaves the others' videos unchanged


def _regular_polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[float]:
    """Flat [x0, y0, x1, y1, ...] polygon whose vertex k lies at radius radii[k] (star = alternating radii)."""
    n = len(radii)
    pts = []
    for k, r in enumerate(radii):
        a = angle + 2 * math.pi * k / n
        pts += [round(cx + r * math.cos(a), 2), round(cy + r * math.sin(a), 2)]
    return pts  # rounded as written to json, so rendering and decoding rasterise the same polygon


def shape_polygons(category: int, cx: float, cy: float, r: float, angle: float) -> tuple[list[float], list[float] | None]:
    """Outer polygon and optional hole polygon of a category's shape (radius ``r`` = circumradius)."""
    if category == 1:
        return _regular_polygon(cx, cy, [r] * 32, angle), None
    if category == 2:
        return _regular_polygon(cx, cy, [r] * 4, angle + math.pi / 4), None
    if category == 3:
        return _regular_polygon(cx, cy, [r] * 3, angle - math.pi / 2), None
    if category == 4:
        return _regular_polygon(cx, cy, [r] * 32, angle), _regular_polygon(cx, cy, [0.55 * r] * 32, angle)
    return _regular_polygon(cx, cy, [r, 0.45 * r] * 5, angle - math.pi / 2), None


def rasterise(poly: list[float], h: int, w: int) -> np.ndarray:
    return mask_utils.decode(mask_utils.frPyObjects([poly], h, w))[..., 0].astype(bool)


def _texture(category: int, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Brightness factor in object coordinates (u, v), so the texture moves and rotates with the object."""
    if category == 1:
        return 1.0 - 0.4 * np.clip((u * u + v * v) / (r * r), 0, 1)
    if category == 2:
        return 0.7 + 0.3 * (np.sin(2 * math.pi * u / max(r / 2, 2)) > 0)
    if category == 3:
        k = max(r / 3, 2)
        return 0.65 + 0.35 * ((np.floor(u / k) + np.floor(v / k)) % 2)
    if category == 4:
        return np.full_like(u, 0.95)
    f = 2 * math.pi / max(r / 2.5, 2)
    return 1.0 - 0.4 * ((np.sin(u * f) * np.sin(v * f)) > 0.4)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-saturation smooth noise plus grey clutter rectangles: textured but never mistaken for an object."""
    coarse = rng.uniform(70, 170, size=(max(h // 16, 2), max(w // 16, 2), 1)) + rng.uniform(-12, 12, size=(1, 1, 3))
    base = np.asarray(Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                      dtype=np.float32)
    for _ in range(rng.integers(4, 9)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(w // 16, w // 4), y0 + rng.integers(h // 16, h // 4)
        base[y0:y1, x0:x1] = base[y0:y1, x0:x1] * 0.5 + rng.uniform(60, 190) * 0.5
    return base


def _object_tracks(rng: np.random.Generator, num_objects: int, frames: int, h: int, w: int) -> list[dict]:
    """Per-object category, radius/position/angle per frame.  Object 0 stays in view (bouncing); the others
    stay, enter from a side or leave through one."""
    tracks = []
    for k in range(num_objects):
        r0 = rng.uniform(0.13, 0.22) * min(h, w)
        growth = rng.uniform(-0.015, 0.02)
        mode = "stay" if k == 0 else rng.choice(["stay", "enter", "leave"], p=[0.4, 0.3, 0.3])
        side = rng.choice([-1.0, 1.0])
        cross = (w / 2 + 1.3 * r0) / (0.6 * frames)
        y = rng.uniform(r0, h - r0)
        if mode == "enter":
            x, vx = (w / 2 - side * (w / 2 + 1.3 * r0)), side * cross
        elif mode == "leave":
            x, vx = rng.uniform(0.35 * w, 0.65 * w), side * cross
        else:
            x, vx = rng.uniform(r0, w - r0), rng.uniform(-1, 1) * 0.02 * w
        vy = rng.uniform(-1, 1) * 0.02 * h
        angle, spin = rng.uniform(0, 2 * math.pi), rng.uniform(-0.12, 0.12)
        states = []
        for t in range(frames):
            r = r0 * (1 + growth * t)
            states.append((x, y, r, angle + spin * t))
            x, y = x + vx, y + vy
            if mode == "stay" and not r <= x <= w - r:
                vx = -vx
            if not r <= y <= h - r:
                vy = -vy
        tracks.append({"category": int(rng.integers(1, 6)), "states": states, "z": rng.random()})
    return tracks


def render_video(rng: np.random.Generator, frames: int, h: int, w: int, max_objects: int
                 ) -> tuple[list[np.ndarray], list[dict]]:
    """Frames (uint8 HxWx3) and per-object ``{"category", "visible": [mask|None], "shape": [mask|None],
    "polygon": [poly]}``; ``shape`` is the unoccluded rasterised shape (None for rings, which have holes)."""
    tracks = _object_tracks(rng, int(rng.integers(1, max_objects + 1)), frames, h, w)
    order = sorted(range(len(tracks)), key=lambda i: tracks[i]["z"])  # back to front
    background = _background(rng, h, w)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    objects = [{"category": tr["category"], "visible": [], "shape": [], "polygon": []} for tr in tracks]
    images = []
    for t in range(frames):
        img = background + rng.normal(0, 3, size=background.shape).astype(np.float32)
        covered = np.zeros((h, w), dtype=bool)
        visible_masks: dict[int, np.ndarray] = {}
        for i in reversed(order):  # front to back, to know what hides what
            cx, cy, r, angle = tracks[i]["states"][t]
            outer, hole = shape_polygons(tracks[i]["category"], cx, cy, r, angle)
            shape = rasterise(outer, h, w)
            if hole is not None:
                shape &= ~rasterise(hole, h, w)
            visible_masks[i] = shape & ~covered
            covered |= shape
            objects[i]["shape"].append(shape if hole is None else None)
            objects[i]["polygon"].append(outer)
        for i in order:  # paint back to front
            cx, cy, r, angle = tracks[i]["states"][t]
            m = visible_masks[i]
            if not m.any():
                continue
            u = (xs[m] - cx) * math.cos(angle) + (ys[m] - cy) * math.sin(angle)
            v = -(xs[m] - cx) * math.sin(angle) + (ys[m] - cy) * math.cos(angle)
            shade = _texture(tracks[i]["category"], u, v, r)[:, None]
            img[m] = np.asarray(CATEGORY_COLOURS[tracks[i]["category"]], dtype=np.float32) * shade
        for i, obj in enumerate(objects):
            m = visible_masks[i]
            obj["visible"].append(m if m.sum() >= MIN_VISIBLE_AREA else None)
        images.append(np.clip(img, 0, 255).astype(np.uint8))
    return images, objects


def _encode_frame(mask: np.ndarray, shape: np.ndarray | None, poly: list[float], mode: str) -> dict | list:
    if mode == "polygon" and shape is not None and np.array_equal(mask, shape):
        return [list(poly)]
    return encode_rle(mask, compressed=(mode != "rle_list"))


def _write_split(out: Path, split: str, num_videos: int, frames: int, h: int, w: int, seed: int,
                 max_objects: int, jpeg_quality: int) -> Path:
    videos, annotations = [], []
    modes = ["polygon", "rle_list", "rle_str"] if split == "train" else ["rle_str"]
    for idx in range(num_videos):
        rng = np.random.default_rng([seed, SPLIT_CODES[split], idx])
        images, objects = render_video(rng, frames, h, w, max_objects)
        name = f"{split[:2]}{idx:08d}"
        file_names = [f"{name}/{5 * t:05d}.jpg" for t in range(frames)]
        (out / split / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
        for img, fname in zip(images, file_names):
            Image.fromarray(img).save(out / split / "JPEGImages" / fname, quality=jpeg_quality)
        video_id = idx + 1
        videos.append({"id": video_id, "width": w, "height": h, "length": frames, "file_names": file_names})
        for obj in objects:
            if all(m is None for m in obj["visible"]):
                continue
            segs, boxes, areas = [], [], []
            for t, (mask, shape, poly) in enumerate(zip(obj["visible"], obj["shape"], obj["polygon"])):
                if mask is None:
                    segs.append(None)
                    boxes.append(None)
                    areas.append(None)
                    continue
                rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                boxes.append([int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])])
                areas.append(int(mask.sum()))
                segs.append(_encode_frame(mask, shape, poly, modes[(len(annotations) + t) % len(modes)]))
            annotations.append({"id": len(annotations) + 1, "video_id": video_id, "category_id": obj["category"],
                                "iscrowd": 0,
                                "segmentations": segs, "bboxes": boxes, "areas": areas})
    ann_path = out / "annotations" / f"instances_{split}_sub.json"
    save_ytvis_json({"info": {"description": f"synthetic YouTube-VIS-format {split} set", "seed": seed},
                     "licenses": [], "videos": videos, "categories": SYNTH_CATEGORIES,
                     "annotations": annotations}, ann_path)
    return ann_path


@dataclass
class SynthVisConfig:
    """What ``seqformer synth vis`` writes (the dataset is a pure function of these values)."""

    num_train_videos: int = 24
    num_val_videos: int = 6
    num_test_videos: int = 0  # a third split, for reporting when valid selects the checkpoint
    num_frames: int = 12  # frames per video
    height: int = 128
    width: int = 192
    max_objects: int = 3  # objects per video are drawn in 1..max_objects
    seed: int = 0
    jpeg_quality: int = 92


class SynthConfigError(SeqFormerError, ValueError):
    """Generator options that cannot produce a dataset; the message names the ``--flag``."""


def generate_synth_vis(out_dir: str | Path, cfg: SynthVisConfig | None = None) -> dict[str, Path]:
    """Write the dataset; returns the image folders and annotation files (keys ``train_images``,
    ``train_ann``, ``valid_images``, ``valid_ann``, and ``test_images``, ``test_ann`` when it has a test split)."""
    cfg = cfg or SynthVisConfig()
    if cfg.num_frames < 1 or min(cfg.height, cfg.width) < 16 or cfg.max_objects < 1:
        raise SynthConfigError(f"synth vis: need --num-frames >= 1, --height and --width >= 16 and --max-objects >= 1; "
                               f"got {cfg.num_frames}, {cfg.height}x{cfg.width} (HxW), {cfg.max_objects}")
    out = Path(out_dir)
    paths = {}
    splits = [("train", cfg.num_train_videos), ("valid", cfg.num_val_videos)]
    if cfg.num_test_videos > 0:
        splits.append(("test", cfg.num_test_videos))
    for split, n in splits:
        paths[f"{split}_ann"] = _write_split(out, split, n, cfg.num_frames, cfg.height, cfg.width, cfg.seed,
                                             cfg.max_objects, cfg.jpeg_quality)
        paths[f"{split}_images"] = out / split / "JPEGImages"
    return paths
