"""YouTube-VIS data side: clip augmentations, frame sampling, datasets, synth generator, split tool, COCO pseudo-videos."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seqformer.cli import main as cli_main
from seqformer.data.coco_video import (
    COCOPseudoVideoDataset,
    build_joint_dataset,
    masks_to_xyxy,
)
from seqformer.data.collate import collate_clips
from seqformer.data.ytvis_dataset import YTVISDataset, sample_clip_frames
from seqformer.data.ytvis_format import (
    YTVISFormatError,
    encode_rle,
    load_ytvis_json,
    save_ytvis_json,
)
from seqformer.data.ytvis_synth import generate_synth_vis
from seqformer.data.ytvis_transforms import (
    Check,
    Compose,
    PhotometricDistort,
    ToTensorNormalize,
    build_train_transforms,
    crop,
    hflip,
    resize,
)
from seqformer.tools.split_vis import split_video_ids

from conftest import SMALL_VIS

# ---------------------------------------------------------------- transforms


def _rect_clip(rng: np.random.Generator) -> tuple[list[Image.Image], dict]:
    """3 frames of 60x80; instance 0 is a moving rectangle, instance 1 is absent in frame 1."""
    h, w, t = 60, 80, 3
    frames = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for _ in range(t)]
    rects = [[(10, 5, 40, 30), (14, 8, 44, 33), (18, 11, 48, 36)], [(50, 20, 75, 55), None, (52, 30, 79, 59)]]
    masks = torch.zeros((2, t, h, w), dtype=torch.bool)
    boxes = torch.zeros((2, t, 4))
    for i, track in enumerate(rects):
        for j, r in enumerate(track):
            if r is not None:
                masks[i, j, r[1]:r[3], r[0]:r[2]] = True
                boxes[i, j] = torch.tensor(r, dtype=torch.float32)
    target = {"labels": torch.tensor([1, 2]), "boxes": boxes, "masks": masks, "valid": masks.flatten(2).any(-1),
              "size": torch.tensor([h, w])}
    return frames, target


def _assert_boxes_match_masks(target: dict, tol: float = 2.0) -> None:
    from_masks = masks_to_xyxy(target["masks"].bool())
    present = target["masks"].flatten(2).any(-1)
    assert present.any()
    assert torch.allclose(from_masks[present], target["boxes"][present], atol=tol), (from_masks, target["boxes"])


def test_flip_resize_crop_keep_boxes_and_masks_consistent():
    frames, target = _rect_clip(np.random.default_rng(0))
    f, t = hflip(frames, target)
    assert t["boxes"][0, 0].tolist() == [40.0, 5.0, 70.0, 30.0]  # x -> 80 - x
    _assert_boxes_match_masks(t)
    f, t = resize(frames, target, 90, None)
    assert f[0].size == (120, 90) and t["masks"].shape[-2:] == (90, 120)
    _assert_boxes_match_masks(t)
    f, t = crop(frames, target, 10, 20, 40, 50)
    assert t["masks"].shape[-2:] == (40, 50) and t["size"].tolist() == [40, 50]
    _assert_boxes_match_masks(t)
    assert t["boxes"][0, 0].tolist() == [0.0, 0.0, 20.0, 20.0]


def test_train_chain_consistent_over_random_draws():
    for seed in range(12):
        frames, target = _rect_clip(np.random.default_rng(seed))
        rng = random.Random(seed)
        chain = build_train_transforms(train_scales=[48, 64, 80], train_max_size=128, crop_scales=[60, 70],
                                       crop_size=[30, 50], rng=rng)
        steps = chain.transforms[:-1]  # stop before normalisation to compare in pixels
        for step in steps:
            frames, target = step(frames, target)
        if target["masks"].flatten(2).any(-1).any():
            _assert_boxes_match_masks(target)
        clip, out = chain.transforms[-1](frames, target)
        h, w = out["size"].tolist()
        assert clip.shape == (3, 3, h, w) and (out["boxes"] <= 1.0 + 1e-6).all()


def test_check_marks_invalid_frames_and_drops_empty_instances():
    _, target = _rect_clip(np.random.default_rng(0))
    target["boxes"][1, 1] = torch.tensor([1500.0, 3.0, 1500.0, 9.0])  # degenerate; floor-div by 1000 -> (1,0,1,0)
    _, out = Check()(None, target)
    assert out["valid"].tolist() == [[True, True, True], [True, False, True]]
    assert out["boxes"][1, 1].tolist() == [1.0, 0.0, 1.0, 0.0]
    target["boxes"][1] = 0
    _, out = Check()(None, target)
    assert out["labels"].tolist() == [1] and out["masks"].shape[0] == 1


def test_photometric_hue_quirk_and_identity():
    red = Image.fromarray(np.full((2, 2, 3), [255, 0, 0], np.uint8))
    none = {"brightness": None, "contrast_first": True, "contrast": None, "saturation": None, "hue": None,
            "perm": None}
    np.testing.assert_array_equal(np.asarray(PhotometricDistort.apply(red, none)), np.asarray(red))
    # RGB read as BGR: true red is "blue" (240 deg); +30 -> 270 = (127.5, 0, 255) in BGR, i.e. RGB (255, 0, 127.5)
    out = np.asarray(PhotometricDistort.apply(red, dict(none, hue=30.0)))[0, 0]
    np.testing.assert_allclose(out, [255, 0, 127], atol=1)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    same_hsv = PhotometricDistort.apply(img, dict(none, saturation=1.0, hue=0.0))
    np.testing.assert_allclose(np.asarray(same_hsv, float), np.asarray(img, float), atol=1)
    clip = [img] * 4
    per_clip, _ = PhotometricDistort(per_clip=True, rng=random.Random(3))(clip, None)
    assert all(np.array_equal(np.asarray(per_clip[0]), np.asarray(f)) for f in per_clip)


# ---------------------------------------------------------------- sampling and datasets


def test_frame_sampling_rules():
    rng = random.Random(0)
    for _ in range(400):
        length = rng.randint(1, 40)
        ref = rng.randrange(length)
        t = rng.randint(1, 9)
        idx = sample_clip_frames(ref, length, t, rng)
        assert len(idx) == t and idx == sorted(idx) and all(0 <= i < length for i in idx)
        if t >= 3:
            assert ref in idx
            assert ref == 0 or any(max(0, ref - 3) <= i < ref for i in idx)
            assert ref == length - 1 or any(ref < i <= min(length - 1, ref + 3) for i in idx)
        if t > 3 and length >= 3 * t + 8 and 3 <= ref < length - 3:
            # globals come without replacement from all[:min(local)] + all[max(local):]; that pool includes the
            # right local frame (original quirk), so the only possible duplicate lies in (ref, ref + 3]
            dups = {i for i in idx if idx.count(i) > 1}
            assert len(dups) <= 1 and all(ref < i <= ref + 3 for i in dups)
    assert len(sample_clip_frames(0, 2, 8, rng)) == 8  # the original's random.sample would crash here


def test_synth_generator_layout_mix_and_determinism(synth_vis, tmp_path):
    data = json.loads(Path(synth_vis["train_ann"]).read_text())
    kinds = {("poly" if isinstance(s, list) else type(s["counts"]).__name__)
             for a in data["annotations"] for s in a["segmentations"] if s is not None}
    assert kinds == {"poly", "list", "str"}
    assert any(s is None for a in data["annotations"] for s in a["segmentations"])
    anns = load_ytvis_json(synth_vis["train_ann"], synth_vis["train_images"])
    for ann in anns.annotations:
        for f, seg in enumerate(ann["segmentations"]):
            m = anns.decode_mask(ann, f)
            if seg is None:
                assert ann["bboxes"][f] is None and m.sum() == 0
            else:
                x, y, w, h = ann["bboxes"][f]
                assert m.sum() == ann["areas"][f] and m[y:y + h, x:x + w].sum() == m.sum()
    assert load_ytvis_json(synth_vis["valid_ann"], synth_vis["valid_images"]).annotations
    again = generate_synth_vis(tmp_path, SMALL_VIS)
    assert Path(again["train_ann"]).read_bytes() == Path(synth_vis["train_ann"]).read_bytes()
    name = data["videos"][0]["file_names"][3]
    assert (again["train_images"] / name).read_bytes() == (synth_vis["train_images"] / name).read_bytes()


def test_ytvis_dataset_contract(synth_vis):
    ds = YTVISDataset(synth_vis["train_images"], synth_vis["train_ann"], num_frames=4,
                      transforms=build_train_transforms(train_scales=[64, 96], train_max_size=160,
                                                        crop_scales=[80], crop_size=[48, 70]),
                      rng=random.Random(0))
    assert len(ds) == 4 * 8
    for idx in (0, 13, 31):
        frames, target = ds[idx]
        n, t = target["labels"].shape[0], 4
        h, w = target["size"].tolist()
        assert frames.shape == (t, 3, h, w) and frames.dtype == torch.float32
        assert target["boxes"].shape == (n, t, 4) and target["masks"].shape == (n, t, h, w)
        assert target["masks"].dtype == torch.uint8 and target["valid"].dtype == torch.bool
        assert target["frame_ids"].shape == (t,) and target["orig_size"].tolist() == [64, 96]
        assert (target["boxes"] >= 1e-6).all() and target["valid"].any(1).all()
        assert (target["boxes"][~target["valid"]] == 1e-6).all()
        assert target["masks"][~target["valid"]].sum() == 0


def _single_video_json(tmp_path: Path, absent: list[bool], extra_video: bool = False) -> Path:
    """Video 5 with one square instance that is null on the frames flagged in ``absent``."""
    (tmp_path / "v").mkdir(exist_ok=True)
    videos, anns = [], []
    for vid in ([5, 6] if extra_video else [5]):
        names = [f"v/{vid}_{k}.jpg" for k in range(len(absent))]
        for name in names:
            Image.new("RGB", (32, 24), (90, 90, 90)).save(tmp_path / name)
        videos.append({"id": vid, "width": 32, "height": 24, "length": len(names), "file_names": names})
        mask = np.zeros((24, 32), np.uint8)
        mask[4:14, 6:20] = 1
        gone = absent if vid == 5 else [False] * len(absent)
        anns.append({"id": vid * 10, "video_id": vid, "category_id": 2, "iscrowd": 0,
                     "segmentations": [None if a else encode_rle(mask) for a in gone],
                     "bboxes": [None if a else [6, 4, 14, 10] for a in gone],
                     "areas": [None if a else 140 for a in gone]})
    path = tmp_path / "ann.json"
    save_ytvis_json({"videos": videos, "categories": [{"id": 2, "name": "b"}], "annotations": anns}, path)
    return path


def test_absent_frames_are_invalid_with_near_zero_box(tmp_path):
    absent = [False, True, False, True, True, False]
    ann = _single_video_json(tmp_path, absent)
    ds = YTVISDataset(tmp_path, ann, num_frames=5, transforms=build_train_transforms(
        train_scales=[24, 32], train_max_size=64, crop_scales=[30], crop_size=[20, 28]), rng=random.Random(1))
    seen_absent = 0
    for idx in range(len(ds)):
        _, target = ds[idx]
        gone = torch.tensor([absent[f] for f in target["frame_ids"].tolist()])
        assert not target["valid"][0][gone].any()
        assert (target["boxes"][0][gone] == 1e-6).all() and target["masks"][0][gone].sum() == 0
        seen_absent += int(gone.sum())
    assert seen_absent > 0


def test_resampling_is_bounded_and_counted(tmp_path):
    ann = _single_video_json(tmp_path, [True] * 4, extra_video=True)
    ds = YTVISDataset(tmp_path, ann, num_frames=3, transforms=Compose([Check(), ToTensorNormalize()]),
                      max_retries=4, rng=random.Random(0))
    _, target = ds[0]  # video 5 never has an instance: 4 failed draws, then video 6
    assert target["video_id"] == 6 and ds.num_resampled == 4
    assert ds.skip_counts() == {"resampled_clips": 4}  # what the trainer logs per epoch
    assert copy.deepcopy(ds).num_resampled == 4
    subset = torch.utils.data.Subset(ds, [0, 1])  # both items fail 4 times on video 5, inside the worker
    assert len(list(torch.utils.data.DataLoader(subset, batch_size=2, num_workers=1, collate_fn=collate_clips))) == 1
    assert ds.num_resampled == 4 + 8
    (tmp_path / "empty").mkdir()
    only_empty = _single_video_json(tmp_path / "empty", [True] * 3)
    empty_ds = YTVISDataset(tmp_path / "empty", only_empty, num_frames=3, transforms=Check(), max_retries=2)
    with pytest.raises(RuntimeError, match="no video yields a clip"):
        empty_ds[0]
    assert empty_ds.num_resampled == 2


def test_collate_pads_to_multiple_of_32(synth_vis):
    clips = [(torch.ones(2, 3, 40, 70), {"a": 1}), (torch.ones(2, 3, 65, 30), {"a": 2})]
    batch, targets = collate_clips(clips)
    assert batch.tensors.shape == (2, 2, 3, 96, 96) and batch.mask.shape == (2, 2, 96, 96)
    assert not batch.mask[0, :, :40, :70].any() and batch.mask[0, :, 40:].all() and batch.mask[0, :, :, 70:].all()
    assert batch.tensors[1, :, :, 65:].abs().sum() == 0 and [t["a"] for t in targets] == [1, 2]


# ---------------------------------------------------------------- split tool


def test_split_deterministic_disjoint_and_complete(synth_vis, tmp_path):
    ids = list(range(1, 101))
    train, val = split_video_ids(ids, 0.1, seed=0)
    assert len(val) == 10 and not set(train) & set(val) and sorted(train + val) == ids
    assert split_video_ids(list(reversed(ids)), 0.1, seed=0) == (train, val)
    assert split_video_ids(ids, 0.1, seed=1)[1] != val
    assert len(split_video_ids([1, 2], 0.1, 0)[1]) == 1
    for out in ("a", "b"):
        assert cli_main(["split", "vis", "--annotations", str(synth_vis["train_ann"]), "--out-dir", str(tmp_path / out),
                         "--val-fraction", "0.5", "--seed", "3"]) == 0
    a_val = (tmp_path / "a" / "instances_val_sub.json").read_bytes()
    assert a_val == (tmp_path / "b" / "instances_val_sub.json").read_bytes()
    full = load_ytvis_json(synth_vis["train_ann"])
    tr = load_ytvis_json(tmp_path / "a" / "instances_train_sub.json", synth_vis["train_images"])
    va = load_ytvis_json(tmp_path / "a" / "instances_val_sub.json", synth_vis["train_images"])
    assert len(tr.videos) == len(va.videos) == 2 and not set(tr.videos_by_id) & set(va.videos_by_id)
    assert len(tr.annotations) + len(va.annotations) == len(full.annotations)
    assert all(a["video_id"] in va.videos_by_id for a in va.annotations)


def test_synth_cli(tmp_path):
    assert cli_main(["synth", "vis", "--out", str(tmp_path), "--num-train-videos", "2", "--num-val-videos", "1",
                     "--num-frames", "3", "--height", "32", "--width", "48", "--seed", "4"]) == 0
    anns = load_ytvis_json(tmp_path / "annotations" / "instances_train_sub.json", tmp_path / "train" / "JPEGImages")
    assert len(anns.videos) == 2 and Image.open(tmp_path / "train" / "JPEGImages" / anns.videos[0]["file_names"][2]
                                                ).size == (48, 32)


# ---------------------------------------------------------------- COCO pseudo-videos


@pytest.fixture()
def fake_coco(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "b.jpg")
    data = {"images": [{"id": 7, "file_name": "a.jpg", "width": 80, "height": 60},
                       {"id": 9, "file_name": "b.jpg", "width": 70, "height": 50}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [10, 15, 20, 25], "area": 500,
                 "segmentation": [[10, 15, 30, 15, 30, 40, 10, 40]]},
                {"id": 2, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [40, 5, 30, 20], "area": 600,
                 "segmentation": encode_rle(np.pad(np.ones((20, 30), np.uint8), ((5, 35), (40, 10))))},
                {"id": 3, "image_id": 9, "category_id": 90, "iscrowd": 0, "bbox": [1, 1, 10, 10], "area": 100,
                 "segmentation": [[1, 1, 11, 1, 11, 11]]}],
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 90, "name": "toothbrush"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path


def test_coco_pseudo_video(fake_coco):
    ds = COCOPseudoVideoDataset(fake_coco, fake_coco / "ann.json", num_frames=4, rng=random.Random(0))
    assert len(ds) == 1 and ds.num_dropped_annotations == 1 and ds.num_skipped_images == 1
    frames, target = ds.make_clip(7)
    assert len(frames) == 4 and sorted(target["frame_ids"].tolist()) == [0, 1, 2, 3]
    assert target["labels"].tolist() == [1, 6]  # COCO car (3) -> YouTube-VIS-2019 car (6)
    original = target["frame_ids"].tolist().index(0)
    assert target["boxes"][0, original].tolist() == [10.0, 15.0, 30.0, 40.0]
    assert target["boxes"][1, original].tolist() == [40.0, 5.0, 70.0, 25.0]
    assert not np.array_equal(np.asarray(frames[(original + 1) % 4]), np.asarray(frames[original]))
    ds.transforms = build_train_transforms(train_scales=[48, 64], train_max_size=100, crop_scales=[60],
                                           crop_size=[40, 60], photometric=False, rng=random.Random(0))
    clip, target = ds[0]
    n, h, w = target["labels"].shape[0], *target["size"].tolist()
    assert clip.shape == (4, 3, h, w) and target["masks"].shape == (n, 4, h, w) and 1 <= n <= 2
    assert target["video_id"] == 7 and (target["boxes"] >= 1e-6).all()
    five = COCOPseudoVideoDataset(fake_coco, fake_coco / "ann.json", transforms=ToTensorNormalize())
    assert five[0][0].shape == (5, 3, 60, 80)


def test_joint_dataset_ratio(fake_coco, synth_vis):
    ytvis = YTVISDataset(synth_vis["train_images"], synth_vis["train_ann"], num_frames=5)
    coco = COCOPseudoVideoDataset(fake_coco, fake_coco / "ann.json", num_frames=5)
    assert len(build_joint_dataset(ytvis, coco, 0.5)) == 32 + 16
    assert len(build_joint_dataset(ytvis, coco, None)) == 32 + 1
    with pytest.raises(ValueError, match="num_frames"):
        build_joint_dataset(ytvis, COCOPseudoVideoDataset(fake_coco, fake_coco / "ann.json", num_frames=3))


def test_coco_bad_segmentation_names_image_and_annotation(fake_coco):
    data = json.loads((fake_coco / "ann.json").read_text())
    data["annotations"][0]["segmentation"] = {"size": [60, 80], "counts": "!!"}
    (fake_coco / "bad.json").write_text(json.dumps(data))
    ds = COCOPseudoVideoDataset(fake_coco, fake_coco / "bad.json")
    with pytest.raises(YTVISFormatError, match=r"bad\.json: image 7 annotation 1: cannot decode"):
        ds.load_image(7)
