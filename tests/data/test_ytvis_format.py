"""YouTube-VIS json IO: RLE and polygon decoding, malformed files named by file, video, annotation and frame."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from seqformer.data.ytvis_dataset import YTVISDataset
from seqformer.data.ytvis_format import (
    YTVISFormatError,
    compressed_rle_counts,
    decode_segmentation,
    encode_rle,
    load_ytvis_json,
    save_ytvis_json,
)

# ---------------------------------------------------------------- format


def test_rle_hand_case_both_encodings():
    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 1:4] = 1
    expected_runs = [5, 2, 2, 2, 2, 2, 5]  # column-major: zeros, ones, zeros, ... counted by hand
    assert encode_rle(mask, compressed=False)["counts"] == expected_runs
    compressed = encode_rle(mask)
    assert isinstance(compressed["counts"], str)
    assert compressed_rle_counts(compressed["counts"]) == expected_runs
    for rle in (compressed, {"size": [4, 5], "counts": expected_runs}):
        np.testing.assert_array_equal(decode_segmentation(rle, 4, 5), mask)


def test_rle_random_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(30):
        h, w = rng.integers(1, 30, size=2)
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        for compressed in (True, False):
            rle = json.loads(json.dumps(encode_rle(mask, compressed)))
            np.testing.assert_array_equal(decode_segmentation(rle, h, w), mask)
        assert compressed_rle_counts(encode_rle(mask)["counts"]) == encode_rle(mask, False)["counts"]


def test_polygon_decoding_and_union():
    square = [1, 1, 4, 1, 4, 3, 1, 3]  # 3x2 pixel rectangle
    m = decode_segmentation([square], 5, 6)
    assert m.sum() == 6 and m[1:3, 1:4].all()
    two = decode_segmentation([square, [0, 4, 2, 4, 2, 5, 0, 5]], 5, 6)
    assert two.sum() == 6 + 2
    assert decode_segmentation(None, 5, 6).sum() == 0


def _tiny_json(seg, bbox=(1, 1, 2, 2)) -> dict:
    return {"videos": [{"id": 3, "width": 6, "height": 5, "length": 1, "file_names": ["v/0.jpg"]}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 17, "video_id": 3, "category_id": 1, "iscrowd": 0,
                             "segmentations": [seg], "bboxes": [list(bbox)], "areas": [4]}]}


@pytest.mark.parametrize("seg, needle", [
    ({"size": [5, 6], "counts": [3, 4, 5]}, "sum to 12"),
    ({"size": [5, 6], "counts": "\x7f"}, "invalid RLE character"),
    ({"size": [4, 6], "counts": [24]}, "does not match"),
    ([[1, 2, 3, 4]], "polygon"),
    ([[1, 2, 3, 4, 5]], "polygon"),
])
def test_bad_segmentation_names_file_video_annotation(tmp_path, seg, needle):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_tiny_json(seg)))
    with pytest.raises(YTVISFormatError) as err:
        load_ytvis_json(path)
    msg = str(err.value)
    assert str(path) in msg and "video 3" in msg and "annotation 17" in msg and needle in msg


def test_malformed_json_and_missing_image(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"videos": [\n{"id": 1,}\n]}')
    with pytest.raises(YTVISFormatError, match=r"broken\.json: malformed JSON at line 2"):
        load_ytvis_json(bad)
    good = tmp_path / "good.json"
    save_ytvis_json(_tiny_json(encode_rle(np.ones((5, 6), np.uint8))), good)
    with pytest.raises(YTVISFormatError, match=r"good\.json: video 3: missing image file .*v/0\.jpg"):
        load_ytvis_json(good, img_dir=tmp_path)
    data = _tiny_json(None)
    data["annotations"][0]["category_id"] = 9
    with pytest.raises(YTVISFormatError, match="annotation 17: unknown category_id 9"):
        save_ytvis_json(data, tmp_path / "x.json")


def test_image_size_mismatch_is_reported(tmp_path):
    (tmp_path / "v").mkdir()
    Image.new("RGB", (7, 5)).save(tmp_path / "v" / "0.jpg")
    save_ytvis_json(_tiny_json(encode_rle(np.ones((5, 6), np.uint8))), tmp_path / "a.json")
    ds = YTVISDataset(tmp_path, tmp_path / "a.json", num_frames=1)
    with pytest.raises(YTVISFormatError, match="video 3: image .* is 7x5, json says 6x5"):
        ds[0]
