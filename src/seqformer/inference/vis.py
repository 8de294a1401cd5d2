"""YouTube-VIS inference with the original's defaults, producing submission-format results.

Per video: every frame resized to short side 360 (torchvision ``Resize(360)`` on PIL, as the original),
the whole video as one clip, top-10 over queries x classes of sigmoid scores, each selected query's
stride-4 mask logits bilinearly upsampled straight to the original frame size and thresholded at 0.5,
queries whose mask is empty in every frame skipped, per-frame RLEs with string counts, and null
segmentations when the score is below 0.001.  Masks are rendered only for the selected queries.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from seqformer.data.ytvis_format import YTVISFormatError, validate_ytvis
from seqformer.engine.distributed import rank_share
from seqformer.errors import SeqFormerError
from seqformer.inference.long_video import predict_long_video
from seqformer.structures import clip_batch_from_tensor
from seqformer.utils.colour import IMAGENET_MEAN, IMAGENET_STD


class VideoInputError(SeqFormerError, ValueError):
    pass


@dataclass
class VideoEntry:
    id: int
    file_names: list[str]


def read_videos(annotations: str | Path) -> list[VideoEntry]:
    """The ``videos`` of a YouTube-VIS-format json, validated by the same reader as training,
    evaluation and splitting (:func:`seqformer.data.ytvis_format.validate_ytvis`): one file, one rule
    (a repeated video id, a string id or a ``length`` that disagrees with ``file_names`` is an error)."""
    path = Path(annotations)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise VideoInputError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VideoInputError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise VideoInputError(f"{path}: no 'videos' list (is this a YouTube-VIS annotation file?)")
    try:
        validate_ytvis(data, path)
    except YTVISFormatError as e:
        raise VideoInputError(str(e)) from None
    return [VideoEntry(v["id"], [str(f) for f in v["file_names"]]) for v in data["videos"]]


def load_frames(image_dir: str | Path, video: VideoEntry, short_side: int = 360,
                frames_range: range | None = None, max_size: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """Normalised frames [T,3,h,w] (all, or ``frames_range``) resized as the original, and the original (H, W)."""
    transform = T.Compose([T.Resize(short_side, max_size=max_size), T.ToTensor(),
                           T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    frames, size = [], None
    names = video.file_names if frames_range is None else [video.file_names[i] for i in frames_range]
    for name in names:
        path = Path(image_dir) / name
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.load()
        except FileNotFoundError:
            raise VideoInputError(f"video {video.id}: frame file not found: {path}") from None
        except (UnidentifiedImageError, OSError) as e:
            raise VideoInputError(f"video {video.id}: cannot read image {path}: {e}") from None
        if size is None:
            size = (im.height, im.width)
        elif size != (im.height, im.width):
            raise VideoInputError(f"video {video.id}: frame {path} is {im.width}x{im.height}, earlier frames {size[1]}x{size[0]}")
        frames.append(transform(im))
    return torch.stack(frames), size


def encode_frames(masks: np.ndarray) -> list[dict]:
    """Per-frame RLEs of a [T,H,W] bool array, counts as str (the submission format)."""
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("utf-8")
    return list(rles)


def video_name(video: VideoEntry) -> str:
    """The folder of the first frame (``file_names[0][:10]`` in the original: the same for YouTube-VIS)."""
    return video.file_names[0].split("/")[0]


@torch.no_grad()
def predict_video(model, frames: torch.Tensor, orig_size: tuple[int, int], video: VideoEntry, topk: int = 10,
                  mask_threshold: float = 0.5, null_score: float = 0.001) -> list[dict]:
    """Results-json entries of one video (``frames`` already on the model's device)."""
    samples = clip_batch_from_tensor(frames)
    heads = model.detr.forward_heads(samples)
    logits = heads.logits[-1][0]
    num_classes = logits.shape[-1]
    scores = logits.sigmoid().cpu()
    _, flat_idx = torch.topk(scores.flatten(0), k=min(topk, scores.numel()))
    hits: dict[int, list[int]] = {}
    for idx in flat_idx.tolist():
        hits.setdefault(idx // num_classes, []).append(idx % num_classes)
    queries = torch.tensor(list(hits), dtype=torch.long, device=frames.device)
    sizes = torch.tensor([frames.shape[-2:]], device=frames.device)
    masks = model.render_masks(heads, len(heads.logits) - 1, [queries], sizes)[0]  # [n, T, h, w]
    results = []
    for i, query in enumerate(hits):
        up = F.interpolate(masks[i][:, None], orig_size, mode="bilinear")
        binary = (up.sigmoid().cpu().numpy() > mask_threshold)[:, 0]
        if not binary.any():
            continue
        rles = None
        for cls in hits[query]:
            score = float(scores[query, cls])
            if score < null_score:
                segmentations = [None] * len(video.file_names)
            else:
                rles = rles if rles is not None else encode_frames(binary)
                segmentations = rles
            results.append({"video_id": video.id, "video_name": video_name(video), "score": score,
                            "category_id": int(cls), "segmentations": segmentations})
    return results


def iter_predictions(model, image_dir: str | Path, videos: list[VideoEntry], device: torch.device,
                     short_side: int = 360, max_frames_per_clip: int = 0, clip_overlap: int = 0,
                     max_size: int | None = None, **kwargs) -> Iterator[list[dict]]:
    """Results per video: the original whole-video path up to ``max_frames_per_clip`` frames (0 = no
    limit), linked overlapping clips above it (:mod:`seqformer.inference.long_video`)."""
    for video in videos:
        if 0 < max_frames_per_clip < len(video.file_names):
            def load_clip(frames_range: range, video: VideoEntry = video) -> tuple[torch.Tensor, tuple[int, int]]:
                clip, size = load_frames(image_dir, video, short_side, frames_range, max_size)
                return clip.to(device), size

            yield predict_long_video(model, load_clip, len(video.file_names), video.id, video_name(video),
                                     max_frames_per_clip, clip_overlap, **kwargs)
        else:
            frames, size = load_frames(image_dir, video, short_side, max_size=max_size)
            yield predict_video(model, frames.to(device), size, video, **kwargs)


@torch.no_grad()
def predict_videos(model, cfg, device: torch.device, image_dir: str | Path, annotations: str | Path,
                   shard: bool = False, progress: bool = False) -> list[tuple[int, list[dict]]]:
    """``(video index, results-json entries)`` of every video of ``annotations`` (with ``shard``: this
    rank's share), with the config's inference settings."""
    videos = read_videos(annotations)
    share = list(rank_share(len(videos)) if shard else range(len(videos)))
    predictions = iter_predictions(model, image_dir, [videos[i] for i in share], device,
                                   short_side=cfg.data.val_short_side, topk=cfg.eval.topk,
                                   mask_threshold=cfg.eval.mask_threshold, null_score=cfg.eval.null_score,
                                   max_frames_per_clip=cfg.eval.max_frames_per_clip,
                                   clip_overlap=cfg.eval.clip_overlap, max_size=cfg.data.val_max_size)
    return list(zip(share, tqdm(predictions, total=len(share), desc="videos", unit="video", disable=not progress)))
