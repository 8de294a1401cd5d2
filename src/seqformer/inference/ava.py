"""Action-detection inference: the top (actor box, action) pairs of every keyframe clip, as official CSV rows.

Rows are ``(video_id, second, x1, y1, x2, y2, action_id, score)`` with boxes normalised to the
uncropped frame, i.e. exactly the official AVA detection CSV.  :func:`predict_keyframes` returns
them grouped per keyframe with the keyframe's dataset index, so that distributed prediction can be
put back into the single-process order (:func:`seqformer.engine.distributed.gather_in_order`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from seqformer.config import Config
from seqformer.data.ava_dataset import build_ava_dataset
from seqformer.data.ava_format import read_labelmap, write_detections_csv
from seqformer.data.collate import collate_ava
from seqformer.engine.distributed import rank_share
from seqformer.models.ava_model import action_scores
from seqformer.utils.box_ops import box_cxcywh_to_xyxy

Row = tuple  # (video_id, second, x1, y1, x2, y2, action_id, score)


def keyframe_detections(outputs: dict, targets: list[dict], class_ids: np.ndarray, per_keyframe: int,
                        evaluated: np.ndarray | None = None) -> list[tuple]:
    """Rows ``(video_id, second, x1, y1, x2, y2, action_id, score)`` of the top (box, class) pairs per keyframe.

    Boxes are the keyframe boxes of the box tubes, normalised to the (uncropped) frame, so they are
    directly the official normalised coordinates.  Only the classes in ``evaluated`` (a bool mask
    over the model's classes; default all) compete for the ``per_keyframe`` rows: the official
    protocol drops unevaluated classes and then keeps the 50 best rows, so with
    ``per_keyframe >= 50`` nothing it would score is lost.
    """
    scores = action_scores(outputs)  # [B, Q, K]
    if evaluated is not None:
        scores = scores.masked_fill(~torch.as_tensor(evaluated, device=scores.device), -1.0)
    rows = []
    for b, target in enumerate(targets):
        key = int(target["key_frame"])
        boxes = box_cxcywh_to_xyxy(outputs["pred_boxes"][b, key]).clamp(0, 1).cpu().numpy()
        s = scores[b].cpu()
        k = min(per_keyframe, s.numel())
        top_scores, top_idx = torch.topk(s.flatten(), k)
        q_idx = (top_idx // s.shape[1]).numpy()
        c_idx = (top_idx % s.shape[1]).numpy()
        for q, c, sc in zip(q_idx, c_idx, top_scores.tolist()):
            if sc < 0:  # masked (unevaluated) class
                continue
            rows.append((target["video_id"], int(target["second"]), *boxes[q].tolist(), int(class_ids[c]), sc))
    return rows


def evaluated_classes(cfg: Config, class_ids: np.ndarray) -> np.ndarray | None:
    """Bool mask of the model's classes that the evaluation label map scores (None: all of them)."""
    if not cfg.data.ava_eval_labelmap:
        return None
    keep = {i for i, _ in read_labelmap(cfg.data.ava_eval_labelmap)}
    return np.array([c in keep for c in class_ids])


@torch.no_grad()
def predict_keyframes(model: nn.Module, cfg: Config, device: torch.device, split: str = "val",
                      shard: bool = False, progress: bool = True) -> list[tuple[int, list[Row]]]:
    """``(keyframe index, detection rows)`` for the keyframes of ``split`` (with ``shard``: this rank's share).

    Keyframes skipped as unreadable (``data.skip_corrupt_frames``) give no entry; their count is printed.
    """
    dataset = build_ava_dataset(cfg, split)
    indices = list(rank_share(len(dataset)) if shard else range(len(dataset)))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=cfg.optim.batch_size,
                                         shuffle=False, num_workers=cfg.data.num_workers, collate_fn=collate_ava)
    class_ids = np.array(dataset.class_ids)
    evaluated = evaluated_classes(cfg, class_ids)
    position = {dataset.key(i): i for i in indices}
    grouped: dict[int, list[Row]] = {}
    for samples, targets in tqdm(loader, desc="predict ava", unit="batch", disable=not progress):
        if samples is None:
            continue
        outputs = model(samples.to(device))
        for row in keyframe_detections(outputs, targets, class_ids, cfg.eval.ava_detections_per_keyframe, evaluated):
            grouped.setdefault(position[(row[0], row[1])], []).append(row)
        for target in targets:  # keyframes without a row still count as predicted
            grouped.setdefault(position[(target["video_id"], int(target["second"]))], [])
    skipped = dataset.skip_counts()
    if any(skipped.values()):
        print(f"predict ava: {skipped}")
    return sorted(grouped.items())


def write_rows(path: str | Path, rows: list[tuple]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        write_detections_csv(path, [], np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))
        return
    video_ids, seconds, x1, y1, x2, y2, actions, scores = zip(*rows)
    write_detections_csv(path, list(video_ids), np.array(seconds), np.stack([x1, y1, x2, y2], 1),
                         np.array(actions), np.array(scores))
