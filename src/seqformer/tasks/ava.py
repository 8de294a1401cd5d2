"""Spatio-temporal action detection (AVA v2.1/v2.2 and AVA-format datasets) as an engine task.

The adapter picks the model (the shared core + actor/action heads), builds the one matcher the
criterion uses, and wires the dataset, inference (:mod:`seqformer.inference.ava`) and the official
frame-mAP (:mod:`seqformer.evaluation.ava_eval`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seqformer.config import Config, ConfigError
from seqformer.data.ava_dataset import build_ava_dataset
from seqformer.data.collate import collate_ava
from seqformer.engine.distributed import gather_in_order
from seqformer.inference.ava import Row, predict_keyframes, write_rows
from seqformer.models.ava_criterion import SetCriterionAVA, build_ava_criterion
from seqformer.models.ava_matcher import build_ava_matcher
from seqformer.models.ava_model import ActionSeqFormer
from seqformer.models.build import build_video_detr
from seqformer.tasks.base import MatchedTask


class AVATask(MatchedTask):
    name = "ava"
    best_metric = "mAP"

    build_matcher = staticmethod(build_ava_matcher)

    def build_model(self, cfg: Config) -> ActionSeqFormer:
        m = cfg.model
        return ActionSeqFormer(build_video_detr(cfg), actor_score=m.actor_score, tube_features=m.tube_features,
                               num_frames=m.num_frames)

    def build_criterion(self, cfg: Config) -> SetCriterionAVA:
        return build_ava_criterion(cfg, self.matcher(cfg))

    def build_dataset(self, cfg: Config, split: str) -> torch.utils.data.Dataset:
        dataset = build_ava_dataset(cfg, split)
        if len(dataset.class_ids) != cfg.model.num_classes:
            raise ConfigError(f"{cfg.data.ava_labelmap} has {len(dataset.class_ids)} classes but model.num_classes is "
                             f"{cfg.model.num_classes}; set model.num_classes={len(dataset.class_ids)}")
        return dataset

    def collate_fn(self, batch):
        return collate_ava(batch)

    def predict(self, model: nn.Module, cfg: Config, device: torch.device, split: str = "val",
                progress: bool = True) -> list[Row]:
        """Detection rows of every keyframe of ``split`` (one process)."""
        return [row for _, rows in predict_keyframes(model, cfg, device, split, progress=progress) for row in rows]

    def evaluate(self, model: nn.Module, cfg: Config, device: torch.device, output_dir: str, epoch: int) -> dict[str, float]:
        from seqformer.evaluation.ava_eval import evaluate_ava

        rows = gather_in_order(predict_keyframes(model, cfg, device, "val", shard=True, progress=False))
        if rows is None:
            return {}
        out = Path(output_dir) / f"detections_val_epoch{epoch:04d}.csv"
        write_rows(out, rows)
        labelmap = cfg.data.ava_eval_labelmap or cfg.data.ava_labelmap
        result = evaluate_ava(labelmap, cfg.data.ava_val_csv, out, cfg.data.ava_exclusions)
        return {"mAP": float(result["mAP"])}
