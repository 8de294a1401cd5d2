"""JHMDB/UCF101-24 tube clips: tubes alive per frame, boxes on their pixels after augmentation, skips, synthetic set."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seqformer.data.jhmdb_dataset import JhmdbDataset, clip_tubes
from seqformer.data.jhmdb_format import JhmdbGroundTruth, read_groundtruth_pickle
from seqformer.data.jhmdb_synth import CLASSES, JUMP, STAND, WALK, SynthJhmdbConfig, generate_synth_jhmdb
from seqformer.data.video_reader import FrameReadError

H, W, N = 48, 64, 12
PATTERN = "{video_id}/{frame:05d}.png"


def _box_a(f: int) -> list[float]:  # whole video, moving right 2 px per frame
    return [4 + 2 * f, 10, 20 + 2 * f, 30]


def _box_b(f: int) -> list[float]:  # frames 5..9 only, growing
    return [40, 20 - f, 56, 40]


def _write_video(root, video="cls/vid_a"):
    """Tube A (label 0, red) in every frame, tube B (label 1, green) in frames 5..9: boxes are their pixels."""
    for f in range(1, N + 1):
        img = np.zeros((H, W, 3), np.uint8)
        x1, y1, x2, y2 = (int(v) for v in _box_a(f))
        img[y1:y2, x1:x2, 0] = 255
        if 5 <= f <= 9:
            x1, y1, x2, y2 = (int(v) for v in _box_b(f))
            img[y1:y2, x1:x2, 1] = 255
        path = root / PATTERN.format(video_id=video, frame=f)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
    tubes = {0: [np.array([[f, *_box_a(f)] for f in range(1, N + 1)], np.float32)],
             1: [np.array([[f, *_box_b(f)] for f in range(5, 10)], np.float32)]}
    return JhmdbGroundTruth(["a", "b"], {video: tubes}, {video: N}, [[video]], [[video]], {video: (H, W)})


def test_clip_tubes_marks_the_frames_each_tube_lives_in(tmp_path):
    gt = _write_video(tmp_path)
    labels, boxes, valid = clip_tubes(gt, "cls/vid_a", np.array([3, 4, 5, 6, 7, 8, 9, 10]))
    assert labels.tolist() == [0, 1]
    assert valid[0].all() and valid[1].tolist() == [False, False, True, True, True, True, True, False]
    np.testing.assert_allclose(boxes[1, 2], _box_b(5))
    np.testing.assert_allclose(boxes[1, 0], 0)
    assert clip_tubes(gt, "cls/vid_a", np.array([1, 2]))[0].tolist() == [0]  # B not alive yet: no row


def _extent(channel: torch.Tensor) -> tuple[float, float, float, float] | None:
    ys, xs = torch.nonzero(channel > 127, as_tuple=True)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1


@pytest.mark.parametrize("seed", range(4))
def test_train_augmentation_keeps_every_frame_box_on_its_tube(tmp_path, seed):
    gt = _write_video(tmp_path)
    ds = JhmdbDataset(gt, tmp_path, frame_pattern=PATTERN, subset="train", num_frames=6, frame_sample_rate=2,
                      train_short_side=(48, 64), crop_size=40, min_box_size=2.0)
    torch.manual_seed(seed)
    pixels, target = ds.load_clip("cls/vid_a", 6)  # frames 1, 3, 5, 7, 9, 11 (0-based 0..10)
    assert target["frame_ids"].tolist() == [1, 3, 5, 7, 9, 11]
    oh, ow = target["size"].tolist()
    for n, label in enumerate(target["labels"].tolist()):
        for t in range(6):
            seen = _extent(pixels[t, label])  # tube A painted red (channel 0), B green (channel 1)
            if not target["valid"][n, t]:
                assert seen is None or (seen[2] - seen[0]) < 3 or (seen[3] - seen[1]) < 3
                continue
            cx, cy, bw, bh = target["boxes"][n, t].tolist()
            box = (np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) * [ow, oh, ow, oh])
            assert seen is not None
            np.testing.assert_allclose(box, seen, atol=1.6)
    if 1 in target["labels"].tolist():  # B exists in frames 5..9 only: clip positions 2, 3, 4
        row = target["labels"].tolist().index(1)
        assert not target["valid"][row, [0, 1, 5]].any()


def test_test_subset_resizes_only_and_keeps_all_tubes(tmp_path):
    gt = _write_video(tmp_path)
    ds = JhmdbDataset(gt, tmp_path, frame_pattern=PATTERN, subset="test", num_frames=4, val_short_side=24)
    pixels, target = ds.load_clip("cls/vid_a", 6)
    assert tuple(pixels.shape) == (4, 3, 24, 32) and target["labels"].tolist() == [0, 1]
    cx, cy, bw, bh = target["boxes"][0, 2].tolist()  # frame 7: A at x 18..34 of 64, y 10..30 of 48
    np.testing.assert_allclose([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2],
                               [18 / 64, 10 / 48, 34 / 64, 30 / 48], atol=1e-6)


def test_missing_frames_raise_or_are_counted(tmp_path):
    gt = _write_video(tmp_path)
    (tmp_path / PATTERN.format(video_id="cls/vid_a", frame=6)).unlink()
    kwargs = dict(frame_pattern=PATTERN, subset="test", num_frames=4, val_short_side=24)
    with pytest.raises(FrameReadError, match="00006.png"):
        JhmdbDataset(gt, tmp_path, **kwargs).load_clip("cls/vid_a", 6)  # frames 5..8 (1-based)
    ds = JhmdbDataset(gt, tmp_path, skip_corrupt_frames=True, **kwargs)
    assert ds.load_clip("cls/vid_a", 6) is not None  # frame 6 replaced by a neighbour
    assert ds.load_clip("cls/vid_a", 5) is None  # centre frame 6 missing: sample skipped
    assert ds.skip_counts() == {"skipped_samples": 1, "replaced_frames": 1}


def test_synthetic_set_in_both_layouts(tmp_path):
    cfg = SynthJhmdbConfig(num_videos=6, min_frames=12, max_frames=14, height=48, width=80, partial_prob=0.5, seed=3)
    paths = generate_synth_jhmdb(tmp_path / "j", cfg)
    gt = read_groundtruth_pickle(paths["groundtruth"])
    assert paths["groundtruth"].name == "JHMDB-GT.pkl" and gt.num_splits == 3 and gt.labels == CLASSES
    for s in (1, 2, 3):
        assert sorted(gt.train_videos_of(s) + gt.test_videos_of(s)) == sorted(gt.nframes)
    video = gt.test_videos_of(1)[0]
    assert (paths["frames"] / video / "00001.png").is_file() and paths["frames"].name == "Frames"
    ucf = generate_synth_jhmdb(tmp_path / "u", SynthJhmdbConfig(**{**cfg.__dict__, "layout": "ucf24"}))
    ugt = read_groundtruth_pickle(ucf["groundtruth"])
    assert ugt.num_splits == 1 and (ucf["frames"] / video / "00001.jpg").is_file()
    starts_inside = [t[0, 0] > 1 or t[-1, 0] < gt.frames(v) for v in gt.nframes for ts in gt.tubes(v).values() for t in ts]
    assert any(starts_inside) and not all(starts_inside)


def test_synthetic_classes_are_motion():
    """Walk moves the box centre sideways, jump moves it up and down, stand keeps the box still."""
    from seqformer.data.jhmdb_synth import _render_video

    cfg = SynthJhmdbConfig(partial_prob=0.0, max_actors=1)
    seen = set()
    for seed in range(40):
        rng = np.random.default_rng([7, seed])
        _, tubes, labels = _render_video(cfg, rng)
        box = tubes[0][:, 1:]
        cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        if labels[0] == WALK:
            assert np.ptp(cx) > 10 and np.ptp(cy) < 2
        elif labels[0] == JUMP:
            assert np.ptp(cy) > 6 and np.ptp(cx) < 2
        elif labels[0] == STAND:
            assert np.ptp(box, axis=0).max() == 0
        seen.add(labels[0])
    assert {WALK, JUMP, STAND} <= seen


def test_synthetic_appearance_is_independent_of_class():
    """Actors take their looks from a small shared pool, each seen with several classes: a look cannot tell the class."""
    from seqformer.data.jhmdb_synth import _render_video

    def centre_colours(appearance_pool: int) -> dict[tuple, list[int]]:
        cfg = SynthJhmdbConfig(partial_prob=0.0, appearance_pool=appearance_pool, min_frames=8, max_frames=8)
        classes_of = {}
        for seed in range(30):
            frames, tubes, labels = _render_video(cfg, np.random.default_rng([5, seed]))
            for tube, label in zip(tubes, labels):
                x1, y1, x2, y2 = tube[0, 1:]
                colour = tuple(frames[0, int((y1 + y2) / 2), int((x1 + x2) / 2)])  # a stripe colour of the texture
                classes_of.setdefault(colour, []).append(label)
        return classes_of

    pooled = centre_colours(3)
    assert len(pooled) <= 6  # 3 looks x 2 stripe colours
    assert all(len(set(classes)) >= 3 for classes in pooled.values() if len(classes) >= 5)
    assert len(centre_colours(0)) > 20  # a fresh look per actor: ~45 actors, each its own colours


def test_real_jhmdb_split_indexes_every_frame_of_its_videos():
    """On the published JHMDB-GT.pkl (no frames needed to index): one sample per frame, every tube alive in its clips."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "jhmdb" / "JHMDB-GT.pkl"
    if not path.is_file():
        pytest.skip(f"shared JHMDB ground truth not found at {path}")
    gt = read_groundtruth_pickle(path)
    ds = JhmdbDataset(gt, "unused", split=2, subset="test", num_frames=7)
    assert ds.videos == gt.test_videos_of(2) and len(ds) == sum(gt.frames(v) for v in ds.videos)
    video = ds.videos[0]
    labels, boxes, valid = clip_tubes(gt, video, ds.frame_indices(video, 0) + 1)
    assert labels.tolist() == list(gt.tubes(video)) and valid.all()  # JHMDB tubes span the whole video
    np.testing.assert_allclose(boxes[0, 3], gt.tubes(video)[labels[0]][0][0, 1:])  # clip position 3 = frame 1
