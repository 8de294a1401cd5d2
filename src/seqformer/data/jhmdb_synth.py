"""Synthetic JHMDB-21 / UCF101-24 data: actor tubes whose class exists only in motion, in the ACT formats.

Each video shows one or two textured rectangles ("actors", rendered by :mod:`seqformer.data.ava_synth`)
on a cluttered static background.  An actor performs one action for its whole tube, as in JHMDB and
UCF101-24, and the action is defined purely by motion:

- ``walk``: constant horizontal velocity (turning at the edges of its lane; either direction, so a
  horizontal flip keeps the label),
- ``jump``: vertical hops,
- ``spin``: constant rotation,
- ``pulse``: periodic size change,
- ``stand``: none of the above.

Appearance is drawn independently of the class and cannot identify an actor: every actor has one of
``appearance_pool`` looks (striped texture, size and resting orientation) and every video shows one of
``background_pool`` backgrounds, each drawn uniformly whatever the actions, so each look is seen with every
class and only motion separates them.  With a fresh look per actor (``appearance_pool=0``) a 20-video
training set holds ~30 actors, each one look with one class for its whole tube, and the tiny demo model
learnt the looks (training class error 1.5 %) instead of the motion, then failed on the new ones of the
test videos; a pool of textures alone was not enough (texture x size x orientation still named each
actor: 99 % of training clips but 46 % of test clips classified right).  With
probability ``partial_prob`` a tube starts and ends inside the video (the actor appears and leaves),
as UCF101-24 tubes do; otherwise it covers the whole video, as JHMDB tubes do.  Actors keep to their
own vertical lane, so they never occlude each other.

Written in exactly the published layouts: ``Frames/<video>/%05d.png`` + ``JHMDB-GT.pkl`` with three
train/test splits (``layout="jhmdb"``), or ``rgb-images/<video>/%05d.jpg`` + ``UCF101v2-GT.pkl`` with one
split (``layout="ucf24"``); the pickle goes through :func:`seqformer.data.jhmdb_format.write_groundtruth_pickle`.
Video names are ``<class of the first actor>/synth_<n>``.  ``dataset.yaml`` holds the config overrides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from seqformer.data.ava_synth import Actor, actor_texture, cluttered_background, draw_actor
from seqformer.data.jhmdb_format import JhmdbGroundTruth, write_groundtruth_pickle

CLASSES = ["walk", "jump", "spin", "pulse", "stand"]
WALK, JUMP, SPIN, PULSE, STAND = range(len(CLASSES))
BACKGROUND_POOL, APPEARANCE_POOL = 2**31 + 1, 2**31 + 2  # seed words of the appearance pools (videos use [seed, i])
LAYOUTS = {  # layout -> (frames folder, frame pattern, ground-truth file, number of splits)
    "jhmdb": ("Frames", "{video_id}/{frame:05d}.png", "JHMDB-GT.pkl", 3),
    "ucf24": ("rgb-images", "{video_id}/{frame:05d}.jpg", "UCF101v2-GT.pkl", 1),
}


@dataclass
class SynthJhmdbConfig:
    num_videos: int = 30  # split s tests the videos i with i % 3 == s - 1 and trains on the others
    min_frames: int = 24
    max_frames: int = 36
    height: int = 96
    width: int = 160
    max_actors: int = 2
    partial_prob: float = 0.5  # probability that a tube starts and ends inside the video
    walk_speed: float = 3.0  # px/frame
    jump_height: float = 12.0  # px
    jump_period: int = 8  # frames per hop
    spin_speed: float = 20.0  # deg/frame
    pulse_amplitude: float = 0.3  # relative size change
    pulse_period: int = 8  # frames
    appearance_pool: int = 3  # actor looks (texture, size, orientation) shared by all classes (0: fresh per actor)
    background_pool: int = 3  # backgrounds shared by all videos (0: a fresh background per video)
    layout: str = "jhmdb"  # jhmdb (PNG, 3 splits) | ucf24 (JPEG, 1 split)
    seed: int = 0


def generate_synth_jhmdb(out_dir: str | Path, cfg: SynthJhmdbConfig = SynthJhmdbConfig()) -> dict[str, Path]:
    """Write the dataset under ``out_dir``; returns the paths written (frames, groundtruth, config)."""
    if cfg.layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {cfg.layout!r}")
    if not 8 <= cfg.min_frames <= cfg.max_frames:
        raise ValueError(f"need 8 <= min_frames <= max_frames, got {cfg.min_frames}, {cfg.max_frames}")
    if cfg.appearance_pool < 0 or cfg.background_pool < 0:
        raise ValueError(f"pool sizes must be >= 0, got appearance_pool={cfg.appearance_pool}, "
                         f"background_pool={cfg.background_pool}")
    folder, pattern, gt_name, num_splits = LAYOUTS[cfg.layout]
    out = Path(out_dir)
    frames_root = out / folder
    gttubes, nframes, resolution, names = {}, {}, {}, []
    for i in range(cfg.num_videos):
        rng = np.random.default_rng([cfg.seed, i])
        frames, tubes, labels = _render_video(cfg, rng)
        video = f"{CLASSES[labels[0]]}/synth_{i:03d}"
        names.append(video)
        for k, frame in enumerate(frames):
            path = frames_root / pattern.format(video_id=video, frame=k + 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
        by_label: dict[int, list[np.ndarray]] = {}
        for label, tube in zip(labels, tubes):
            by_label.setdefault(label, []).append(tube)
        gttubes[video], nframes[video], resolution[video] = by_label, len(frames), (cfg.height, cfg.width)
    test = [[v for i, v in enumerate(names) if i % 3 == s] for s in range(num_splits)]
    train = [[v for v in names if v not in set(t)] for t in test]
    gt = JhmdbGroundTruth(list(CLASSES), gttubes, nframes, train, test, resolution)
    paths = {"frames": frames_root, "groundtruth": out / gt_name, "config": out / "dataset.yaml"}
    write_groundtruth_pickle(gt, paths["groundtruth"])
    short = min(cfg.height, cfg.width)
    data = {"model": {"task": "jhmdb" if cfg.layout == "jhmdb" else "ucf24", "num_classes": len(CLASSES)},
            "data": {"dataset_file": cfg.layout, "jhmdb_groundtruth": str(paths["groundtruth"].resolve()),
                     "jhmdb_frames": str(frames_root.resolve()), "jhmdb_frame_pattern": pattern,
                     "jhmdb_train_short_side": [short, short * 5 // 4], "jhmdb_crop_size": short,
                     "jhmdb_val_short_side": short}}
    paths["config"].write_text(yaml.safe_dump(data, sort_keys=False))
    return paths


def _pool_rng(cfg: SynthJhmdbConfig, kind: int, pool: int, rng: np.random.Generator) -> np.random.Generator:
    """The generator that draws one appearance: entry ``k`` of a pool of size ``pool`` (the same draws in
    every video, so an entry looks the same at any size), or ``rng`` itself without a pool."""
    if pool == 0:
        return rng
    return np.random.default_rng([cfg.seed, kind, int(rng.integers(pool))])


def _motion(cfg: SynthJhmdbConfig, label: int, n: int, lane: tuple[float, float], radius: float, rest_angle: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre x, centre y, rotation and scale of an actor of class ``label`` over ``n`` frames."""
    t = np.arange(n)
    lo, hi = lane[0] + radius, lane[1] - radius
    x = np.full(n, float(rng.uniform(lo, hi)))
    base_y = float(rng.uniform(cfg.jump_height + radius, cfg.height - radius))
    y, scale = np.full(n, base_y), np.ones(n)
    angle = rest_angle + np.zeros(n)
    if label == WALK:  # bounce between the lane's ends (a triangle wave)
        span = max(hi - lo, 1e-6)
        travel = x[0] - lo + rng.choice([-1, 1]) * cfg.walk_speed * t
        x = lo + span - np.abs(np.mod(travel, 2 * span) - span)
    elif label == JUMP:
        phase = rng.uniform(0, 1)
        y = base_y - cfg.jump_height * np.abs(np.sin(math.pi * (t / cfg.jump_period + phase)))
    elif label == SPIN:
        angle = angle + rng.choice([-1, 1]) * math.radians(cfg.spin_speed) * t
    elif label == PULSE:
        scale = 1 + cfg.pulse_amplitude * np.sin(2 * math.pi * (t / cfg.pulse_period + rng.uniform(0, 1)))
    return x, y, angle, scale


def _render_video(cfg: SynthJhmdbConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    count = int(rng.integers(1, cfg.max_actors + 1))
    lane_width = cfg.width / count
    background = cluttered_background(cfg, _pool_rng(cfg, BACKGROUND_POOL, cfg.background_pool, rng))
    frames = np.repeat(background[None], n, axis=0)
    tubes, labels = [], []
    for a in range(count):
        label = int(rng.integers(len(CLASSES)))
        look = _pool_rng(cfg, APPEARANCE_POOL, cfg.appearance_pool, rng)
        h = int(look.integers(round(cfg.height * 0.28), round(cfg.height * 0.36) + 1))
        w = int(look.integers(round(cfg.height * 0.20), round(cfg.height * 0.28) + 1))
        texture, rest_angle = actor_texture(h, w, look), float(look.uniform(-math.pi, math.pi))
        radius = 0.5 * math.hypot(h, w) * (1 + cfg.pulse_amplitude if label == PULSE else 1)
        lane = (a * lane_width, (a + 1) * lane_width)
        x, y, angle, scale = _motion(cfg, label, n, lane, min(radius, lane_width / 2 - 1), rest_angle, rng)
        actor = Actor(texture, x, y, angle, scale, [])
        start, end = 0, n
        if rng.random() < cfg.partial_prob:
            start = int(rng.integers(0, n // 3))
            end = int(rng.integers(2 * n // 3, n)) + 1
        rows = []
        for i in range(start, end):
            extent = draw_actor(frames[i], actor, i)
            if extent is None:  # cannot happen inside the lane; keeps tubes consecutive if it did
                raise AssertionError(f"actor left the frame at {i}")
            rows.append([i + 1, *extent])
        tubes.append(np.asarray(rows, np.float32))
        labels.append(label)
    return frames, tubes, labels
