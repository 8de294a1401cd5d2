"""``seqformer infer vis``: video instance segmentation of a video file or frame folder.

Two passes over the input, each decoding lazily, so memory does not grow with the number of
frames held (only with the per-frame RLEs of the results, which are the output itself):

1. inference: frames resized exactly as ``predict vis`` resizes them (:func:`network_frame`) are fed
   to the linked-clip inference (:func:`seqformer.inference.long_video.predict_frame_stream`: windows
   of ``eval.max_frames_per_clip`` frames overlapping by ``eval.clip_overlap``), giving the YouTube-VIS
   results of one ``videos`` entry describing the input;
2. rendering: the input is decoded again and every instance scoring at least ``--score-threshold``
   is drawn from its RLEs with the colour of its ``instance_id`` (also written into the JSON).

Outputs: ``<stem>.json`` (results), ``<stem>_video.json`` (the matching minimal YouTube-VIS file:
``videos`` + ``categories``, no annotations), ``<stem>.mp4`` and ``<stem>_tracks.png``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import torch
import torchvision.transforms as T
from PIL import Image

from seqformer.config import Config
from seqformer.data.video_input import VideoInput
from seqformer.data.ytvis_categories import YTVIS_2019_CATEGORIES
from seqformer.inference.long_video import predict_frame_stream
from seqformer.inference.video_common import (frame_progress, inference_mode, prepare_out_dir, report_reading,
                                               save_figure, write_json)
from seqformer.utils.colour import IMAGENET_MEAN, IMAGENET_STD
from seqformer.utils.render import Drawable, VideoWriter, fit_size, render_frame

DEFAULT_CLIP_LEN = 36  # when the config sets no limit (eval.max_frames_per_clip=0): a long YouTube-VIS video
DEFAULT_OVERLAP = 8


@dataclass
class VisOptions:
    short_side: int
    max_size: int | None
    clip_len: int
    overlap: int
    topk: int
    mask_threshold: float
    null_score: float
    score_threshold: float = 0.3
    video_id: int = 1


def vis_options(cfg: Config, short_side: int | None = None, max_size: int | None = None,
                score_threshold: float = 0.3) -> VisOptions:
    e = cfg.eval
    clip_len = e.max_frames_per_clip or DEFAULT_CLIP_LEN
    overlap = e.clip_overlap if e.max_frames_per_clip else DEFAULT_OVERLAP
    return VisOptions(short_side or cfg.data.val_short_side, max_size or cfg.data.val_max_size, clip_len,
                      min(overlap, clip_len - 1), e.topk, e.mask_threshold, e.null_score, score_threshold)


def category_names(cfg: Config, categories_json: str | Path | None = None) -> list[dict]:
    """Categories to name the classes: ``categories_json`` if given, else the config's validation
    annotation file when it exists, else YouTube-VIS 2019's when the model has its 42 classes."""
    candidates = [Path(categories_json)] if categories_json else []
    d = cfg.data
    if d.ytvis_path and d.val_ann:
        candidates.append(Path(d.ytvis_path) / d.val_ann)
    for path in candidates:
        if path.is_file():
            data = json.loads(path.read_text())
            if isinstance(data, dict) and data.get("categories"):
                return [{"id": int(c["id"]), "name": str(c["name"])} for c in data["categories"]]
    if cfg.model.num_classes in (41, 42):
        return [{"id": i, "name": n} for i, n in enumerate(YTVIS_2019_CATEGORIES, start=1)]
    return [{"id": i, "name": f"class {i}"} for i in range(cfg.model.num_classes)]


def predict_input(model, video: VideoInput, opts: VisOptions, device: torch.device, amp: str = "none",
                  progress: bool = True) -> tuple[list[dict], int]:
    """Results-json entries (each with ``instance_id``) of one input and its frame count."""
    # the transform of ``predict vis`` (inference.vis.load_frames), so a frame folder gives the same numbers
    transform = T.Compose([T.Resize(opts.short_side, max_size=opts.max_size), T.ToTensor(),
                           T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    frames = (transform(Image.fromarray(f)).to(device)
              for f in frame_progress(video.frames(), video, f"infer {video.stem}", progress))
    with inference_mode(device, amp):
        results, length = predict_frame_stream(
            model, frames, (video.height, video.width), opts.video_id, video.stem, opts.clip_len, opts.overlap,
            opts.topk, opts.mask_threshold, opts.null_score, track_ids=True)
    report_reading(video, length)
    number_instances(results)
    return results, length


def number_instances(results: list[dict]) -> None:
    """Replace the linker's ``track`` by ``instance_id`` 1, 2, ... in order of first appearance."""
    first: dict[int, int] = {}
    for r in results:
        if r["track"] not in first:
            segs = r["segmentations"]
            areas = [mask_util.area(s) if s is not None else 0 for s in segs]
            first[r["track"]] = next((t for t, a in enumerate(areas) if a > 0), len(segs))
    order = sorted(first, key=lambda k: (first[k], k))
    ids = {track: i + 1 for i, track in enumerate(order)}
    for r in results:
        r["instance_id"] = ids[r.pop("track")]


def shown_instances(results: list[dict], score_threshold: float) -> list[dict]:
    """One entry per instance (its best class) scoring at least ``score_threshold``, with masks."""
    best: dict[int, dict] = {}
    for r in results:
        if r["score"] >= score_threshold and r["segmentations"][0] is not None:
            if r["instance_id"] not in best or r["score"] > best[r["instance_id"]]["score"]:
                best[r["instance_id"]] = r
    return [best[k] for k in sorted(best)]


def video_entry(video: VideoInput, length: int, video_id: int = 1) -> dict:
    """A YouTube-VIS ``videos`` entry for the input (frame names are the timeline's, for reference)."""
    return {"id": video_id, "name": video.stem, "width": video.width, "height": video.height, "length": length,
            "fps": video.fps, "start_second": video.start, "source": str(video.path),
            "file_names": [f"{video.stem}/{k:05d}.jpg" for k in range(length)]}


def render_video(video: VideoInput, results: list[dict], names: dict[int, str], out_path: Path,
                 score_threshold: float, render_max_side: int | None = None, render_upscale: float = 1.0,
                 progress: bool = True) -> int:
    """Decode the input again and write it with the shown instances' masks; returns the frame count."""
    shown = shown_instances(results, score_threshold)
    out_hw = fit_size(video.height, video.width, render_max_side, render_upscale)
    legend = f"score >= {score_threshold:.2f}"
    with VideoWriter(out_path, video.fps, *out_hw) as writer:
        for t, frame in enumerate(frame_progress(video.frames(), video, f"render {video.stem}", progress)):
            items = []
            for r in shown:
                if t >= len(r["segmentations"]):
                    continue
                mask = mask_util.decode(r["segmentations"][t])
                if mask.any():
                    items.append(Drawable(r["instance_id"], f"#{r['instance_id']} "
                                          f"{names.get(r['category_id'], r['category_id'])} {r['score']:.2f}", mask))
            writer.write(render_frame(frame, items, legend, out_hw=out_hw))
    return writer.frames


def save_tracks_plot(results: list[dict], names: dict[int, str], fps: float, length: int, out_path: Path,
                     score_threshold: float, title: str) -> None:
    """Instances x time: a bar where each shown instance's mask is present, labelled with its class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqformer.utils.render import instance_colour

    shown = shown_instances(results, score_threshold)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.35 * max(len(shown), 1)))
    for row, r in enumerate(shown):
        present = np.array([mask_util.area(s) > 0 for s in r["segmentations"]], bool)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], present.astype(np.int8), [0]])))
        spans = [(s / fps, (e - s) / fps) for s, e in zip(edges[::2], edges[1::2])]
        ax.broken_barh(spans, (row - 0.4, 0.8), color=np.array(instance_colour(r["instance_id"])) / 255)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([f"#{r['instance_id']} {names.get(r['category_id'], r['category_id'])} {r['score']:.2f}"
                        for r in shown])
    ax.set_xlim(0, max(length, 1) / fps)
    ax.set_ylim(-0.6, max(len(shown), 1) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title(title + ("" if shown else f" (no instance scores >= {score_threshold:.2f})"), fontsize=9)
    save_figure(fig, out_path)


def infer_vis(model, video: VideoInput, cfg: Config, device: torch.device, out_dir: Path, opts: VisOptions,
              categories: list[dict], render: bool = True, render_max_side: int | None = None,
              render_upscale: float = 1.0, amp: str = "none", progress: bool = True) -> dict[str, Path]:
    """All outputs of one input; returns their paths by kind."""
    results, length = predict_input(model, video, opts, device, amp, progress)
    stem = video.stem
    paths = {"results": out_dir / f"{stem}.json", "videos": out_dir / f"{stem}_video.json"}
    write_json(paths["videos"], {"info": {"description": f"seqformer infer vis: {video.path}"},
                                 "videos": [video_entry(video, length, opts.video_id)],
                                 "categories": categories, "annotations": []})
    write_json(paths["results"], results)
    if render:
        names = {c["id"]: c["name"] for c in categories}
        paths["video"] = out_dir / f"{stem}.mp4"
        render_video(video, results, names, paths["video"], opts.score_threshold, render_max_side, render_upscale,
                     progress)
        paths["tracks"] = out_dir / f"{stem}_tracks.png"
        save_tracks_plot(results, names, video.fps, length, paths["tracks"], opts.score_threshold,
                         f"{stem}: instances over time")
    return paths


def render_held_out(model, cfg: Config, device: torch.device, frames_dir: Path, out_dir: Path) -> dict[str, Path]:
    """The demo's last step: one held-out synthetic video through ``infer vis`` (what
    ``seqformer infer vis --input <frames_dir> --fps 6 --render-upscale 4`` writes), printed."""
    from seqformer.data.video_input import open_input

    video = open_input(frames_dir, fps=6)
    written = infer_vis(model, video, cfg, device, prepare_out_dir(out_dir), vis_options(cfg), category_names(cfg),
                        render_upscale=4, progress=False)
    print(f"rendered held-out video {video.stem} with `seqformer infer vis`: {', '.join(map(str, written.values()))}")
    return written
