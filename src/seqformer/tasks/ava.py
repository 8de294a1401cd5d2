"""Spatio-temporal action detection (AVA v2.1/v2.2 and AVA-format datasets) as an engine task."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from ..config import Config
from ..data.ava import build_ava_dataset, collate_ava
from ..data.ava_io import read_labelmap, write_detections_csv
from ..models.action import action_scores
from ..models.build import build_model
from ..models.criterion import build_ava_criterion
from ..utils.box_ops import box_cxcywh_to_xyxy


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


class AVATask:
    name = "ava"
    best_metric = "mAP"

    def build_model(self, cfg: Config) -> nn.Module:
        return build_model(cfg)

    def build_criterion(self, cfg: Config) -> nn.Module:
        return build_ava_criterion(cfg)

    def build_dataset(self, cfg: Config, split: str) -> torch.utils.data.Dataset:
        dataset = build_ava_dataset(cfg, split)
        if len(dataset.class_ids) != cfg.model.num_classes:
            raise ValueError(f"{cfg.data.ava_labelmap} has {len(dataset.class_ids)} classes but model.num_classes is "
                             f"{cfg.model.num_classes}; set model.num_classes={len(dataset.class_ids)}")
        return dataset

    def collate_fn(self, batch):
        return collate_ava(batch)

    @torch.no_grad()
    def predict(self, model: nn.Module, cfg: Config, device: torch.device, split: str = "val", progress: bool = True) -> list[tuple]:
        """Detection rows for this rank's share of the keyframes of ``split``."""
        dataset = build_ava_dataset(cfg, split)
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        subset = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world)))
        loader = torch.utils.data.DataLoader(subset, batch_size=cfg.optim.batch_size, shuffle=False,
                                             num_workers=cfg.data.num_workers, collate_fn=collate_ava)
        class_ids = np.array(dataset.class_ids)
        evaluated = None
        if cfg.data.ava_eval_labelmap:
            keep = {i for i, _ in read_labelmap(cfg.data.ava_eval_labelmap)}
            evaluated = np.array([c in keep for c in class_ids])
        rows: list[tuple] = []
        for samples, targets in tqdm(loader, desc="predict ava", unit="batch", disable=not progress or rank != 0):
            if samples is None:
                continue
            outputs = model(samples.to(device))
            rows += keyframe_detections(outputs, targets, class_ids, cfg.eval.ava_detections_per_keyframe, evaluated)
        skipped = dataset.skip_counts()
        if any(skipped.values()):
            print(f"predict ava: {skipped}")
        return rows

    def evaluate(self, model: nn.Module, cfg: Config, device: torch.device, output_dir: str, epoch: int) -> dict[str, float]:
        from ..evaluation.ava_eval import evaluate_ava

        rows = self.predict(model, cfg, device, progress=False)
        if dist.is_initialized():
            gathered: list[list[tuple]] = [None] * dist.get_world_size()  # type: ignore[list-item]
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
            if dist.get_rank() != 0:
                return {}
        out = Path(output_dir) / f"detections_val_epoch{epoch:04d}.csv"
        write_rows(out, rows)
        labelmap = cfg.data.ava_eval_labelmap or cfg.data.ava_labelmap
        result = evaluate_ava(labelmap, cfg.data.ava_val_csv, out, cfg.data.ava_exclusions)
        return {"mAP": float(result["mAP"])}


def write_rows(path: str | Path, rows: list[tuple]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        write_detections_csv(path, [], np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))
        return
    video_ids, seconds, x1, y1, x2, y2, actions, scores = zip(*rows)
    write_detections_csv(path, list(video_ids), np.array(seconds), np.stack([x1, y1, x2, y2], 1),
                         np.array(actions), np.array(scores))
