"""Action-tube detection on JHMDB-21 and UCF101-24 (ACT ground-truth pickles) as an engine task.

The adapter picks the model (the shared core + the tube head), builds the one matcher the criterion
uses, and wires the tube dataset, sliding-clip prediction with tubelet linking
(:mod:`seqformer.inference.jhmdb`) and the ACT/MOC frame-mAP and video-mAP
(:mod:`seqformer.evaluation.jhmdb_eval`).  ``jhmdb`` and ``ucf24`` are the same task under two names
(the datasets share one format); the name only labels logs and picks the dataset defaults of the configs.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seqformer.config import Config
from seqformer.data.collate import collate_ava
from seqformer.data.jhmdb_dataset import JhmdbDataset, build_jhmdb_dataset
from seqformer.engine.distributed import gather_in_order
from seqformer.inference.jhmdb import VideoPrediction, predict_tubes, write_predictions
from seqformer.models.build import build_video_detr
from seqformer.models.tube_criterion import SetCriterionTube, build_tube_criterion
from seqformer.models.tube_matcher import build_tube_matcher
from seqformer.models.tube_model import TubeSeqFormer
from seqformer.tasks.base import MatchedTask


class JhmdbTask(MatchedTask):
    name = "jhmdb"
    best_metric = "frame_mAP"

    build_matcher = staticmethod(build_tube_matcher)

    def build_model(self, cfg: Config) -> TubeSeqFormer:
        m = cfg.model
        return TubeSeqFormer(build_video_detr(cfg), num_frames=m.num_frames, tube_features=m.tube_features,
                             presence_score=m.presence_score)

    def build_criterion(self, cfg: Config) -> SetCriterionTube:
        return build_tube_criterion(cfg, self.matcher(cfg))

    def build_dataset(self, cfg: Config, split: str) -> JhmdbDataset:
        dataset = build_jhmdb_dataset(cfg, "train" if split == "train" else "test")
        if dataset.gt.num_labels != cfg.model.num_classes:
            raise ValueError(f"{cfg.data.jhmdb_groundtruth} has {dataset.gt.num_labels} labels but model.num_classes "
                             f"is {cfg.model.num_classes}; set model.num_classes={dataset.gt.num_labels}")
        return dataset

    def collate_fn(self, batch):
        return collate_ava(batch)

    def predict(self, model: nn.Module, cfg: Config, device: torch.device, videos: list[str] | None = None,
                progress: bool = True) -> list[VideoPrediction]:
        """Linked tubes of every test video of ``data.jhmdb_split`` (one process)."""
        return [p for _, p in predict_tubes(model, cfg, device, videos, progress=progress)]

    def evaluate(self, model: nn.Module, cfg: Config, device: torch.device, output_dir: str,
                 epoch: int) -> dict[str, float]:
        from seqformer.evaluation.jhmdb_eval import evaluate_jhmdb

        mine = predict_tubes(model, cfg, device, shard=True, progress=False)
        predictions = gather_in_order([(i, [p]) for i, p in mine])
        if predictions is None:
            return {}
        frames_csv = Path(output_dir) / f"frame_detections_epoch{epoch:04d}.csv"
        tubes_json = Path(output_dir) / f"tubes_epoch{epoch:04d}.json"
        write_predictions(predictions, frames_csv, tubes_json, cfg.eval.tube_frame_nms)
        result = evaluate_jhmdb(cfg.data.jhmdb_groundtruth, cfg.data.jhmdb_split, frames_csv, tubes_json)
        return {"frame_mAP": float(result["frame_mAP"]), "video_mAP@0.5": float(result["video_mAP"]["0.5"])}


class Ucf24Task(JhmdbTask):
    name = "ucf24"
