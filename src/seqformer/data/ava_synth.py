"""Synthetic AVA-format action-detection data: textured actors whose actions exist only in motion.

Each video shows a few textured rectangles ("actors") on a cluttered static background.  Time is
cut into segments of ``segment_seconds``; in every segment each actor performs a random set of
actions, defined purely by motion:

- ``walk left`` / ``walk right``: constant horizontal velocity,
- ``jump``: hops (vertical |sin| offset) that land exactly at the keyframe,
- ``spin``: constant rotation,
- ``pulse``: periodic size change,
- ``stand still``: none of the above.

Actors have random textures, sizes and base orientations, so no single frame reveals the label.
Keyframes sit at segment centres and the GT box is the actor's pixel extent at the keyframe.
Everything needed to load it is written in the official formats (GT CSVs with person ids, a
pbtxt label map, an excluded-timestamps CSV, frames in the standard layout) plus
``frames/frames_index.json`` carrying the dataset's own fps and start second, and ``dataset.yaml``
with the matching config overrides.  Class ids are deliberately non-contiguous, and the fps and
start second differ from AVA's 30/900, so the custom-dataset path is what the demo exercises.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from seqformer.data.video_reader import FramesIndex, VideoInfo, write_frames_index
from seqformer.errors import SeqFormerError

# (action id, name); ids deliberately not 1..K.
ACTIONS: list[tuple[int, str]] = [(1, "walk left"), (2, "walk right"), (3, "jump"),
                                  (5, "spin"), (8, "pulse"), (9, "stand still")]
WALK_LEFT, WALK_RIGHT, JUMP, SPIN, PULSE, STAND = (a for a, _ in ACTIONS)
FRAME_PATTERN = "{video_id}/{video_id}_{frame:06d}.jpg"
MIN_SYNTH_SIDE = 20  # the background's blobs are drawn with sizes in [4, side // 4)


@dataclass
class SynthAvaConfig:
    num_train_videos: int = 8
    num_val_videos: int = 4
    num_test_videos: int = 0  # a third split (annotations/test*.csv), for reporting when val selects checkpoints
    seconds: int = 10  # video length; keyframes at the centres of the segments
    segment_seconds: int = 2
    fps: int = 8
    start_second: int = 60  # second of the first frame (AVA: 900)
    height: int = 96
    width: int = 160
    min_actors: int = 2
    max_actors: int = 3
    walk_speed: float = 16.0  # px/s
    jump_height: float = 12.0  # px
    spin_speed: float = 180.0  # deg/s
    pulse_amplitude: float = 0.3  # relative size change
    action_prob: float = 0.3  # probability of each of jump/spin/pulse per segment
    jpeg_quality: int = 90
    seed: int = 0
    write_videos: bool = False  # also write videos/<id>.mp4 (for the PyAV clip reader)


@dataclass
class Actor:
    texture: np.ndarray  # [h, w, 3] uint8 at base size
    x: np.ndarray  # per-frame centre x
    y: np.ndarray  # per-frame centre y (incl. jump offset)
    angle: np.ndarray  # per-frame rotation (rad)
    scale: np.ndarray  # per-frame size factor
    actions: list[list[int]]  # per segment


def generate_synth_ava(out_dir: str | Path, cfg: SynthAvaConfig = SynthAvaConfig()) -> dict[str, Path]:
    """Write the dataset under ``out_dir``; returns the paths of the files written."""
    check_synth_ava_config(cfg)  # before anything is written: no half-written dataset
    out = Path(out_dir)
    frames_root, ann = out / "frames", out / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    videos: dict[str, VideoInfo] = {}
    rows: dict[str, list[tuple]] = {"train": [], "val": [], "test": []}
    split_codes = {"train": 0, "val": 1, "test": 2}  # adding a split leaves the others' videos unchanged
    for split, count in (("train", cfg.num_train_videos), ("val", cfg.num_val_videos),
                         ("test", cfg.num_test_videos)):
        for v in range(count):
            video_id = f"synth_{split}_{v:03d}"
            rng = np.random.default_rng([cfg.seed, split_codes[split], v])
            frames, video_rows = _render_video(video_id, cfg, rng)
            _write_frames(frames_root, video_id, frames, cfg.jpeg_quality)
            if cfg.write_videos:
                _write_video(out / "videos" / f"{video_id}.mp4", frames, cfg.fps, cfg.start_second)
            videos[video_id] = VideoInfo(len(frames), cfg.height, cfg.width)
            rows[split].extend(video_rows)
    write_frames_index(frames_root, FramesIndex(cfg.fps, cfg.start_second, videos))
    # Official semantics: excluded keyframes are listed and absent from the GT.
    excluded = {split: sorted({(r[0], r[1]) for r in rows[split] if r[0] == f"synth_{split}_000"})[-1:]
                for split in ("val", "test")}
    for split in ("val", "test"):
        rows[split] = [r for r in rows[split] if (r[0], r[1]) not in set(excluded[split])]
    paths = {"frames": frames_root, "train_csv": ann / "train.csv", "val_csv": ann / "val.csv",
             "labelmap": ann / "labelmap.pbtxt", "exclusions": ann / "val_excluded_timestamps.csv",
             "config": out / "dataset.yaml"}
    write_gt_csv(paths["train_csv"], rows["train"])
    write_gt_csv(paths["val_csv"], rows["val"])
    write_labelmap_pbtxt(paths["labelmap"], ACTIONS)
    write_timestamps_csv(paths["exclusions"], excluded["val"])
    if cfg.num_test_videos > 0:  # point data.ava_val_csv / ava_exclusions at these to predict and evaluate it
        paths.update(test_csv=ann / "test.csv", test_exclusions=ann / "test_excluded_timestamps.csv")
        write_gt_csv(paths["test_csv"], rows["test"])
        write_timestamps_csv(paths["test_exclusions"], excluded["test"])
    _write_config(paths, cfg, out)
    if cfg.write_videos:
        paths["videos"] = out / "videos"
    return paths


class SynthConfigError(SeqFormerError, ValueError):
    """Generator options that cannot produce a dataset; the message names the option (``--flag``)."""


def check_synth_ava_config(cfg: SynthAvaConfig) -> None:
    """Raise :class:`SynthConfigError` for options the generator cannot honour."""
    def require(ok: bool, message: str) -> None:
        if not ok:
            raise SynthConfigError(f"synth ava: {message}")

    require(cfg.segment_seconds > 0 and cfg.segment_seconds % 2 == 0 and cfg.seconds > 0
            and cfg.seconds % cfg.segment_seconds == 0,
            f"--seconds ({cfg.seconds}) must be a positive multiple of --segment-seconds ({cfg.segment_seconds}), "
            "which must be even (keyframes sit on whole seconds at segment centres)")
    require(cfg.num_train_videos >= 0 and cfg.num_val_videos >= 0 and cfg.num_train_videos + cfg.num_val_videos > 0,
            "--num-train-videos and --num-val-videos must be >= 0, and not both 0")
    require(cfg.fps >= 1, f"--fps must be >= 1, got {cfg.fps}")
    require(1 <= cfg.min_actors <= cfg.max_actors, f"need 1 <= --min-actors ({cfg.min_actors}) <= --max-actors "
                                                   f"({cfg.max_actors})")
    require(0 <= cfg.action_prob <= 1 and 0 <= cfg.pulse_amplitude < 1 and cfg.jump_height >= 0,
            "--action-prob must be in [0, 1], --pulse-amplitude in [0, 1) and --jump-height >= 0")
    # The largest actor (0.4 x 0.3 of the height, grown by the pulse) must fit with room to move.
    radius = 0.5 * math.hypot(round(cfg.height * 0.40), round(cfg.height * 0.30)) * (1 + cfg.pulse_amplitude)
    min_height = max(MIN_SYNTH_SIDE, math.ceil((cfg.jump_height + 1) / (1 - (1 + cfg.pulse_amplitude) / 2)))
    require(cfg.height >= min_height and cfg.width >= MIN_SYNTH_SIDE and cfg.width > 2 * radius + 1,
            f"frames of {cfg.width}x{cfg.height} are too small for the actors: need --height >= {min_height} "
            f"(with --jump-height {cfg.jump_height:g}, --pulse-amplitude {cfg.pulse_amplitude:g}) and --width >= "
            f"max({MIN_SYNTH_SIDE}, {math.ceil(2 * radius + 1)})")
    require(1 <= cfg.jpeg_quality <= 100, f"--jpeg-quality must be in [1, 100], got {cfg.jpeg_quality}")


def write_gt_csv(path: str | Path, rows: list[tuple]) -> None:
    """Rows ``(video_id, second, x1, y1, x2, y2, action_id, person_id)`` in the official GT layout."""
    with open(path, "w") as f:
        for vid, sec, x1, y1, x2, y2, action, person in rows:
            f.write(f"{vid},{sec:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{action},{person}\n")


def write_labelmap_pbtxt(path: str | Path, labels: list[tuple[int, str]]) -> None:
    with open(path, "w") as f:
        for label_id, name in labels:
            f.write(f'item {{\n  name: "{name}"\n  id: {label_id}\n}}\n')


def write_timestamps_csv(path: str | Path, keys: list[tuple[str, int]]) -> None:
    with open(path, "w") as f:
        for vid, sec in keys:
            f.write(f"{vid},{sec:04d}\n")


def _sample_actions(rng: np.random.Generator, p: float) -> list[int]:
    acts = [[WALK_LEFT], [WALK_RIGHT], []][rng.integers(3)]
    acts = acts + [a for a in (JUMP, SPIN, PULSE) if rng.random() < p]
    return acts or [STAND]


def _make_actor(cfg: SynthAvaConfig, rng: np.random.Generator, n_seg: int) -> Actor:
    h = int(rng.integers(round(cfg.height * 0.30), round(cfg.height * 0.40) + 1))
    w = int(rng.integers(round(cfg.height * 0.22), round(cfg.height * 0.30) + 1))
    seg_len = cfg.segment_seconds * cfg.fps
    n = n_seg * seg_len
    dt_key = (np.arange(seg_len) - seg_len // 2) / cfg.fps  # time from the segment's keyframe
    radius = 0.5 * math.hypot(h, w) * (1 + cfg.pulse_amplitude)
    x_lo, x_hi = radius, cfg.width - radius
    x_start = float(rng.uniform(x_lo, x_hi))
    base_y = float(rng.uniform(cfg.jump_height + radius, cfg.height - radius))
    vx, omega = np.zeros(n), np.zeros(n)  # per-frame displacement and rotation
    y, scale = np.full(n, base_y), np.ones(n)
    pos, step = x_start, cfg.walk_speed / cfg.fps
    actions = []
    for s in range(n_seg):
        acts = _sample_actions(rng, cfg.action_prob)
        sl = slice(s * seg_len, (s + 1) * seg_len)
        direction = -1 if WALK_LEFT in acts else 1 if WALK_RIGHT in acts else 0
        if direction and not x_lo <= pos + direction * step * seg_len <= x_hi:  # turn instead of leaving
            direction = -direction
            acts = [WALK_RIGHT if a == WALK_LEFT else WALK_LEFT if a == WALK_RIGHT else a for a in acts]
        vx[sl] = direction * step
        pos += direction * step * seg_len
        if JUMP in acts:  # hops of 1 s, on the ground at the keyframe
            y[sl] = base_y - cfg.jump_height * np.abs(np.sin(math.pi * dt_key))
        if SPIN in acts:
            omega[sl] = math.radians(cfg.spin_speed) / cfg.fps
        if PULSE in acts:
            scale[sl] = 1 + cfg.pulse_amplitude * np.sin(2 * math.pi * dt_key)
        actions.append(sorted(acts))
    x = x_start + np.cumsum(vx) - vx[0]
    angle = float(rng.uniform(-math.pi, math.pi)) + np.cumsum(omega) - omega[0]
    return Actor(actor_texture(h, w, rng), x, y, angle, scale, actions)


def _place_actors(cfg: SynthAvaConfig, rng: np.random.Generator, n_seg: int, count: int) -> list[Actor]:
    """Actors that never overlap much (an occluded actor's motion could not be seen); fewer if crowded."""
    for attempt in range(200):
        n = count - attempt // 50
        if n <= 1:
            return [_make_actor(cfg, rng, n_seg)][:max(n, 1)]
        actors = [_make_actor(cfg, rng, n_seg) for _ in range(n)]
        if all(_apart(a, b) for i, a in enumerate(actors) for b in actors[:i]):
            return actors
    raise AssertionError("unreachable: one actor is always placeable")


def _apart(a: Actor, b: Actor, slack: float = 0.75) -> bool:
    ra = 0.5 * math.hypot(*a.texture.shape[:2]) * a.scale
    rb = 0.5 * math.hypot(*b.texture.shape[:2]) * b.scale
    return bool(np.all(np.hypot(a.x - b.x, a.y - b.y) >= slack * (ra + rb)))


def actor_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    c1, c2 = rng.integers(40, 256, size=(2, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(4, 9)
    stripes = (np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period) > 0)
    tex = np.where(stripes[..., None], c1, c2).astype(np.uint8)
    tex[[0, -1], :] = tex[:, [0, -1]] = 20  # dark outline
    return tex


def cluttered_background(cfg: SynthAvaConfig, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:cfg.height, 0:cfg.width] / max(cfg.height, cfg.width)
    c0, cx, cy = rng.uniform(60, 160, size=(3, 3))
    bg = c0 + (cx - c0) * xx[..., None] * 0.6 + (cy - c0) * yy[..., None] * 0.6
    for _ in range(int(rng.integers(10, 20))):  # clutter: muted rectangles and discs
        x0, y0 = rng.integers(0, cfg.width), rng.integers(0, cfg.height)
        rw, rh = rng.integers(4, cfg.width // 4), rng.integers(4, cfg.height // 4)
        colour = rng.uniform(40, 200, size=3)
        if rng.random() < 0.5:
            bg[y0:y0 + rh, x0:x0 + rw] = colour
        else:
            bg[((xx * max(cfg.height, cfg.width) - x0) ** 2 + (yy * max(cfg.height, cfg.width) - y0) ** 2)
               < (rw / 2) ** 2] = colour
    return bg.clip(0, 255).astype(np.uint8)


def draw_actor(frame: np.ndarray, actor: Actor, i: int) -> tuple[int, int, int, int] | None:
    """Paint the actor of frame ``i`` (inverse rotation/scale, nearest texel); returns its pixel extent."""
    th, tw = actor.texture.shape[:2]
    cx, cy, s = actor.x[i], actor.y[i], actor.scale[i]
    r = 0.5 * math.hypot(th, tw) * s + 1
    x0, x1 = max(0, int(cx - r)), min(frame.shape[1], int(cx + r) + 1)
    y0, y1 = max(0, int(cy - r)), min(frame.shape[0], int(cy + r) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
    cos, sin = math.cos(actor.angle[i]), math.sin(actor.angle[i])
    u = ((xx - cx) * cos + (yy - cy) * sin) / s + tw / 2
    v = (-(xx - cx) * sin + (yy - cy) * cos) / s + th / 2
    inside = (u >= 0) & (u < tw) & (v >= 0) & (v < th)
    if not inside.any():
        return None
    frame[y0:y1, x0:x1][inside] = actor.texture[v[inside].astype(int), u[inside].astype(int)]
    rows, cols = np.nonzero(inside)
    return x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1


def _render_video(video_id: str, cfg: SynthAvaConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple]]:
    n_seg = cfg.seconds // cfg.segment_seconds
    seg_len = cfg.segment_seconds * cfg.fps
    background = cluttered_background(cfg, rng)
    actors = _place_actors(cfg, rng, n_seg, int(rng.integers(cfg.min_actors, cfg.max_actors + 1)))
    frames = np.repeat(background[None], n_seg * seg_len, axis=0)
    rows = []
    for i in range(len(frames)):
        for person, actor in enumerate(actors):
            extent = draw_actor(frames[i], actor, i)
            seg, offset = divmod(i, seg_len)
            if offset == seg_len // 2 and extent is not None:
                second = cfg.start_second + i // cfg.fps
                x1, y1, x2, y2 = extent
                box = (x1 / cfg.width, y1 / cfg.height, x2 / cfg.width, y2 / cfg.height)
                rows.extend((video_id, second, *box, a, person) for a in actor.actions[seg])
    return frames, rows


def _write_frames(root: Path, video_id: str, frames: np.ndarray, quality: int) -> None:
    folder = root / video_id
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(root / FRAME_PATTERN.format(video_id=video_id, frame=i + 1), quality=quality)


def _write_video(path: Path, frames: np.ndarray, fps: int, start_second: int) -> None:
    """Like a raw AVA video, the file starts at 0 s: ``start_second`` of still lead-in, then the clip."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        lead_in = [frames[0]] * (start_second * fps)
        for frame in [*lead_in, *frames]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _write_config(paths: dict[str, Path], cfg: SynthAvaConfig, out: Path) -> None:
    data = {"model": {"task": "ava", "num_classes": len(ACTIONS)},
            "data": {"dataset_file": "ava", "ava_frames": str(paths["frames"].resolve()),
                     "ava_frame_pattern": FRAME_PATTERN,
                     "ava_train_csv": str(paths["train_csv"].resolve()),
                     "ava_val_csv": str(paths["val_csv"].resolve()),
                     "ava_labelmap": str(paths["labelmap"].resolve()),
                     "ava_exclusions": str(paths["exclusions"].resolve()),
                     "ava_fps": cfg.fps, "ava_start_second": cfg.start_second,
                     "ava_flip_pairs": [[WALK_LEFT, WALK_RIGHT]],  # a mirrored walk left is a walk right
                     "ava_train_short_side": [min(cfg.height, cfg.width), min(cfg.height, cfg.width) * 5 // 4],
                     "ava_crop_size": min(cfg.height, cfg.width),
                     "ava_val_short_side": min(cfg.height, cfg.width)}}
    (out / "dataset.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
