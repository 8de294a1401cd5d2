"""AVA-format data side: clip indices, transforms, grouping, bad input, synth generator, prepare, PyAV reading."""
from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from seqformer.cli import main as cli_main
from seqformer.config import ConfigError
from seqformer.data.ava_dataset import AVADataset, build_ava_dataset, clip_frame_indices
from seqformer.data.ava_format import AvaFormatError
from seqformer.data.ava_synth import (
    ACTIONS,
    JUMP,
    PULSE,
    SPIN,
    STAND,
    WALK_LEFT,
    WALK_RIGHT,
    SynthAvaConfig,
    _make_actor,
    generate_synth_ava,
    write_gt_csv,
    write_labelmap_pbtxt,
)
from seqformer.data.ava_transforms import (
    ClipPlan,
    plan_train,
    plan_val,
    transform_boxes,
    transform_pixels,
)
from seqformer.data.collate import collate_ava
from seqformer.data.video_reader import (
    FrameReadError,
    JpegFrameSource,
    VideoFileSource,
    select_at_fps,
)
from seqformer.structures import pad_clips
from seqformer.utils.colour import IMAGENET_MEAN, IMAGENET_STD, apply_colour_map

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ava"


def transform_frames(frames, plan: ClipPlan) -> torch.Tensor:
    """What the model sees: the uint8 pixels with their colour map applied (ImageNet-normalised float)."""
    return apply_colour_map(*transform_pixels(frames, plan))


def denormalize(frames: torch.Tensor) -> torch.Tensor:
    """Inverse of the ImageNet normalisation: values in [0, 1]."""
    return frames * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)


def _grey_frames(root: Path, video_id: str, n: int, pattern: str, first: int = 1, hw=(24, 32)) -> None:
    """Frame index k is a flat image of grey level 3k (exact up to JPEG rounding)."""
    for k in range(n):
        path = root / pattern.format(video_id=video_id, frame=k + first)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*hw, 3), 3 * k % 256, np.uint8)).save(path, quality=95)


def _labels(path: Path, ids=(1, 2)) -> Path:
    write_labelmap_pbtxt(path, [(i, f"a{i}") for i in ids])
    return path


def _clip_levels(frames: torch.Tensor) -> np.ndarray:
    assert frames.dtype == torch.uint8  # datasets hand out pixels; the model normalises
    return frames.double().mean(dim=(1, 2, 3)).numpy()


def test_clip_indices_hand_computed_and_edges_repeated():
    assert clip_frame_indices(40, 8, 2, 100).tolist() == [32, 34, 36, 38, 40, 42, 44, 46]
    assert clip_frame_indices(3, 8, 2, 100).tolist() == [0, 0, 0, 1, 3, 5, 7, 9]
    assert clip_frame_indices(98, 8, 2, 100).tolist() == [90, 92, 94, 96, 98, 99, 99, 99]
    assert clip_frame_indices(5, 5, 3, 7)[5 // 2] == 5  # keyframe stays at num_frames // 2


def test_keyframe_to_frames_with_custom_fps_start_pattern(tmp_path):
    pattern = "clips/{video_id}/img_{frame:04d}.jpg"
    _grey_frames(tmp_path / "frames", "vidA", 35, pattern, first=0)  # 0-based numbering, 35 frames @ 10 fps
    write_gt_csv(tmp_path / "gt.csv", [("vidA", s, 0.1, 0.1, 0.5, 0.5, 1, 0) for s in (14, 11, 13)])
    options = dict(split="val", frames_root=tmp_path / "frames", frame_pattern=pattern, first_frame_number=0,
                   num_frames=6, frame_sample_rate=3, fps=10, start_second=10, val_short_side=24)
    with pytest.raises(ConfigError, match=r"1 of 3 keyframes .* vidA,14 -> frame 40 of 35"):  # checked when built
        AVADataset(tmp_path / "gt.csv", _labels(tmp_path / "l.pbtxt"), **options)
    ds = AVADataset(tmp_path / "gt.csv", _labels(tmp_path / "l.pbtxt"), skip_corrupt_frames=True, **options)
    assert [ds.key(i) for i in range(len(ds))] == [("vidA", 11), ("vidA", 13), ("vidA", 14)]
    frames, target = ds[0]  # second 11 -> frame 10; offsets (-3..2)*3
    np.testing.assert_allclose(_clip_levels(frames), 3 * np.array([1, 4, 7, 10, 13, 16]), atol=2.5)
    assert int(target["key_frame"]) == 3
    frames, _ = ds[1]  # second 13 -> frame 30; the last frame (34) is repeated
    np.testing.assert_allclose(_clip_levels(frames), 3 * np.array([21, 24, 27, 30, 33, 34]), atol=2.5)
    assert ds[2] is None and ds.skip_counts()["skipped_samples"] == 1  # second 14 -> frame 40: skipped, counted


def _box_frames(hw, box, t=3):
    frames = np.zeros((t, *hw, 3), np.uint8)
    x1, y1, x2, y2 = box
    frames[:, round(y1 * hw[0]):round(y2 * hw[0]), round(x1 * hw[1]):round(x2 * hw[1])] = 255
    return frames


def _measure(frames: torch.Tensor) -> tuple[float, float, float, float]:
    bright = denormalize(frames[0]).mean(0) > 0.5
    ys, xs = np.nonzero(bright.numpy())
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("seed", range(6))
def test_train_transform_keeps_boxes_on_their_pixels(seed):
    hw, box = (120, 200), (0.30, 0.25, 0.70, 0.80)
    plan = plan_train(hw, (100, 140), 90, jitter_strength=0.0, generator=torch.Generator().manual_seed(seed))
    frames = transform_frames(_box_frames(hw, box), plan)
    assert tuple(frames.shape[2:]) == plan.out_hw
    boxes, keep = transform_boxes(np.array([box]), plan, hw)
    assert keep.all()
    cx, cy, w, h = boxes[0]
    oh, ow = plan.out_hw
    expected = np.array([(cx - w / 2) * ow, (cy - h / 2) * oh, (cx + w / 2) * ow, (cy + h / 2) * oh])
    np.testing.assert_allclose(_measure(frames), expected, atol=1.5)


def test_jitter_is_one_draw_per_clip_and_matches_reference():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 16, 20, 3), dtype=np.uint8)
    plan = ClipPlan((0, 0, 1, 1), (16, 20), (16, 20), False, (1.2, 0.7, 0.6))
    out = transform_frames(frames, plan)
    p = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    grey = lambda z: (0.299 * z[:, 0] + 0.587 * z[:, 1] + 0.114 * z[:, 2])[:, None]  # noqa: E731
    p1 = 1.2 * p
    m = grey(p1)[:, :, ::8, ::8].mean()
    p2 = 0.7 * p1 + 0.3 * m
    ref = 0.6 * p2 + 0.4 * grey(p2)
    torch.testing.assert_close(denormalize(out), ref, atol=1e-5, rtol=0)


def test_val_has_no_crop_and_keeps_every_box():
    hw = (90, 160)
    plan = plan_val(hw, 72)
    assert plan.out_hw == (72, 128) and plan.region == (0.0, 0.0, 1.0, 1.0)
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.95, 0.9, 1.0, 1.0], [0.5, 0.5, 0.501, 0.502]])
    cxcywh, keep = transform_boxes(boxes, plan, hw, min_size=0.0)
    assert keep.all()
    expected = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                         boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
    np.testing.assert_allclose(cxcywh, expected, atol=1e-6)


def test_rows_grouped_per_person_and_labelmap_columns(tmp_path):
    (tmp_path / "l.pbtxt").write_text('item {\n  name: "x"\n  label_id: 7\n}\nitem {\n  name: "y"\n  label_id: 3\n}\n')
    (tmp_path / "gt.csv").write_text("\n".join([
        "v1,0902,0.1,0.1,0.4,0.9,3,0", "v1,0902,0.1,0.1,0.4,0.9,7,0",  # one person, two actions
        "v1,0902,0.1,0.1,0.4,0.9,3,1",  # same box, another person: its own row
        "v1,0902,0.5,0.1,0.9,0.9,99,2",  # only an action outside the label map: dropped, counted
        "v1,0903,0.2,0.2,0.3,0.3,7", "v1,0903,0.2,0.2,0.3,0.3,3", "v1,0903,0.6,0.2,0.7,0.3,3",  # no person ids
        "v2,0904,0.2,0.2,0.3,0.3,99,0",  # keyframe with nothing in the label map
    ]) + "\n")
    _grey_frames(tmp_path / "f", "v1", 100, "{video_id}/{video_id}_{frame:06d}.jpg")
    ds = AVADataset(tmp_path / "gt.csv", tmp_path / "l.pbtxt", split="val", frames_root=tmp_path / "f",
                    num_frames=4, frame_sample_rate=1, fps=30, start_second=900, val_short_side=24)
    assert [ds.key(i) for i in range(len(ds))] == [("v1", 902), ("v1", 903)]
    boxes, labels = ds.annotations(0)
    assert labels.tolist() == [[1.0, 1.0], [0.0, 1.0]]  # column 0 = id 7, column 1 = id 3 (file order)
    _, labels = ds.annotations(1)
    assert labels.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert ds.stats["boxes_without_labels"] == 2 and ds.stats["rows_outside_labelmap"] == 2
    assert ds.stats["keyframes_without_labels"] == 1
    _, target = ds[0]
    assert target["labels"].shape == (2, 2) and target["boxes"].dtype == torch.float32


def test_malformed_csv_names_file_and_line(tmp_path):
    (tmp_path / "gt.csv").write_text("v1,0902,0.1,0.1,0.4,0.9,3,0\nv1,0902,0.1,0.1,0.4,0.9,3,0\nv1,0903,0.1,oops,0.4,0.9,3\n")
    with pytest.raises(AvaFormatError, match=r"gt\.csv:3"):
        AVADataset(tmp_path / "gt.csv", _labels(tmp_path / "l.pbtxt", (3,)), frames_root=tmp_path)


def test_missing_frames_raise_or_are_counted_skips(tmp_path):
    pattern = "{video_id}/{video_id}_{frame:06d}.jpg"
    _grey_frames(tmp_path / "f", "v", 12, pattern)
    write_gt_csv(tmp_path / "gt.csv", [("v", 1, 0.1, 0.1, 0.5, 0.5, 1, 0), ("v", 2, 0.1, 0.1, 0.5, 0.5, 1, 0)])
    (tmp_path / "f" / pattern.format(video_id="v", frame=4)).unlink()  # frame 3: in clip of second 1, not key
    (tmp_path / "f" / pattern.format(video_id="v", frame=9)).write_bytes(b"not a jpeg")  # keyframe of second 2
    kwargs = dict(split="val", frames_root=tmp_path / "f", num_frames=4, frame_sample_rate=1, fps=4,
                  start_second=0, val_short_side=24)
    strict = AVADataset(tmp_path / "gt.csv", _labels(tmp_path / "l.pbtxt"), **kwargs)
    with pytest.raises(FrameReadError, match=r"missing frame 3 .*v_000004\.jpg"):
        strict[0]
    with pytest.raises(FrameReadError, match=r"corrupt frame 8 .*v_000009\.jpg"):
        strict[1]
    lenient = AVADataset(tmp_path / "gt.csv", tmp_path / "l.pbtxt", skip_corrupt_frames=True, **kwargs)
    frames, _ = lenient[0]  # frames 2,3,4,5 -> 3 replaced by its nearest readable neighbour (2)
    np.testing.assert_allclose(_clip_levels(frames), [6, 6, 12, 15], atol=2.5)
    assert lenient[1] is None  # keyframe unreadable: the sample is skipped, never replaced
    assert lenient.skip_counts() == {"skipped_samples": 1, "replaced_frames": 1}
    batch, targets = collate_ava([lenient[0], None])
    assert batch.tensors.shape[0] == 1 and len(targets) == 1
    assert collate_ava([None]) == (None, [])


def test_synth_actions_are_defined_by_motion():
    cfg = SynthAvaConfig()
    for seed in range(4):
        actor = _make_actor(cfg, np.random.default_rng(seed), 5)
        seg = cfg.segment_seconds * cfg.fps
        for s, acts in enumerate(actor.actions):
            sl = slice(s * seg, (s + 1) * seg)
            dx = np.diff(actor.x[sl])
            assert (WALK_LEFT in acts) == bool((dx < 0).all()) and (WALK_RIGHT in acts) == bool((dx > 0).all())
            assert (JUMP in acts) == bool(np.ptp(actor.y[sl]) > 1)
            assert (SPIN in acts) == bool(np.ptp(actor.angle[sl]) > 0.1)
            assert (PULSE in acts) == bool(np.ptp(actor.scale[sl]) > 0.1)
            moving = np.ptp(actor.x[sl]) + np.ptp(actor.y[sl]) + np.ptp(actor.angle[sl]) + np.ptp(actor.scale[sl])
            assert (acts == [STAND]) == (moving == 0)


def test_synth_dataset_loads_deterministically(tmp_path):
    small = dict(num_train_videos=2, num_val_videos=1, seconds=4)
    paths = generate_synth_ava(tmp_path / "a", SynthAvaConfig(**small, seed=3))
    generate_synth_ava(tmp_path / "b", SynthAvaConfig(**small, seed=3))
    generate_synth_ava(tmp_path / "c", SynthAvaConfig(**small, seed=4))
    frame = "frames/synth_train_001/synth_train_001_000005.jpg"
    assert (tmp_path / "a" / frame).read_bytes() == (tmp_path / "b" / frame).read_bytes()
    assert (tmp_path / "a" / "annotations/train.csv").read_text() == (tmp_path / "b/annotations/train.csv").read_text()
    assert (tmp_path / "a" / "annotations/train.csv").read_text() != (tmp_path / "c/annotations/train.csv").read_text()
    from seqformer.config import load_config

    cfg = load_config(paths["config"], ["model.num_frames=8", "data.frame_sample_rate=1"])
    train, val = build_ava_dataset(cfg, "train"), build_ava_dataset(cfg, "val")
    assert len(train) == 2 * 2 and train.stats["boxes_without_labels"] == 0
    frames, target = train[0]
    assert frames.shape[:2] == (8, 3) and target["labels"].shape[1] == len(ACTIONS)
    assert target["labels"].sum(1).min() >= 1
    clips, targets = collate_ava([val[i] for i in range(len(val))])
    assert clips.tensors.shape[0] == len(val) and all(t["size"].tolist() == [96, 160] for t in targets)
    with pytest.raises(ValueError, match="ava_fps=8"):  # the frames index guards against AVA defaults
        build_ava_dataset(load_config(paths["config"], ["data.ava_fps=30"]), "train")


def _write_video(path: Path, n: int, fps: int, hw=(48, 64)) -> np.ndarray:
    """Frame i: grey level 4i with a bright column at x = i % w (distinct, JPEG-friendly)."""
    frames = np.zeros((n, *hw, 3), np.uint8)
    for i in range(n):
        frames[i] = 4 * i % 250
        frames[i, :, (2 * i) % hw[1]] = 255
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "12", "preset": "veryfast"})
        stream.height, stream.width, stream.pix_fmt = hw[0], hw[1], "yuv444p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    return frames


def test_select_at_fps_identity_and_downsampling():
    times = [(i / 30, i) for i in range(90)]
    assert [p for _, p in select_at_fps(times, 1.0, 30, 0, 45)] == list(range(30, 75))
    assert [p for _, p in select_at_fps(times, 0.0, 10)] == list(range(1, 90, 3))  # as ffmpeg -r 10
    assert [p for _, p in select_at_fps(times[:3], 0.0, 60)] == [0, 0, 1, 1, 2, 2]  # upsampling repeats
    # WebM/MKV store milliseconds: 6 fps is 0, 0.167, ..., 1.167 s (ends at 1.334, after slot 8's start)
    rounded = [(round(i / 6, 3), i) for i in range(8)]
    assert [p for _, p in select_at_fps(rounded, 0.0, 6)] == list(range(8))
    assert [p for _, p in select_at_fps(rounded, 0.0, 12)] == [i // 2 for i in range(16)]


def test_prepare_resume_and_direct_reading(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    source = {v: _write_video(videos / f"{v}.mp4", 90, 30) for v in ("vidA", "vidB")}
    out = tmp_path / "frames"
    args = ["prepare", "ava", "--videos", str(videos), "--out", str(out), "--start-second", "1",
            "--duration", "1.5", "--fps", "30", "--workers", "1"]
    assert cli_main(args) == 0
    first_a = (out / "vidA" / "vidA_000001.jpg").stat().st_mtime_ns
    # Simulate an interruption while vidB was being written.
    (out / "vidB").rename(out / "vidB.partial")
    (out / "vidB.partial" / "vidB_000007.jpg").unlink()
    assert cli_main(args) == 0
    assert "1 already done, 1 to extract" in capsys.readouterr().out
    assert (out / "vidA" / "vidA_000001.jpg").stat().st_mtime_ns == first_a  # finished video skipped
    assert not (out / "vidB.partial").exists() and len(list((out / "vidB").glob("*.jpg"))) == 45
    for v in source:  # frame k is source frame 30 + k
        for k in (0, 6, 44):
            got = np.asarray(Image.open(out / v / f"{v}_{k + 1:06d}.jpg").convert("RGB")).astype(int)
            assert np.abs(got - source[v][30 + k]).mean() < 4
    # PyAV straight from the video equals the extracted frames within JPEG tolerance.
    direct = VideoFileSource(videos, fps=30, start_second=1).read_clip("vidB", [0, 0, 10, 44, 44])
    jpeg = JpegFrameSource(out)
    extracted = np.stack([jpeg.read_frame("vidB", k) for k in (0, 0, 10, 44, 44)])
    assert np.abs(direct.astype(int) - extracted).mean() < 4
    assert jpeg.info("vidB").num_frames == 45  # from the frames index
    # A cut window past the end of the video is reported as short.
    short = ["prepare", "ava", "--videos", str(videos), "--out", str(tmp_path / "short"), "--start-second", "2",
             "--duration", "2", "--fps", "30", "--workers", "1"]
    assert cli_main(short) == 0
    assert "short video: vidA has 30 frames, expected 60" in capsys.readouterr().out


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared AVA files (../shared/data/ava) not present")
def test_real_val_csv_and_activitynet_labelmap(tmp_path):
    ds = AVADataset(SHARED / "ava_val_v2.1_labels1-14.csv", SHARED / "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
                    split="val", frames_root=tmp_path)
    assert len(ds.class_ids) == 60
    rows = list(csv.reader(open(SHARED / "ava_val_v2.1_labels1-14.csv")))
    assert ds.stats["rows"] == len(rows)
    person = lambda r: int(r[7]) if len(r) > 7 else -1  # noqa: E731  (this file has 7 columns)
    in_map = {(r[0], int(r[1]), *map(float, r[2:6]), person(r)) for r in rows if int(r[6]) in set(ds.class_ids)}
    assert ds.stats["boxes"] == len(in_map)
    with pytest.raises(FrameReadError, match="no frames for video"):
        ds[0]


def test_flip_swaps_direction_dependent_labels(tmp_path):
    """Mirroring a clip turns "walk left" into "walk right"; the synthetic set declares that pair."""
    from seqformer.config import load_config

    paths = generate_synth_ava(tmp_path, SynthAvaConfig(num_train_videos=2, num_val_videos=1, seconds=4))
    base = ["model.num_frames=4", "data.ava_train_short_side=[96,96]", "data.ava_crop_size=96"]
    plain = build_ava_dataset(load_config(paths["config"], base + ["data.ava_flip_prob=0.0"]), "train")
    mirrored = build_ava_dataset(load_config(paths["config"], base + ["data.ava_flip_prob=1.0"]), "train")
    left, right = plain.class_ids.index(1), plain.class_ids.index(2)
    swapped = 0
    for i in range(len(plain)):
        (f0, t0), (f1, t1) = plain[i], mirrored[i]
        order0, order1 = t0["boxes"][:, 0].argsort(), (1 - t1["boxes"][:, 0]).argsort()  # match actors by x
        l0, l1 = t0["labels"][order0], t1["labels"][order1]
        assert torch.equal(l0[:, left], l1[:, right]) and torch.equal(l0[:, right], l1[:, left])
        others = [j for j in range(l0.shape[1]) if j not in (left, right)]
        assert torch.equal(l0[:, others], l1[:, others])
        swapped += int(l0[:, [left, right]].sum())
    assert swapped > 0  # the check above was not vacuous
    with pytest.raises(ValueError, match="flip pair"):
        build_ava_dataset(load_config(paths["config"], base + ["data.ava_flip_pairs=[[1,4]]"]), "train")


def test_uint8_batches_normalise_like_float_clips():
    """Workers ship uint8 pixels + colour maps; ``normalized()`` equals transforming to float first."""
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (4, *hw, 3), dtype=np.uint8) for hw in [(40, 60), (30, 72)]]
    plans = [plan_train(f.shape[1:3], (30, 40), 28, generator=torch.Generator().manual_seed(s))
             for s, f in enumerate(frames)]
    assert all(p.jitter is not None for p in plans)
    float_batch = pad_clips([transform_frames(f, p) for f, p in zip(frames, plans)])
    samples = []
    for f, p in zip(frames, plans):
        pixels, cmap = transform_pixels(f, p)
        assert pixels.dtype == torch.uint8
        samples.append((pixels, {"colour_map": cmap}))
    batch, targets = collate_ava(samples)
    assert batch.tensors.dtype == torch.uint8 and targets == [{}, {}]
    torch.testing.assert_close(batch.mask, float_batch.mask)
    torch.testing.assert_close(batch.normalized(), float_batch.tensors, atol=2e-5, rtol=0)
    torch.testing.assert_close(batch.to("cpu").normalized(), float_batch.tensors, atol=2e-5, rtol=0)
