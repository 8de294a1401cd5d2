"""Video instance segmentation (YouTube-VIS 2019/2021, COCO joint training) as an engine task."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..config import Config
from ..data.clip_transforms import build_train_transforms
from ..data.collate import collate_clips
from ..data.ytvis import YTVISDataset
from ..engine.predict_vis import iter_predictions, read_videos
from ..models.build import build_model
from ..models.criterion import build_vis_criterion
from ..models.matcher import build_vis_matcher


def vis_paths(cfg: Config, split: str) -> tuple[Path, Path]:
    """(image folder, annotation json) of ``split`` under ``data.ytvis_path``."""
    root = Path(cfg.data.ytvis_path)
    if split == "train":
        return root / cfg.data.train_img_dir, root / cfg.data.train_ann
    return root / cfg.data.val_img_dir, root / cfg.data.val_ann


class VISTask:
    name = "vis"
    best_metric = "AP"

    def build_model(self, cfg: Config) -> nn.Module:
        model = build_model(cfg)
        model.matcher = build_vis_matcher(cfg)
        return model

    def build_criterion(self, cfg: Config) -> nn.Module:
        return build_vis_criterion(cfg)

    def build_dataset(self, cfg: Config, split: str) -> torch.utils.data.Dataset:
        d = cfg.data
        img_dir, ann = vis_paths(cfg, split)
        transforms = build_train_transforms(d.train_scales, d.train_max_size, d.crop_scales, d.crop_size, d.photometric)
        dataset = YTVISDataset(img_dir, ann, num_frames=cfg.model.num_frames, transforms=transforms)
        if split == "train" and d.dataset_file.lower() == "jointcoco":
            from ..data.coco_video import COCOPseudoVideoDataset, build_joint_dataset

            coco_tf = build_train_transforms(d.train_scales, d.train_max_size, d.crop_scales, d.crop_size, photometric=False)
            coco = COCOPseudoVideoDataset(Path(d.coco_path) / "train2017", Path(d.coco_path) / d.coco_ann,
                                          transforms=coco_tf, num_frames=cfg.model.num_frames)
            dataset = build_joint_dataset(dataset, coco, d.coco_ratio, seed=cfg.train.seed)
        return dataset

    def collate_fn(self, batch):
        return collate_clips(batch)

    @torch.no_grad()
    def predict(self, model: nn.Module, cfg: Config, device: torch.device, split: str = "val") -> list[dict]:
        """Results-json entries of this rank's share of the videos of ``split``."""
        img_dir, ann = vis_paths(cfg, split)
        videos = read_videos(ann)
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        results: list[dict] = []
        for entries in iter_predictions(model, img_dir, videos[rank::world], device, short_side=cfg.data.val_short_side,
                                        topk=cfg.eval.topk, mask_threshold=cfg.eval.mask_threshold,
                                        null_score=cfg.eval.null_score,
                             max_frames_per_clip=cfg.eval.max_frames_per_clip, clip_overlap=cfg.eval.clip_overlap,
                             max_size=cfg.data.val_max_size):
            results.extend(entries)
        return results

    def evaluate(self, model: nn.Module, cfg: Config, device: torch.device, output_dir: str, epoch: int) -> dict[str, float]:
        from ..evaluation.ytvis_eval import evaluate_ytvis

        results = self.predict(model, cfg, device)
        if dist.is_initialized():
            gathered: list[list[dict]] = [None] * dist.get_world_size()  # type: ignore[list-item]
            dist.all_gather_object(gathered, results)
            results = [r for part in gathered for r in part]
            if dist.get_rank() != 0:
                return {}
        out = Path(output_dir) / f"results_val_epoch{epoch:04d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results))
        _, ann = vis_paths(cfg, "val")
        return evaluate_ytvis(ann, results)
