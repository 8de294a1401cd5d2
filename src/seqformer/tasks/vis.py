"""Video instance segmentation (YouTube-VIS 2019/2021, COCO joint training) as an engine task.

The adapter picks the model (the shared core + SeqFormer's mask head), builds the one matcher that
both the model (matching inside its forward) and the criterion use, and wires the datasets,
inference (:mod:`seqformer.inference.vis`) and evaluation (:mod:`seqformer.evaluation.ytvis_eval`).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from seqformer.config import Config, ConfigError
from seqformer.data.collate import collate_clips
from seqformer.data.ytvis_dataset import YTVISDataset
from seqformer.data.ytvis_transforms import build_train_transforms
from seqformer.engine.distributed import gather_in_order
from seqformer.inference.vis import predict_videos
from seqformer.models.build import build_video_detr
from seqformer.models.vis_criterion import SetCriterionVIS, build_vis_criterion
from seqformer.models.vis_matcher import build_vis_matcher
from seqformer.models.vis_model import SeqFormer
from seqformer.tasks.base import MatchedTask


def vis_paths(cfg: Config, split: str) -> tuple[Path, Path]:
    """(image folder, annotation json) of ``split`` under ``data.ytvis_path``."""
    root = Path(cfg.data.ytvis_path)
    if split == "train":
        return root / cfg.data.train_img_dir, root / cfg.data.train_ann
    return root / cfg.data.val_img_dir, root / cfg.data.val_ann


class VISTask(MatchedTask):
    name = "vis"
    best_metric = "AP"

    build_matcher = staticmethod(build_vis_matcher)

    def build_model(self, cfg: Config) -> SeqFormer:
        m = cfg.model
        detr = build_video_detr(cfg)
        if m.masks and m.num_feature_levels < len(detr.backbone.strides):
            raise ConfigError("model.masks needs num_feature_levels >= 3 (the mask head fuses strides 8/16/32)")
        return SeqFormer(detr, rel_coord=m.rel_coord, mask_out_stride=m.mask_out_stride, matcher=self.matcher(cfg),
                         masks=m.masks, mask_channels=m.mask_channels)

    def build_criterion(self, cfg: Config) -> SetCriterionVIS:
        return build_vis_criterion(cfg, self.matcher(cfg))

    def build_dataset(self, cfg: Config, split: str) -> torch.utils.data.Dataset:
        d = cfg.data
        img_dir, ann = vis_paths(cfg, split)
        transforms = build_train_transforms(d.train_scales, d.train_max_size, d.crop_scales, d.crop_size, d.photometric)
        dataset = YTVISDataset(img_dir, ann, num_frames=cfg.model.num_frames, transforms=transforms)
        if split == "train" and d.dataset_file.lower() == "jointcoco":
            from seqformer.data.coco_video import COCOPseudoVideoDataset, build_joint_dataset

            coco_tf = build_train_transforms(d.train_scales, d.train_max_size, d.crop_scales, d.crop_size, photometric=False)
            coco = COCOPseudoVideoDataset(Path(d.coco_path) / "train2017", Path(d.coco_path) / d.coco_ann,
                                          transforms=coco_tf, num_frames=cfg.model.num_frames)
            dataset = build_joint_dataset(dataset, coco, d.coco_ratio, seed=cfg.train.seed)
        return dataset

    def collate_fn(self, batch):
        return collate_clips(batch)

    def predict(self, model: nn.Module, cfg: Config, device: torch.device, split: str = "val",
                progress: bool = False) -> list[dict]:
        """Results-json entries of every video of ``split`` (one process)."""
        img_dir, ann = vis_paths(cfg, split)
        return [r for _, rows in predict_videos(model, cfg, device, img_dir, ann, progress=progress) for r in rows]

    def evaluate(self, model: nn.Module, cfg: Config, device: torch.device, output_dir: str, epoch: int) -> dict[str, float]:
        from seqformer.evaluation.ytvis_eval import evaluate_ytvis

        img_dir, ann = vis_paths(cfg, "val")
        results = gather_in_order(predict_videos(model, cfg, device, img_dir, ann, shard=True))
        if results is None:
            return {}
        out = Path(output_dir) / f"results_val_epoch{epoch:04d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results))
        return evaluate_ytvis(ann, results)
