"""YouTube-VIS clip dataset for training (original sampling rule) and whole-video dataset for inference.

``YTVISDataset[i]`` returns ``(frames [T,3,H,W] float32, target)`` with target keys ``labels [N]``,
``boxes [N,T,4]`` (cxcywh / unpadded (w, h), clamped >= 1e-6), ``masks uint8 [N,T,H,W]``, ``valid bool [N,T]``,
``size``/``orig_size`` (h, w), ``video_id`` (the json id) and ``frame_ids [T]`` (frame indices in the video).
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from seqformer.data.shared_counter import SharedCounter
from seqformer.data.ytvis_format import YTVISAnnotations, YTVISFormatError, load_ytvis_json, null_mismatches
from seqformer.data.ytvis_transforms import ClipTransform, ToTensorNormalize
from seqformer.errors import warn


def sample_clip_frames(ref: int, length: int, num_frames: int, rng: random.Random | None = None) -> list[int]:
    """The original's frame rule: ``ref``, one local frame on each side at distance U[1,3] (clipped to the video),
    then ``num_frames - 3`` global frames, sorted; duplicates are possible.

    Global frames come from the frames outside the local window (``all[:min] + all[max:]``) when that pool is
    large enough, else from the whole video, else all frames plus random extra ones.  The original calls
    ``random.sample`` for the extras, which crashes when more than ``length`` are needed; we draw them with
    replacement.  For ``num_frames < 3`` the original keeps the first ``num_frames`` sorted indices (so
    ``num_frames=1`` yields the left local frame, not ``ref``); we keep that.
    """
    rng = random if rng is None else rng
    before, after = rng.randint(1, 3), rng.randint(1, 3)
    picked = [ref, max(0, ref - before), min(length - 1, ref + after)]
    n_global = num_frames - len(picked)
    if n_global > 0:
        pool = list(range(min(picked))) + list(range(max(picked), length))
        if len(pool) > n_global:
            picked += rng.sample(pool, n_global)
        elif length >= n_global:
            picked += rng.sample(range(length), n_global)
        else:
            picked += list(range(length)) + [rng.randrange(length) for _ in range(n_global - length)]
    return sorted(picked)[:num_frames]


def load_frames(img_dir: Path, video: dict, frames: list[int], where: str) -> list[Image.Image]:
    """Open the given frames as RGB, checking that their size matches the json (masks depend on it)."""
    images = []
    for f in frames:
        path = img_dir / video["file_names"][f]
        try:
            img = Image.open(path).convert("RGB")
        except (OSError, ValueError) as err:
            raise YTVISFormatError(f"{where}: video {video['id']} frame {f}: cannot read image {path}: {err}") from err
        if img.size != (video["width"], video["height"]):
            raise YTVISFormatError(f"{where}: video {video['id']}: image {path} is {img.size[0]}x{img.size[1]}, "
                                   f"json says {video['width']}x{video['height']}")
        images.append(img)
    return images


def mask_box(mask: np.ndarray) -> list[float] | None:
    """Tight ``[x, y, w, h]`` of a binary mask (pixel-edge convention), None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]


def build_clip_target(anns: YTVISAnnotations, video: dict, frames: list[int]) -> dict:
    """Pre-augmentation target of a clip: absolute xyxy boxes (absent frame -> zeros), bool masks, valid flags.

    Crowd annotations are ignored as in the original.  A missing ``bboxes`` field is filled from the masks.
    """
    h, w = video["height"], video["width"]
    instances = [a for a in anns.anns_by_video[video["id"]] if not a.get("iscrowd", 0)]
    n, t = len(instances), len(frames)
    boxes = torch.zeros((n, t, 4), dtype=torch.float32)
    masks = torch.zeros((n, t, h, w), dtype=torch.bool)
    valid = torch.zeros((n, t), dtype=torch.bool)
    decoded: dict[tuple[int, int], np.ndarray] = {}
    for i, ann in enumerate(instances):
        for j, f in enumerate(frames):
            if (i, f) not in decoded:
                decoded[(i, f)] = anns.decode_mask(ann, f)
            mask = decoded[(i, f)]
            masks[i, j] = torch.from_numpy(mask.astype(bool))
            box = ann["bboxes"][f] if "bboxes" in ann else mask_box(mask)
            if box is not None:
                valid[i, j] = True
                boxes[i, j] = torch.tensor([box[0], box[1], box[0] + box[2], box[1] + box[3]], dtype=torch.float32)
    boxes[..., 0::2].clamp_(0, w)
    boxes[..., 1::2].clamp_(0, h)
    return {
        "labels": torch.tensor([a["category_id"] for a in instances], dtype=torch.int64),
        "boxes": boxes, "masks": masks, "valid": valid,
        "size": torch.tensor([h, w]), "orig_size": torch.tensor([h, w], dtype=torch.int64),
        "video_id": int(video["id"]), "frame_ids": torch.tensor(frames, dtype=torch.int64),
    }


class YTVISDataset(Dataset):
    """Training clips: one item per (video, reference frame) pair, sampled with :func:`sample_clip_frames`.

    ``transforms`` must end with ``ToTensorNormalize`` (the default when None: no augmentation).
    A clip left without instances by augmentation is redrawn: up to ``max_retries`` new draws of the same item,
    then the first frame of the next video that has annotations (deterministic fallback), and so on over all
    videos before giving up with an error.  Every failed draw increments ``num_resampled``.
    """

    def __init__(self, img_dir: str | Path, ann_file: str | Path, num_frames: int = 5,
                 transforms: ClipTransform | None = None, max_retries: int = 10, check_images: bool = True,
                 rng: random.Random | None = None):
        self.img_dir = Path(img_dir)
        self.ann_file = str(ann_file)
        self.anns = load_ytvis_json(ann_file, img_dir if check_images else None)
        if not self.anns.has_annotations:
            raise YTVISFormatError(f"{ann_file}: no 'annotations' list; a training set needs annotations "
                                   "(is this a valid/test file without ground truth?)")
        mismatched = null_mismatches(self.anns.annotations)
        if mismatched["bboxes"]:
            warn(f"{ann_file}: {mismatched['bboxes']} annotation frame(s) have a null bbox where the segmentation "
                 "is present or the other way round; training uses the bbox to decide whether the instance "
                 "is visible in a frame")
        self.num_frames = num_frames
        self.transforms = transforms if transforms is not None else ToTensorNormalize()
        self.max_retries = max_retries
        self.rng = rng
        self.items = [(v, f) for v, video in enumerate(self.anns.videos) for f in range(len(video["file_names"]))]
        self.video_start = np.cumsum([0] + [len(v["file_names"]) for v in self.anns.videos])[:-1].tolist()
        self.has_instances = [any(not a.get("iscrowd", 0) for a in self.anns.anns_by_video[v["id"]])
                              for v in self.anns.videos]
        self._resampled = SharedCounter()

    @property
    def num_resampled(self) -> int:
        return self._resampled.value

    def skip_counts(self) -> dict[str, int]:
        """Counted redraws (all DataLoader workers), reported per epoch by the trainer."""
        return {"resampled_clips": self.num_resampled}

    def __len__(self) -> int:
        return len(self.items)

    def load_clip(self, video_index: int, frames: list[int]) -> tuple[list[Image.Image], dict]:
        """Frames and pre-augmentation target of explicit frame indices (useful for tests and visualisation)."""
        video = self.anns.videos[video_index]
        return load_frames(self.img_dir, video, frames, self.ann_file), build_clip_target(self.anns, video, frames)

    def _draw(self, idx: int) -> tuple[torch.Tensor, dict] | None:
        v, ref = self.items[idx]
        if not self.has_instances[v]:
            return None
        length = len(self.anns.videos[v]["file_names"])
        frames, target = self.load_clip(v, sample_clip_frames(ref, length, self.num_frames, self.rng))
        frames, target = self.transforms(frames, target)
        if len(target["labels"]) == 0:
            return None
        return frames, target

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict]:
        num_videos = len(self.anns.videos)
        start_video = self.items[idx][0]
        for hop in range(num_videos):
            item = idx if hop == 0 else self.video_start[(start_video + hop) % num_videos]
            tries = self.max_retries if self.has_instances[self.items[item][0]] else 1
            for _ in range(tries):
                sample = self._draw(item)
                if sample is not None:
                    frames, target = sample
                    target["boxes"] = target["boxes"].clamp(min=1e-6)
                    return frames, target
                self._resampled.increment()
        raise RuntimeError(f"{self.ann_file}: no video yields a clip with instances after augmentation "
                           f"({self.max_retries} draws per video)")
