"""``seqformer infer ava``: spatio-temporal action detection on a video file or frame folder.

The model finds the actors itself (no external person detector).  Keyframes sit on whole seconds of
the source (``--start`` rounded up, then every ``--keyframe-step`` seconds); each gets the clip
the model was trained on: ``model.num_frames`` frames ``data.frame_sample_rate`` apart *on the
config's timeline* (``data.ava_fps``), centred on the keyframe, edge frames repeated at the ends of
the input (as :func:`seqformer.data.ava_dataset.clip_frame_indices`).  Frames are resized as the
validation set is (``data.ava_val_short_side``, no crop), so a frame folder read at ``data.ava_fps``
gives exactly the detections of ``predict ava``.

Decoding is one lazy pass holding only the frames of the clips in flight; a second pass renders.
Drawn boxes are **per frame from the box tube**: the model predicts an actor's box in every clip
frame; a rendered frame takes the actors of the nearest keyframe and each box linearly
interpolated between the tube's sampled frames (held at the tube's ends).  Actor ids are linked
between consecutive keyframes by box IoU (Hungarian, IoU >= 0.3), for stable colours.

Outputs: ``<stem>.csv`` (official detection CSV: video id = file stem, seconds from the start of the
source), ``<stem>.mp4`` and ``<stem>_timeline.png``.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from seqformer.config import Config, ConfigError
from seqformer.data.ava_format import read_labelmap
from seqformer.data.ava_transforms import plan_val, transform_pixels
from seqformer.data.collate import collate_ava
from seqformer.data.video_input import VideoInput
from seqformer.inference.ava import Row, evaluated_classes, keyframe_detections, write_rows
from seqformer.inference.video_common import (frame_progress, inference_mode, prepare_out_dir, report_reading,
                                               save_figure)
from seqformer.models.ava_model import action_scores
from seqformer.utils.box_ops import box_cxcywh_to_xyxy
from seqformer.utils.render import Drawable, VideoWriter, atomic_output, fit_size, instance_colour, render_frame

LINK_IOU = 0.3
TOP_ACTIONS = 3


@dataclass
class KeyframeActors:
    """The actors shown at one keyframe: their box tubes and action scores."""
    second: int
    key_index: int  # timeline slot of the keyframe
    frame_indices: np.ndarray  # [T] timeline slots of the clip frames
    boxes: np.ndarray  # [A, T, 4] normalised xyxy per clip frame
    scores: np.ndarray  # [A, K]
    actor_ids: list[int] = field(default_factory=list)


@dataclass
class AvaOptions:
    short_side: int
    keyframe_step: int = 1
    score_threshold: float = 0.3


def action_labels(cfg: Config, labelmap: str | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """(class id per model column, name per class id) from ``labelmap`` or the config's label map."""
    path = labelmap or cfg.data.ava_labelmap
    if path and Path(path).is_file():
        pairs = read_labelmap(path)
        if len(pairs) != cfg.model.num_classes:
            raise ConfigError(f"{path} has {len(pairs)} classes but model.num_classes is {cfg.model.num_classes}")
        return np.array([i for i, _ in pairs]), dict(pairs)
    print(f"warning: label map {path} not found: actions are numbered 1..{cfg.model.num_classes} "
          f"(pass --labelmap for names and ids)", file=sys.stderr)
    ids = np.arange(1, cfg.model.num_classes + 1)
    return ids, {int(i): f"action {i}" for i in ids}


def clip_offsets(cfg: Config, fps: float) -> np.ndarray:
    """Timeline offsets of a clip's frames from its keyframe at input rate ``fps``."""
    t = cfg.model.num_frames
    step = cfg.data.frame_sample_rate * fps / cfg.data.ava_fps
    return np.round((np.arange(t) - t // 2) * step).astype(np.int64)


def detect_actions(model, video: VideoInput, cfg: Config, device: torch.device, opts: AvaOptions,
                   class_ids: np.ndarray, amp: str = "none", progress: bool = True
                   ) -> tuple[list[Row], list[KeyframeActors], int]:
    """Detection rows (video id = stem), shown actors per keyframe, and the timeline length."""
    offsets = clip_offsets(cfg, video.fps)
    per_keyframe = cfg.eval.ava_detections_per_keyframe
    evaluated = evaluated_classes(cfg, class_ids) if cfg.data.ava_eval_labelmap and \
        Path(cfg.data.ava_eval_labelmap).is_file() else None
    plan = plan_val((video.height, video.width), opts.short_side)
    first_second = math.ceil(video.start - 1e-9)
    keys: list[tuple[int, int]] = []  # (second, slot) of keyframes not run yet, in order
    buffer: dict[int, torch.Tensor] = {}
    rows: list[Row] = []
    shown: list[KeyframeActors] = []
    cmap = None
    length = 0

    def next_key(j: int) -> tuple[int, int]:
        second = first_second + j * opts.keyframe_step
        return second, int(round((second - video.start) * video.fps))

    def run(second: int, key: int) -> None:
        indices = np.clip(key + offsets, 0, length - 1)
        pixels = torch.stack([buffer[int(i)] for i in indices])
        target = {"key_frame": len(offsets) // 2, "video_id": video.stem, "second": second, "colour_map": cmap}
        samples, targets = collate_ava([(pixels, target)])
        outputs = model(samples.to(device))
        rows.extend(keyframe_detections(outputs, targets, class_ids, per_keyframe, evaluated))
        scores = action_scores(outputs)[0].float().cpu()  # [Q, K]
        keep = scores.max(1).values >= opts.score_threshold
        tubes = box_cxcywh_to_xyxy(outputs["pred_boxes"][0].float()).clamp(0, 1).cpu()  # [T, Q, 4]
        shown.append(KeyframeActors(second, key, indices, tubes[:, keep].permute(1, 0, 2).numpy(),
                                    scores[keep].numpy()))

    j = 0
    keys.append(next_key(j))
    with inference_mode(device, amp):
        for frame in frame_progress(video.frames(), video, f"infer {video.stem}", progress):
            pixels, cmap = transform_pixels(frame[None], plan)
            buffer[length] = pixels[0]
            length += 1
            while keys and keys[0][1] + offsets[-1] < length:  # every frame of the clip has arrived
                run(*keys.pop(0))
                j += 1
                keys.append(next_key(j))
                for f in [f for f in buffer if f < keys[0][1] + offsets[0]]:
                    del buffer[f]
        report_reading(video, length)
        while keys and keys[0][1] < length:  # the last keyframes: clips reach past the end
            run(*keys.pop(0))
            j += 1
            keys.append(next_key(j))
    link_actors(shown)
    return rows, shown, length


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a [n,4] x b [m,4]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def link_actors(keyframes: list[KeyframeActors]) -> None:
    """Give actors ids 1, 2, ...: an actor keeps the id of the previous keyframe's actor whose keyframe
    box overlaps it most (Hungarian on IoU >= ``LINK_IOU``)."""
    next_id = 1
    prev: KeyframeActors | None = None
    for kf in keyframes:
        centre = len(kf.frame_indices) // 2
        ids = [0] * len(kf.boxes)
        if prev is not None and len(prev.boxes) and len(kf.boxes):
            iou = _iou(kf.boxes[:, centre], prev.boxes[:, len(prev.frame_indices) // 2])
            for r, c in zip(*linear_sum_assignment(-iou)):
                if iou[r, c] >= LINK_IOU:
                    ids[r] = prev.actor_ids[c]
        for i in range(len(ids)):
            if ids[i] == 0:
                ids[i], next_id = next_id, next_id + 1
        kf.actor_ids = ids
        prev = kf


def boxes_at(kf: KeyframeActors, slot: int) -> np.ndarray:
    """[A, 4] normalised boxes of ``kf``'s actors at timeline ``slot``: linear between the tube's frames."""
    slots, first = np.unique(kf.frame_indices, return_index=True)
    out = np.empty((len(kf.boxes), 4))
    for a in range(len(kf.boxes)):
        for c in range(4):
            out[a, c] = np.interp(slot, slots, kf.boxes[a, first, c])
    return out


def render_video(video: VideoInput, keyframes: list[KeyframeActors], names: dict[int, str], class_ids: np.ndarray,
                 out_path: Path, score_threshold: float, render_max_side: int | None = None,
                 render_upscale: float = 1.0, progress: bool = True) -> int:
    """Decode the input again and draw, per frame, the nearest keyframe's actors and top actions."""
    out_hw = fit_size(video.height, video.width, render_max_side, render_upscale)
    key_slots = np.array([kf.key_index for kf in keyframes])
    legend = f"actions >= {score_threshold:.2f}"
    with VideoWriter(out_path, video.fps, *out_hw) as writer:
        for t, frame in enumerate(frame_progress(video.frames(), video, f"render {video.stem}", progress)):
            items = []
            if len(keyframes):
                kf = keyframes[int(np.argmin(np.abs(key_slots - t)))]
                for a, box in enumerate(boxes_at(kf, t)):
                    top = np.argsort(-kf.scores[a])[:TOP_ACTIONS]
                    lines = [f"{names.get(int(class_ids[k]), class_ids[k])} {kf.scores[a, k]:.2f}"
                             for k in top if kf.scores[a, k] >= score_threshold]
                    pixel_box = box * [video.width, video.height, video.width, video.height]
                    items.append(Drawable(kf.actor_ids[a], f"actor {kf.actor_ids[a]}", box=pixel_box, lines=lines))
            writer.write(render_frame(frame, items, legend, out_hw=out_hw))
    return writer.frames


def save_timeline(keyframes: list[KeyframeActors], names: dict[int, str], class_ids: np.ndarray, step: int,
                  out_path: Path, score_threshold: float, title: str) -> None:
    """Actors x time x actions: per actor a row of lanes, one per action, shaded by score at each keyframe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actors = sorted({i for kf in keyframes for i in kf.actor_ids})
    row = {a: r for r, a in enumerate(actors)}
    used = sorted({int(k) for kf in keyframes for s in kf.scores for k in np.flatnonzero(s >= score_threshold)})
    lane = {k: i for i, k in enumerate(used)}
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.5 * max(len(actors), 1)))
    for kf in keyframes:
        for a, actor in enumerate(kf.actor_ids):
            for k in np.flatnonzero(kf.scores[a] >= score_threshold):
                y = row[actor] - 0.4 + 0.8 * lane[int(k)] / max(len(used), 1)
                ax.broken_barh([(kf.second - step / 2, step)], (y, 0.8 / max(len(used), 1)),
                               color=cmap(lane[int(k)] % 20), alpha=float(min(1.0, 0.3 + kf.scores[a, k])))
    for k in used:
        ax.plot([], [], color=cmap(lane[k] % 20), lw=6, label=names.get(int(class_ids[k]), str(class_ids[k])))
    if used:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_yticks(range(len(actors)))
    ax.set_yticklabels([f"actor {a}" for a in actors])
    for tick, a in zip(ax.get_yticklabels(), actors):
        tick.set_color(np.array(instance_colour(a)) / 255)
    ax.set_ylim(-0.6, max(len(actors), 1) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (keyframes)")
    ax.set_title(title + ("" if used else f" (no action scores >= {score_threshold:.2f})"), fontsize=9)
    save_figure(fig, out_path)


def infer_ava(model, video: VideoInput, cfg: Config, device: torch.device, out_dir: Path, opts: AvaOptions,
              class_ids: np.ndarray, names: dict[int, str], render: bool = True,
              render_max_side: int | None = None, render_upscale: float = 1.0, amp: str = "none",
              progress: bool = True) -> dict[str, Path]:
    """All outputs of one input; returns their paths by kind."""
    rows, keyframes, _ = detect_actions(model, video, cfg, device, opts, class_ids, amp, progress)
    paths = {"detections": out_dir / f"{video.stem}.csv"}
    with atomic_output(paths["detections"]) as tmp:
        write_rows(tmp, rows)
    if render:
        paths["video"] = out_dir / f"{video.stem}.mp4"
        render_video(video, keyframes, names, class_ids, paths["video"], opts.score_threshold, render_max_side,
                     render_upscale, progress)
        paths["timeline"] = out_dir / f"{video.stem}_timeline.png"
        save_timeline(keyframes, names, class_ids, opts.keyframe_step, paths["timeline"], opts.score_threshold,
                      f"{video.stem}: actors and actions per keyframe")
    return paths


def render_held_out(model, cfg: Config, device: torch.device, out_dir: Path) -> dict[str, Path]:
    """The demo's last step: the first held-out video (its frame folder) through ``infer ava`` at the
    dataset's frame rate, rendered 4x larger, printed."""
    from seqformer.data.ava_format import read_ava_csv
    from seqformer.data.video_input import open_input

    video_id = sorted({str(v) for v in read_ava_csv(cfg.data.ava_val_csv, "gt").video_ids})[0]
    video = open_input(Path(cfg.data.ava_frames) / video_id, fps=cfg.data.ava_fps)
    class_ids, names = action_labels(cfg)
    written = infer_ava(model, video, cfg, device, prepare_out_dir(out_dir), AvaOptions(cfg.data.ava_val_short_side),
                        class_ids, names, render_upscale=4, progress=False)
    print(f"rendered held-out video {video_id} with `seqformer infer ava`: {', '.join(map(str, written.values()))}")
    return written
