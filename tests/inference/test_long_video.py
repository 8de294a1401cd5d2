"""Long-video inference: window layout, linking across overlapping clips, equivalence on short videos."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import torch

from seqformer.inference.long_video import (
    LongVideoLinker,
    predict_long_video,
    window_starts,
)


def test_window_starts_cover_video_with_overlap():
    assert window_starts(10, 16, 4) == [0]
    starts = window_starts(30, 10, 2)
    assert starts[0] == 0 and starts[-1] == 20
    covered = set()
    for a, b in zip(starts, starts[1:]):
        assert b - a <= 8 and b > a  # overlap of at least 2 frames
    for s in starts:
        covered |= set(range(s, s + 10))
    assert covered == set(range(30))


def _square_logits(t: int, x0: int, h: int = 16, w: int = 16) -> torch.Tensor:
    m = torch.full((t, h, w), -8.0)
    m[:, 4:10, x0 : x0 + 5] = 8.0
    return m


def test_linker_links_the_same_object_and_separates_others():
    linker = LongVideoLinker(orig_size=(32, 32), num_classes=3, mask_threshold=0.5)
    s1 = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0]])
    m1 = torch.stack([_square_logits(4, 0), _square_logits(4, 10)])
    linker.add_window(0, s1, m1, finalise_before=2)
    # next window (frames 2..5): the objects come in the other order; object B's score differs
    s2 = torch.tensor([[0.1, 0.6, 0.0], [0.7, 0.1, 0.0]])
    m2 = torch.stack([_square_logits(4, 10), _square_logits(4, 0)])
    linker.add_window(2, s2, m2, finalise_before=6)
    assert len(linker.tracks) == 2
    res = linker.results(video_id=1, video_name="v", length=6, topk=2, null_score=0.001)
    assert [r["category_id"] for r in res] == [0, 1]
    assert abs(res[0]["score"] - 0.8) < 1e-6  # (0.9*4 + 0.7*4) / 8
    assert abs(res[1]["score"] - 0.7) < 1e-6  # (0.8*4+0.6*4)/8
    for r, x0 in zip(res, (0, 10)):
        masks = np.stack([mask_util.decode(s) for s in r["segmentations"]])
        assert masks.shape == (6, 32, 32)
        assert masks[:, 8:20, 2 * x0 + 2 : 2 * x0 + 8].all()  # upsampled x2, interior of the square


def test_new_object_gets_empty_masks_before_it_appears():
    linker = LongVideoLinker(orig_size=(16, 16), num_classes=2, mask_threshold=0.5)
    linker.add_window(0, torch.tensor([[0.9, 0.0]]), _square_logits(3, 0)[None], finalise_before=2)
    linker.add_window(2, torch.tensor([[0.9, 0.0], [0.0, 0.5]]),
                      torch.stack([_square_logits(3, 0), _square_logits(3, 10)]), finalise_before=5)
    res = linker.results(video_id=1, video_name="v", length=5, topk=2, null_score=0.001)
    late = [r for r in res if r["category_id"] == 1][0]
    areas = [int(mask_util.area(s)) for s in late["segmentations"]]
    assert areas[:2] == [0, 0] and all(a > 0 for a in areas[2:])


class _FakeModel:
    """Stands in for SeqFormer: one query whose score is constant and whose mask follows a moving square."""

    class _Heads:
        def __init__(self, clip):
            self.logits = [torch.tensor([[[3.0, -3.0], [-3.0, -4.0]]])]
            self.clip = clip

    class detr:  # noqa: N801 - mirrors model.detr
        @staticmethod
        def forward_heads(samples):
            return _FakeModel._Heads(samples.tensors[0])

    @staticmethod
    def render_masks(heads, layer, query_indices, sizes):
        t = heads.clip.shape[0]
        starts = heads.clip[:, 0, 0, 0].long()  # frame index encoded in the pixel value
        m = torch.full((len(query_indices[0]), t, 4, 8), -5.0)
        for j in range(t):
            m[0, j, :, int(starts[j]) % 4 : int(starts[j]) % 4 + 3] = 5.0
        return [m]


def test_predict_long_video_end_to_end_with_fake_model():
    length = 23
    frames = torch.arange(length, dtype=torch.float32)[:, None, None, None].expand(length, 3, 16, 32).clone()
    loads = []

    def load_clip(r):
        loads.append(len(r))
        return frames[r.start : r.stop], (16, 32)

    res = predict_long_video(_FakeModel(), load_clip, length, 7, "vid", clip_len=8, overlap=2, topk=2)
    assert max(loads) == 8  # never more than one window in memory
    assert res and all(len(r["segmentations"]) == length for r in res)
    assert res[0]["category_id"] == 0 and abs(res[0]["score"] - torch.sigmoid(torch.tensor(3.0)).item()) < 1e-6
    assert all(mask_util.area(s) > 0 for s in res[0]["segmentations"])
