"""The original SeqFormer clip augmentations (``datasets/transforms_clip.py``), rewritten on an explicit layout.

A transform maps ``(frames, target) -> (frames, target)`` where ``frames`` is a list of T PIL images and the
target holds ``boxes float32 [N,T,4]`` (absolute xyxy), ``masks bool [N,T,H,W]``, ``labels int64 [N]``,
``valid bool [N,T]`` and ``size`` (h, w).  Geometry is drawn once per clip so all frames move together; the
photometric distortion is drawn per frame like the original.  ``ToTensorNormalize`` ends the chain and returns a
``[T,3,H,W]`` tensor with cxcywh boxes normalised by the unpadded size.

Randomness comes from ``rng`` (a ``random.Random``; the ``random`` module by default, which DataLoader seeds per
worker), so a seeded ``random.Random`` reproduces a clip exactly.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from seqformer.utils.box_ops import box_xyxy_to_cxcywh
from seqformer.utils.colour import IMAGENET_MEAN, IMAGENET_STD

Frames = list  # list[PIL.Image.Image] before ToTensorNormalize, Tensor [T,3,H,W] after
Target = dict
ClipTransform = Callable[[Frames, Target | None], tuple[Frames, Target | None]]


def _rng(rng: random.Random | None):
    return random if rng is None else rng


class Compose:
    def __init__(self, transforms: Sequence[ClipTransform]):
        self.transforms = list(transforms)

    def __call__(self, frames, target):
        for t in self.transforms:
            frames, target = t(frames, target)
        return frames, target


class RandomSelect:
    """Apply ``first`` with probability ``p``, else ``second`` (one draw per clip)."""

    def __init__(self, first: ClipTransform, second: ClipTransform, p: float = 0.5, rng: random.Random | None = None):
        self.first, self.second, self.p, self.rng = first, second, p, rng

    def __call__(self, frames, target):
        return (self.first if _rng(self.rng).random() < self.p else self.second)(frames, target)


def hflip(frames: Frames, target: Target | None):
    w = frames[0].width
    frames = [TF.hflip(f) for f in frames]
    if target is not None:
        target = dict(target)
        target["boxes"] = target["boxes"][..., [2, 1, 0, 3]] * torch.tensor([-1.0, 1, -1, 1]) + torch.tensor([w, 0.0, w, 0])
        target["masks"] = target["masks"].flip(-1)
    return frames, target


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5, rng: random.Random | None = None):
        self.p, self.rng = p, rng

    def __call__(self, frames, target):
        return hflip(frames, target) if _rng(self.rng).random() < self.p else (frames, target)


def resized_hw(w: int, h: int, short: int, max_size: int | None) -> tuple[int, int]:
    """Output (h, w) for a short-side resize capped by ``max_size`` on the long side (DETR's rounding)."""
    if max_size is not None:
        lo, hi = float(min(w, h)), float(max(w, h))
        if hi / lo * short > max_size:
            short = int(round(max_size * lo / hi))
    if (w <= h and w == short) or (h <= w and h == short):
        return h, w
    if w < h:
        return int(short * h / w), short
    return short, int(short * w / h)


def resize(frames: Frames, target: Target | None, short: int, max_size: int | None = None):
    w, h = frames[0].size
    oh, ow = resized_hw(w, h, short, max_size)
    frames = [TF.resize(f, [oh, ow]) for f in frames]
    if target is None:
        return frames, None
    target = dict(target)
    target["boxes"] = target["boxes"] * torch.tensor([ow / w, oh / h, ow / w, oh / h])
    masks = target["masks"]
    if masks.numel():
        n, t = masks.shape[:2]
        # "nearest-exact" samples pixel centres like PIL's image resize; the original's "nearest" (floor
        # indexing) shifts masks by up to one output pixel against the image and the scaled boxes.
        flat = F.interpolate(masks.reshape(n * t, 1, h, w).float(), size=(oh, ow), mode="nearest-exact")
        target["masks"] = flat.reshape(n, t, oh, ow) > 0.5
    else:
        target["masks"] = masks.new_zeros((*masks.shape[:2], oh, ow))
    target["size"] = torch.tensor([oh, ow])
    return frames, target


class RandomResize:
    """Resize the short side to a size drawn from ``sizes`` (long side capped at ``max_size``)."""

    def __init__(self, sizes: Sequence[int], max_size: int | None = None, rng: random.Random | None = None):
        self.sizes, self.max_size, self.rng = list(sizes), max_size, rng

    def __call__(self, frames, target):
        return resize(frames, target, _rng(self.rng).choice(self.sizes), self.max_size)


def crop(frames: Frames, target: Target | None, top: int, left: int, height: int, width: int):
    frames = [TF.crop(f, top, left, height, width) for f in frames]
    if target is None:
        return frames, None
    target = dict(target)
    boxes = target["boxes"] - torch.tensor([left, top, left, top], dtype=torch.float32)
    boxes = torch.min(boxes.reshape(*boxes.shape[:-1], 2, 2), torch.tensor([width, height], dtype=torch.float32))
    target["boxes"] = boxes.clamp(min=0).reshape(*boxes.shape[:-2], 4)
    target["masks"] = target["masks"][..., top:top + height, left:left + width]
    target["size"] = torch.tensor([height, width])
    return frames, target


class RandomSizeCrop:
    """Crop a (w, h) drawn uniformly in [min_size, min(image, max_size)] at a uniform position.

    The original crashes when the image is smaller than ``min_size``; we then use the whole side instead.
    """

    def __init__(self, min_size: int, max_size: int, rng: random.Random | None = None):
        self.min_size, self.max_size, self.rng = min_size, max_size, rng

    def __call__(self, frames, target):
        rng = _rng(self.rng)
        img_w, img_h = frames[0].size
        w = rng.randint(min(self.min_size, img_w), min(img_w, self.max_size))
        h = rng.randint(min(self.min_size, img_h), min(img_h, self.max_size))
        top, left = rng.randint(0, img_h - h), rng.randint(0, img_w - w)
        return crop(frames, target, top, left, h, w)


class Check:
    """Original ``Check``: a frame whose box is degenerate is marked invalid and its box floor-divided by 1000
    (~0); instances invalid in every frame are dropped."""

    def __call__(self, frames, target):
        if target is None:
            return frames, None
        target = dict(target)
        boxes = target["boxes"]
        keep = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
        target["boxes"] = torch.where(keep[..., None], boxes, torch.div(boxes, 1000, rounding_mode="floor"))
        target["valid"] = target["valid"] & keep
        alive = target["valid"].any(dim=1)
        for key in ("labels", "boxes", "masks", "valid"):
            target[key] = target[key][alive]
        return frames, target


def _rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    """OpenCV float semantics: H in degrees [0, 360), S = (max - min) / |max|, V = max; inputs unclipped."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(-1)
    diff = v - x.min(-1)
    s = diff / (np.abs(v) + 1e-7)
    safe = np.where(diff == 0, 1.0, diff)
    h = np.where(v == r, 60 * (g - b) / safe, np.where(v == g, 120 + 60 * (b - r) / safe, 240 + 60 * (r - g) / safe))
    h = np.where(diff == 0, 0.0, h) % 360.0
    return np.stack([h, s, v], -1).astype(np.float32)


def _hsv_to_rgb(x: np.ndarray) -> np.ndarray:
    h, s, v = x[..., 0] % 360.0, x[..., 1], x[..., 2]
    sector = np.floor(h / 60.0)
    f = h / 60.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = sector.astype(np.int64) % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros_like(x)
    for k, (rr, gg, bb) in enumerate(choices):
        sel = sector == k
        out[..., 0][sel], out[..., 1][sel], out[..., 2][sel] = rr[sel], gg[sel], bb[sel]
    return out


class PhotometricDistort:
    """SSD-style photometric distortion of the original, drawn independently for every frame by default.

    Steps (each with p=0.5): brightness +U[-32,32]; contrast x U[0.5,1.5] either before or after the HSV block;
    saturation x U[0.5,1.5]; hue +U[-18,18] degrees; random channel permutation.
    Original quirk kept: the RGB array is handed to a BGR->HSV conversion, i.e. hue is measured on the
    channel-reversed colour, so a hue shift of +d rotates the true hue by -d.  The hue delta is symmetric, so the
    distribution of outputs is unchanged; we reproduce it exactly by reversing channels around the HSV block.
    Deviation: the original casts to uint8 without clipping (out-of-range values wrap around); we clip to
    [0, 255].  ``per_clip=True`` draws one set of parameters for the whole clip (temporally consistent colours).
    """

    PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))

    def __init__(self, per_clip: bool = False, rng: random.Random | None = None):
        self.per_clip, self.rng = per_clip, rng

    def draw(self) -> dict:
        rng = _rng(self.rng)
        flip = lambda: rng.randint(0, 1) == 1  # noqa: E731
        return {
            "brightness": rng.uniform(-32, 32) if flip() else None,
            "contrast_first": flip(),
            "contrast": rng.uniform(0.5, 1.5) if flip() else None,
            "saturation": rng.uniform(0.5, 1.5) if flip() else None,
            "hue": rng.uniform(-18, 18) if flip() else None,
            "perm": rng.choice(self.PERMUTATIONS) if flip() else None,
        }

    @staticmethod
    def apply(image: Image.Image, params: dict) -> Image.Image:
        x = np.asarray(image, dtype=np.float32).copy()
        if params["brightness"] is not None:
            x += params["brightness"]
        if params["contrast_first"] and params["contrast"] is not None:
            x *= params["contrast"]
        if params["saturation"] is not None or params["hue"] is not None:
            hsv = _rgb_to_hsv(x[..., ::-1])  # the original's RGB-as-BGR
            if params["saturation"] is not None:
                hsv[..., 1] *= params["saturation"]
            if params["hue"] is not None:
                hsv[..., 0] = (hsv[..., 0] + params["hue"]) % 360.0
            x = _hsv_to_rgb(hsv)[..., ::-1]
        if not params["contrast_first"] and params["contrast"] is not None:
            x *= params["contrast"]
        if params["perm"] is not None:
            x = x[..., list(params["perm"])]
        return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))

    def __call__(self, frames, target):
        shared = self.draw() if self.per_clip else None
        return [self.apply(f, shared or self.draw()) for f in frames], target


def normalize_frames(frames: Sequence[Image.Image]) -> torch.Tensor:
    """RGB PIL frames -> ``[T,3,H,W]`` float32, ``(x / 255 - mean) / std``; one numpy pass (several times faster
    than per-frame ``to_tensor`` + ``normalize`` on a busy CPU, equal to 1e-6)."""
    x = np.stack([np.asarray(f.convert("RGB")) for f in frames]).astype(np.float32)
    x -= np.float32(255) * np.asarray(IMAGENET_MEAN, dtype=np.float32)
    x *= 1 / (np.float32(255) * np.asarray(IMAGENET_STD, dtype=np.float32))
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


class ToTensorNormalize:
    """PIL frames -> ImageNet-normalised ``[T,3,H,W]``; boxes xyxy -> cxcywh / (w, h); masks -> uint8."""

    def __call__(self, frames, target):
        clip = normalize_frames(frames)
        if target is None:
            return clip, None
        target = dict(target)
        h, w = clip.shape[-2:]
        target["boxes"] = box_xyxy_to_cxcywh(target["boxes"]) / torch.tensor([w, h, w, h], dtype=torch.float32)
        target["masks"] = target["masks"].to(torch.uint8)
        target["size"] = torch.tensor([h, w], dtype=torch.int64)
        return clip, target


def build_train_transforms(train_scales: Sequence[int] = (288, 320, 352, 392, 416, 448, 480, 512),
                           train_max_size: int = 768, crop_scales: Sequence[int] = (400, 500, 600),
                           crop_size: Sequence[int] = (384, 600), photometric: bool = True,
                           photometric_per_clip: bool = False, rng: random.Random | None = None) -> Compose:
    """The original training chain; arguments mirror ``DataConfig`` (``photometric=False`` for COCO clips)."""
    steps: list[ClipTransform] = [RandomHorizontalFlip(0.5, rng)]
    if photometric:
        steps.append(PhotometricDistort(photometric_per_clip, rng))
    steps.append(RandomSelect(
        Compose([RandomResize(train_scales, train_max_size, rng), Check()]),
        Compose([RandomResize(crop_scales, None, rng), RandomSizeCrop(crop_size[0], crop_size[1], rng),
                 RandomResize(train_scales, train_max_size, rng), Check()]),
        0.5, rng))
    steps.append(ToTensorNormalize())
    return Compose(steps)


def build_val_transforms(short_side: int = 360, max_size: int | None = None) -> Compose:
    """Inference-time resize (``inference.py``: short side 360, no cap) then normalisation."""
    return Compose([RandomResize([short_side], max_size), ToTensorNormalize()])
