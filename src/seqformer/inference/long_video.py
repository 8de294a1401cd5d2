"""Inference on videos longer than the memory budget: overlapping clips linked into tracks.

Rule (documented in docs/ytvis.md): windows of ``clip_len`` frames advance by ``clip_len - overlap``
(the last window is aligned to the video end).  In each window the queries of the top-``topk``
(query, class) pairs are candidates.  Candidates are linked to the tracks alive in the previous window
by Hungarian matching on mask IoU over the shared frames (IoU >= ``link_iou``); unmatched candidates
start new tracks, unmatched tracks end.  In shared frames a linked track's mask logits are the mean
of both windows'.  A track's class scores are the frame-weighted mean of its windows' sigmoid scores;
the final top-``topk`` over tracks x classes then follows the original rules (empty tracks skipped,
null segmentations below ``null_score``).  Frames are RLE-encoded as soon as no later window can touch
them, so peak memory depends on ``clip_len``, not on the video length.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from seqformer.structures import clip_batch_from_tensor


@dataclass(eq=False)  # identity semantics: tracks are compared with `is`/`in`
class _Track:
    first_frame: int
    score_sum: torch.Tensor  # [K] sum over windows of (sigmoid scores x frames in window)
    frames_seen: int = 0
    pending: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> stride-4 logits [h, w]
    rles: dict[int, dict] = field(default_factory=dict)  # finalised frames
    nonempty: bool = False
    alive: bool = True


def window_starts(length: int, clip_len: int, overlap: int) -> list[int]:
    if length <= clip_len:
        return [0]
    step = max(clip_len - overlap, 1)
    starts = list(range(0, length - clip_len, step))
    return starts + [length - clip_len]


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks a [n, F, h, w] x b [m, F, h, w] summed over frames -> [n, m]."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


class LongVideoLinker:
    def __init__(self, orig_size: tuple[int, int], num_classes: int, mask_threshold: float, link_iou: float = 0.5):
        self.orig_size = orig_size
        self.num_classes = num_classes
        self.mask_threshold = mask_threshold
        self.link_iou = link_iou
        self.tracks: list[_Track] = []

    def _finalise(self, track: _Track, frame: int) -> None:
        logits = track.pending.pop(frame)
        up = F.interpolate(logits[None, None], self.orig_size, mode="bilinear")[0, 0]
        binary = (up.sigmoid() > self.mask_threshold).cpu().numpy()
        track.nonempty |= bool(binary.any())
        rle = mask_util.encode(np.asfortranarray(binary[:, :, None].astype(np.uint8)))[0]
        rle["counts"] = rle["counts"].decode("utf-8")
        track.rles[frame] = rle

    def add_window(self, start: int, scores: torch.Tensor, masks: torch.Tensor, finalise_before: int) -> None:
        """scores [n, K] sigmoid; masks [n, Tw, h, w] logits of the candidates of the window at ``start``."""
        n, tw = masks.shape[:2]
        alive = [t for t in self.tracks if t.alive]
        matched: dict[int, _Track] = {}
        if alive and n:
            shared = sorted(set(range(start, start + tw)).intersection(*[set(t.pending) for t in alive]))
            if shared:
                cand = masks[:, [f - start for f in shared]] > 0
                prev = torch.stack([torch.stack([t.pending[f] for f in shared]) for t in alive]) > 0
                iou = _mask_iou(cand, prev)
                rows, cols = linear_sum_assignment(-iou.numpy())
                matched = {r: alive[c] for r, c in zip(rows, cols) if iou[r, c] >= self.link_iou}
        for track in alive:
            track.alive = track in matched.values()
        for i in range(n):
            track = matched.get(i)
            if track is None:
                track = _Track(first_frame=start, score_sum=torch.zeros(self.num_classes))
                self.tracks.append(track)
            track.score_sum += scores[i] * tw
            track.frames_seen += tw
            for j in range(tw):
                f = start + j
                track.pending[f] = (track.pending[f] + masks[i, j]) / 2 if f in track.pending else masks[i, j]
        for track in self.tracks:
            for f in [f for f in track.pending if f < finalise_before]:
                self._finalise(track, f)

    def results(self, video_id: int, video_name: str, length: int, topk: int, null_score: float,
                track_ids: bool = False) -> list[dict]:
        """Results-json entries; with ``track_ids`` each carries ``"track"``: the index of its linked track."""
        if not self.tracks:
            return []
        for track in self.tracks:
            for f in list(track.pending):
                self._finalise(track, f)
        empty = mask_util.encode(np.asfortranarray(np.zeros((*self.orig_size, 1), np.uint8)))[0]
        empty["counts"] = empty["counts"].decode("utf-8")
        scores = torch.stack([t.score_sum / max(t.frames_seen, 1) for t in self.tracks])
        _, flat = torch.topk(scores.flatten(), k=min(topk, scores.numel()))
        hits: dict[int, list[int]] = {}
        for idx in flat.tolist():
            hits.setdefault(idx // self.num_classes, []).append(idx % self.num_classes)
        out = []
        for ti, classes in hits.items():
            track = self.tracks[ti]
            if not track.nonempty:
                continue
            segs = [track.rles.get(f, empty) for f in range(length)]
            for cls in classes:
                score = float(scores[ti, cls])
                out.append({"video_id": video_id, "video_name": video_name, "score": score, "category_id": int(cls),
                            "segmentations": [None] * length if score < null_score else segs})
                if track_ids:
                    out[-1]["track"] = ti
        return out


def window_candidates(model, clip: torch.Tensor, topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid scores ``[n, K]`` and stride-4 mask logits ``[n, T, h, w]`` of the queries of the top-``topk``
    (query, class) pairs of one normalised clip ``[T,3,h,w]``."""
    heads = model.detr.forward_heads(clip_batch_from_tensor(clip))
    scores = heads.logits[-1][0].float().sigmoid().cpu()
    num_classes = scores.shape[1]
    _, flat = torch.topk(scores.flatten(), k=min(topk, scores.numel()))
    queries = torch.tensor(list(dict.fromkeys((flat // num_classes).tolist())), dtype=torch.long)
    sizes = torch.tensor([clip.shape[-2:]], device=clip.device)
    masks = model.render_masks(heads, len(heads.logits) - 1, [queries.to(clip.device)], sizes)[0].float().cpu()
    return scores[queries], masks


@torch.no_grad()
def predict_long_video(model, load_clip: Callable[[range], tuple[torch.Tensor, tuple[int, int]]], length: int,
                       video_id: int, video_name: str, clip_len: int, overlap: int, topk: int = 10,
                       mask_threshold: float = 0.5, null_score: float = 0.001) -> list[dict]:
    """``load_clip(range)`` returns the normalised frames of a window and the original (H, W)."""
    starts = window_starts(length, clip_len, overlap)
    linker: LongVideoLinker | None = None
    for i, start in enumerate(starts):
        clip, orig_size = load_clip(range(start, min(start + clip_len, length)))
        scores, masks = window_candidates(model, clip, topk)
        linker = linker or LongVideoLinker(orig_size, scores.shape[1], mask_threshold)
        next_start = starts[i + 1] if i + 1 < len(starts) else length
        linker.add_window(start, scores, masks, finalise_before=next_start)
    assert linker is not None
    return linker.results(video_id, video_name, length, topk, null_score)


@torch.no_grad()
def predict_frame_stream(model, frames: Iterable[torch.Tensor], orig_size: tuple[int, int], video_id: int,
                         video_name: str, clip_len: int, overlap: int, topk: int = 10, mask_threshold: float = 0.5,
                         null_score: float = 0.001, track_ids: bool = False) -> tuple[list[dict], int]:
    """:func:`predict_long_video` over frames that arrive one at a time (normalised ``[3,h,w]`` on the
    model's device), for inputs whose length is known only at the end (a decoding video).

    The windows are exactly :func:`window_starts`'s: a window is run once the frame after it has
    arrived (so it is not the last one), and the last window is aligned to the end when the stream
    stops.  The last window can start anywhere after the one before it, so frames are kept from one past
    the previous window's start (at most ``clip_len + step`` frames) and a window finalises (RLE-encodes)
    only its own first frame: later frames stay open for averaging with the next window, whose start is
    not known yet.  Finalising later changes nothing (only frames of the next window are averaged).
    Returns the results and the frame count.
    """
    step = max(clip_len - overlap, 1)
    buffer: dict[int, torch.Tensor] = {}
    linker: LongVideoLinker | None = None
    start, length = 0, 0

    def run(window_start: int, next_start: int) -> None:
        nonlocal linker
        clip = torch.stack([buffer[f] for f in range(window_start, min(window_start + clip_len, length))])
        scores, masks = window_candidates(model, clip, topk)
        linker = linker or LongVideoLinker(orig_size, scores.shape[1], mask_threshold)
        linker.add_window(window_start, scores, masks, finalise_before=next_start)

    for frame in frames:
        buffer[length] = frame
        length += 1
        if length == start + clip_len + 1:  # a frame after window `start`: it is not the last window
            run(start, start + 1)
            for f in [f for f in buffer if f <= start]:
                del buffer[f]
            start += step
    if length == 0:
        return [], 0
    last = max(0, length - clip_len)
    run(last, length)
    assert linker is not None
    return linker.results(video_id, video_name, length, topk, null_score, track_ids), length
