"""JHMDB-21 / UCF101-24 prediction: slide clips over each test video, link tubelets, write both detection files.

For every video of ``test_videos[split - 1]`` (or a given list), clips of the model's ``num_frames``
(``data.frame_sample_rate`` apart) are centred every ``eval.tube_clip_step`` frames (0: half a clip's span,
so consecutive clips overlap by half) from the first frame on, plus one on the last frame if the last clip
did not reach it; frames are resized only (no crop).  Each query's best ``eval.tube_labels_per_query``
classes scoring at least ``eval.tube_min_score`` become tubelets, which
:mod:`seqformer.inference.tube_linking` links into video tubes and turns into per-frame detections.

Outputs are the evaluation's inputs (docs/jhmdb_ucf.md): the per-frame CSV
``video,frame,x1,y1,x2,y2,label,score`` (1-based frame and label, pixels of the original frame, scores
with 6 decimals) and the tubes JSON ``[{"video", "label", "score", "boxes": [[frame, x1, y1, x2, y2], ...]}]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from seqformer.config import Config
from seqformer.data.collate import collate_ava
from seqformer.data.jhmdb_dataset import JhmdbDataset, build_jhmdb_dataset
from seqformer.engine.distributed import rank_share
from seqformer.inference.tube_linking import Tube, Tubelet, frame_detections, link_tubelets, make_tubelet
from seqformer.models.tube_model import tube_scores
from seqformer.utils.box_ops import box_cxcywh_to_xyxy


@dataclass
class VideoPrediction:
    video: str
    tubes: list[Tube]
    skipped_clips: int = 0


def clip_centres(num_frames_video: int, num_frames: int, sample_rate: int, step: int = 0) -> list[int]:
    """0-based centre frames of the sliding clips: every ``step`` frames, plus one reaching the last frame."""
    span = (num_frames - 1) * sample_rate + 1
    step = step or max(1, span // 2)
    centres = list(range(0, num_frames_video, step))
    reach = (num_frames - 1 - num_frames // 2) * sample_rate
    if centres[-1] + reach < num_frames_video - 1:
        centres.append(num_frames_video - 1)
    return centres


def clip_tubelets(outputs: dict, b: int, frame_ids: np.ndarray, orig_hw: tuple[int, int], labels_per_query: int,
                  min_score: float) -> list[Tubelet]:
    """Tubelets of clip ``b`` of a batch's outputs: each query's best classes, boxes in pixels of the original frame."""
    classes, presence = tube_scores(outputs)
    h, w = orig_hw
    scale = torch.tensor([w, h, w, h], dtype=torch.float64)
    boxes = (box_cxcywh_to_xyxy(outputs["pred_boxes"][b].double().cpu()).clamp(0, 1) * scale).numpy()  # [T, Q, 4]
    probs = classes[b].double().cpu()
    pres = presence[b].double().cpu().numpy()  # [T, Q]
    top_scores, top_labels = probs.topk(min(labels_per_query, probs.shape[1]), dim=1)
    out = []
    for q in range(probs.shape[0]):
        for score, label in zip(top_scores[q].tolist(), top_labels[q].tolist()):
            if score >= min_score:
                out.append(make_tubelet(label, score, frame_ids, boxes[:, q], pres[:, q]))
    return out


@torch.no_grad()
def predict_video(model: nn.Module, dataset: JhmdbDataset, video: str, cfg: Config,
                  device: torch.device) -> VideoPrediction:
    e = cfg.eval
    n = dataset.gt.frames(video)
    centres = clip_centres(n, dataset.num_frames, dataset.frame_sample_rate, e.tube_clip_step)
    clips: list[list[Tubelet]] = []
    skipped = 0
    for start in range(0, len(centres), cfg.optim.batch_size):
        samples = [dataset.load_clip(video, c) for c in centres[start:start + cfg.optim.batch_size]]
        skipped += sum(s is None for s in samples)
        batch, targets = collate_ava(samples)
        if batch is None:
            continue
        outputs = model(batch.to(device))
        for b, target in enumerate(targets):
            hw = tuple(int(x) for x in target["orig_size"])
            clips.append(clip_tubelets(outputs, b, target["frame_ids"].numpy(), hw, e.tube_labels_per_query,
                                       e.tube_min_score))
    return VideoPrediction(video, link_tubelets(clips, e.tube_link_iou, e.tube_presence_threshold), skipped)


def predict_tubes(model: nn.Module, cfg: Config, device: torch.device, videos: list[str] | None = None,
                  shard: bool = False, progress: bool = True) -> list[tuple[int, VideoPrediction]]:
    """``(position, prediction)`` of each test video of ``data.jhmdb_split`` (or of ``videos``).

    With ``shard`` only this rank's share of the videos.
    """
    dataset = build_jhmdb_dataset(cfg, "test")
    videos = dataset.videos if videos is None else videos
    positions = list(rank_share(len(videos)) if shard else range(len(videos)))
    out = []
    for i in tqdm(positions, desc=f"predict {cfg.model.task}", unit="video", disable=not progress):
        out.append((i, predict_video(model, dataset, videos[i], cfg, device)))
    skipped = sum(p.skipped_clips for _, p in out)
    if skipped:
        print(f"predict {cfg.model.task}: {skipped} clips skipped as unreadable ({dataset.skip_counts()})")
    return out


def write_predictions(predictions: list[VideoPrediction], frames_csv: str | Path, tubes_json: str | Path,
                      frame_nms: float = 0.6) -> tuple[int, int]:
    """Write the per-frame CSV and the tubes JSON (1-based labels); returns (rows, tubes) written."""
    from seqformer.evaluation.jhmdb_inputs import write_frame_detections, write_tubes

    videos, columns, tubes = [], [], []
    for p in predictions:
        frames, boxes, labels, scores = frame_detections(p.tubes, frame_nms)
        videos += [p.video] * len(frames)
        columns.append((frames, boxes, labels + 1, scores))
        for t in sorted(p.tubes, key=lambda t: -t.score):
            tubes.append({"video": p.video, "label": t.label + 1, "score": t.score,
                          "boxes": np.concatenate([t.frames[:, None], np.round(t.boxes, 3)], 1)})
    for path in (frames_csv, tubes_json):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if columns:
        frames, boxes, labels, scores = (np.concatenate(c) for c in zip(*columns))
    else:
        frames, boxes, labels, scores = np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0)
    write_frame_detections(frames_csv, videos, frames, boxes, labels, scores)
    write_tubes(tubes_json, tubes)
    return len(videos), len(tubes)
