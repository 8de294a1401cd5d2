"""COCO images as pseudo-videos for joint training with YouTube-VIS (the original ``coco2seq.py``).

A clip is the original image plus ``num_frames - 1`` augmented copies in random order: each copy gets an
independent perspective + affine warp (translate +-10 %, rotate +-20 deg), 1-2 photometric changes (brightness
+-40, hue/saturation +-5) and, with p=0.25, motion blur (kernel 9 or 11).  The instance masks get the same warp
(nearest neighbour), so the copies behave like frames of a short video with camera motion.  The original uses
imgaug; this is a numpy/PIL re-implementation of the same recipe (the perspective follows imgaug's rule: the
four corners are pulled inwards by |N(0, 0.08)| of the image size and the quad is stretched to the full frame).
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import convolve
from torch.utils.data import ConcatDataset, Dataset, Subset

from seqformer.data.shared_counter import SharedCounter
from seqformer.data.ytvis_format import YTVISFormatError, decode_segmentation
from seqformer.data.ytvis_transforms import ClipTransform, ToTensorNormalize

# COCO category id -> YouTube-VIS 2019 category id (the original's map; COCO classes absent here are dropped).
COCO_TO_YTVIS19: dict[int, int] = {1: 1, 2: 21, 3: 6, 4: 21, 5: 28, 7: 17, 8: 29, 9: 34, 17: 14, 18: 8, 19: 18,
                                   21: 15, 22: 32, 23: 20, 24: 30, 25: 22, 36: 33, 41: 5, 42: 27, 43: 40, 74: 24}


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 matrix mapping the four ``src`` points onto the four ``dst`` points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.append(np.linalg.solve(np.asarray(rows, float), np.asarray(rhs, float)), 1.0).reshape(3, 3)


def motion_blur_kernel(size: int, angle_deg: float) -> np.ndarray:
    """Normalised line kernel through the centre at ``angle_deg`` (imgaug MotionBlur with direction 0)."""
    kernel = np.zeros((size, size), np.float32)
    c = (size - 1) / 2
    for t in np.linspace(-c, c, 4 * size):
        kernel[int(round(c + t * math.sin(math.radians(angle_deg)))),
               int(round(c + t * math.cos(math.radians(angle_deg))))] = 1
    return kernel / kernel.sum()


class ImageToClipAugmenter:
    """Makes one pseudo-frame: ``(image uint8 [H,W,3], label map int [H,W]) -> (image, label map)``."""

    def __init__(self, perspective: float = 0.08, translate: float = 0.1, rotate: float = 20.0,
                 brightness: int = 40, hue_saturation: int = 5, blur_prob: float = 0.25,
                 blur_kernel_sizes: tuple[int, ...] = (9, 11), rng: random.Random | None = None):
        self.perspective, self.translate, self.rotate = perspective, translate, rotate
        self.brightness, self.hue_saturation = brightness, hue_saturation
        self.blur_prob, self.blur_kernel_sizes = blur_prob, blur_kernel_sizes
        self.rng = rng

    def warp_matrix(self, h: int, w: int) -> np.ndarray:
        """Forward pixel homography: perspective (corners pulled in) then rotation+translation about the centre."""
        rng = self.rng or random
        pull = [abs(rng.gauss(0, self.perspective)) for _ in range(8)]
        quad = np.array([[pull[0] * w, pull[1] * h], [w - pull[2] * w, pull[3] * h],
                         [w - pull[4] * w, h - pull[5] * h], [pull[6] * w, h - pull[7] * h]])
        frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
        theta = math.radians(rng.uniform(-self.rotate, self.rotate))
        tx, ty = rng.uniform(-self.translate, self.translate) * w, rng.uniform(-self.translate, self.translate) * h
        cos, sin = math.cos(theta), math.sin(theta)
        centre = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
        rot = np.array([[cos, -sin, tx], [sin, cos, ty], [0, 0, 1]])
        return centre @ rot @ np.linalg.inv(centre) @ homography(quad, frame)

    def photometric(self, image: np.ndarray) -> np.ndarray:
        """imgaug ``SomeOf((1, None), [Add, AddToHueAndSaturation])``: one or both, in list order."""
        rng = self.rng or random
        ops = ["add", "hue_sat"] if rng.randint(1, 2) == 2 else [rng.choice(["add", "hue_sat"])]
        x = image.astype(np.int32)
        if "add" in ops:
            x = np.clip(x + rng.randint(-self.brightness, self.brightness), 0, 255)
        if "hue_sat" in ops:
            hsv = np.asarray(Image.fromarray(x.astype(np.uint8)).convert("HSV"), dtype=np.int32)
            delta = rng.randint(-self.hue_saturation, self.hue_saturation)
            hsv[..., 0] = (hsv[..., 0] + delta) % 256
            hsv[..., 1] = np.clip(hsv[..., 1] + delta, 0, 255)
            x = np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), dtype=np.int32)
        return x.astype(np.uint8)

    def __call__(self, image: np.ndarray, label_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng or random
        h, w = label_map.shape
        inverse = np.linalg.inv(self.warp_matrix(h, w))
        coeffs = tuple((inverse / inverse[2, 2]).flatten()[:8])
        warped = Image.fromarray(self.photometric(image)).transform((w, h), Image.PERSPECTIVE, coeffs, Image.BILINEAR)
        labels = Image.fromarray(label_map.astype(np.int32), "I").transform((w, h), Image.PERSPECTIVE, coeffs,
                                                                           Image.NEAREST)
        out = np.asarray(warped)
        if rng.random() < self.blur_prob:
            kernel = motion_blur_kernel(rng.choice(self.blur_kernel_sizes), rng.uniform(0, 360))
            out = np.stack([convolve(out[..., c].astype(np.float32), kernel, mode="nearest") for c in range(3)], -1)
            out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        return out, np.asarray(labels, dtype=np.int32)


def masks_to_xyxy(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of ``[..., H, W]`` masks in pixel-edge xyxy (x_max + 1, as COCO/YTVIS bboxes); empty -> 0."""
    h, w = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    y0 = torch.where(rows, ar_h, h).min(-1).values
    y1 = torch.where(rows, ar_h + 1, 0).max(-1).values
    x0 = torch.where(cols, ar_w, w).min(-1).values
    x1 = torch.where(cols, ar_w + 1, 0).max(-1).values
    boxes = torch.stack([x0, y0, x1, y1], -1).float()
    return torch.where(masks.flatten(-2).any(-1)[..., None], boxes, torch.zeros_like(boxes))


class COCOPseudoVideoDataset(Dataset):
    """COCO instance json -> clips with the same target layout as :class:`~seqformer.data.ytvis_dataset.YTVISDataset`.

    Only non-crowd annotations whose category is in ``category_map`` (``None`` keeps ids) and whose box has
    positive size are used (``num_dropped_annotations`` counts the rest); images left without one are skipped
    (``num_skipped_images``).  ``video_id`` is the COCO image id and ``frame_ids[t]`` says which copy frame t is
    (0 = the unaugmented image).  A clip with 0 or more than ``max_instances`` instances after augmentation is
    redrawn ``max_retries`` times, then the next image is tried (``num_resampled`` counts failed draws).
    ``transforms`` must end with ``ToTensorNormalize`` (the default when None); use
    ``build_train_transforms(photometric=False)`` for the original recipe.
    """

    def __init__(self, img_dir: str | Path, ann_file: str | Path, transforms: ClipTransform | None = None,
                 num_frames: int = 5, category_map: dict[int, int] | None = COCO_TO_YTVIS19,
                 max_instances: int = 25, max_retries: int = 10, augmenter: ImageToClipAugmenter | None = None,
                 rng: random.Random | None = None):
        self.img_dir, self.ann_file = Path(img_dir), str(ann_file)
        try:
            with open(ann_file) as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise YTVISFormatError(f"{ann_file}: malformed JSON at line {err.lineno} column {err.colno}: "
                                   f"{err.msg}") from None
        self.images = {img["id"]: img for img in data["images"]}
        self.anns_by_image: dict[int, list[dict]] = {}
        self.num_dropped_annotations = 0
        for ann in data.get("annotations", []):
            box = ann.get("bbox", [0, 0, 0, 0])
            usable = (not ann.get("iscrowd", 0) and box[2] > 0 and box[3] > 0
                      and (category_map is None or ann["category_id"] in category_map))
            if not usable:
                self.num_dropped_annotations += 1
                continue
            if ann["image_id"] not in self.images:
                raise YTVISFormatError(f"{ann_file}: annotation {ann['id']} refers to unknown image {ann['image_id']}")
            self.anns_by_image.setdefault(ann["image_id"], []).append(ann)
        self.ids = sorted(self.anns_by_image)
        self.num_skipped_images = len(self.images) - len(self.ids)
        self.transforms = transforms if transforms is not None else ToTensorNormalize()
        self.num_frames, self.category_map = num_frames, category_map
        self.max_instances, self.max_retries = max_instances, max_retries
        self.rng = rng
        self.augmenter = augmenter or ImageToClipAugmenter(rng=rng)
        self._resampled = SharedCounter()

    @property
    def num_resampled(self) -> int:
        return self._resampled.value

    def skip_counts(self) -> dict[str, int]:
        """Counted redraws (all DataLoader workers), reported per epoch by the trainer."""
        return {"resampled_coco_clips": self.num_resampled}

    def __len__(self) -> int:
        return len(self.ids)

    def load_image(self, image_id: int) -> tuple[Image.Image, torch.Tensor, torch.Tensor]:
        """RGB image, instance masks ``bool [N,H,W]`` and mapped labels ``[N]``."""
        info = self.images[image_id]
        path = self.img_dir / info["file_name"]
        try:
            image = Image.open(path).convert("RGB")
        except (OSError, ValueError) as err:
            raise YTVISFormatError(f"{self.ann_file}: image {image_id}: cannot read {path}: {err}") from err
        w, h = image.size
        anns = self.anns_by_image[image_id]
        masks = np.zeros((len(anns), h, w), dtype=bool)
        for i, ann in enumerate(anns):
            try:
                masks[i] = decode_segmentation(ann["segmentation"], h, w).astype(bool)
            except Exception as err:  # pycocotools raises bare Exception/TypeError for bad input
                raise YTVISFormatError(f"{self.ann_file}: image {image_id} annotation {ann['id']}: "
                                       f"cannot decode segmentation: {err}") from err
        cmap = self.category_map
        labels = torch.tensor([cmap[a["category_id"]] if cmap else a["category_id"] for a in anns], dtype=torch.int64)
        return image, torch.from_numpy(masks), labels

    def make_clip(self, image_id: int) -> tuple[list[Image.Image], dict]:
        """Pre-augmentation clip: original + warped copies, shuffled; boxes from masks, valid = mask non-empty."""
        rng = self.rng or random
        image, masks, labels = self.load_image(image_id)
        label_map = np.zeros(masks.shape[1:], dtype=np.int32)
        for i, m in enumerate(masks.numpy()):  # later instances win overlaps, as imgaug's condensed map
            label_map[m] = i + 1
        frames, frame_masks = [image], [masks]
        for _ in range(self.num_frames - 1):
            aug_image, aug_labels = self.augmenter(np.asarray(image), label_map)
            frames.append(Image.fromarray(aug_image))
            frame_masks.append(torch.from_numpy(aug_labels[None] == np.arange(1, len(labels) + 1)[:, None, None]))
        order = list(range(self.num_frames))
        rng.shuffle(order)
        clip_masks = torch.stack([frame_masks[k] for k in order], dim=1)  # [N,T,H,W]
        h, w = clip_masks.shape[-2:]
        target = {"labels": labels, "boxes": masks_to_xyxy(clip_masks), "masks": clip_masks,
                  "valid": clip_masks.flatten(2).any(-1), "size": torch.tensor([h, w]),
                  "orig_size": torch.tensor([h, w], dtype=torch.int64), "video_id": int(image_id),
                  "frame_ids": torch.tensor(order, dtype=torch.int64)}
        return [frames[k] for k in order], target

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict]:
        for hop in range(len(self.ids)):
            image_id = self.ids[(idx + hop) % len(self.ids)]
            for _ in range(self.max_retries):
                frames, target = self.make_clip(image_id)
                frames, target = self.transforms(frames, target)
                if 0 < len(target["labels"]) <= self.max_instances:
                    target["boxes"] = target["boxes"].clamp(min=1e-6)
                    return frames, target
                self._resampled.increment()
        raise RuntimeError(f"{self.ann_file}: no image yields a clip with 1..{self.max_instances} instances")


def build_joint_dataset(ytvis_ds: Dataset, coco_ds: COCOPseudoVideoDataset, coco_ratio: float | None = 1.0,
                        seed: int = 0) -> "JointDataset":
    """YouTube-VIS + COCO pseudo-videos, with about ``coco_ratio * len(ytvis_ds)`` COCO clips per epoch.

    ``coco_ratio=None`` concatenates the whole COCO set (the original ``jointcoco``).  Otherwise a fixed subset is
    drawn once from a seeded permutation of COCO (repeated when more clips than images are asked for); the
    sampler then shuffles the concatenation, so the ratio holds per epoch in expectation.
    """
    if getattr(ytvis_ds, "num_frames", coco_ds.num_frames) != coco_ds.num_frames:
        raise ValueError(f"num_frames differ: YouTube-VIS {ytvis_ds.num_frames}, COCO {coco_ds.num_frames}")
    if coco_ratio is None:
        return JointDataset([ytvis_ds, coco_ds], coco_ds)
    n = round(coco_ratio * len(ytvis_ds))
    perm = torch.randperm(len(coco_ds), generator=torch.Generator().manual_seed(seed)).tolist()
    indices = (perm * (n // len(perm) + 1))[:n] if perm else []
    return JointDataset([ytvis_ds, Subset(coco_ds, indices)], coco_ds)


class JointDataset(ConcatDataset):
    """The concatenation, plus the redraw counts of both parts for the trainer's epoch log."""

    def __init__(self, parts: list[Dataset], coco_ds: COCOPseudoVideoDataset):
        super().__init__(parts)
        self.ytvis, self.coco = parts[0], coco_ds

    def skip_counts(self) -> dict[str, int]:
        counts = dict(self.coco.skip_counts())
        counts.update(getattr(self.ytvis, "skip_counts", dict)())
        return counts
