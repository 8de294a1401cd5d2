"""AVA file readers/writers: real shared files, round trips, and line-numbered errors."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from seqformer.data.ava_format import (
    AvaFormatError,
    key_only_rows,
    read_ava_csv,
    read_ava_frame,
    read_exclusions,
    read_labelmap,
    write_detections_csv,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ava"
LABELMAP = SHARED / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"
VAL_CSV = SHARED / "ava_val_v2.1_labels1-14.csv"
SPEC_IDS = {1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 20, 22, 24, 26, 27, 28, 29, 30, 34, 36, 37,
            38, 41, 43, 45, 46, 47, 48, 49, 51, 52, 54, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68,
            69, 70, 72, 73, 74, 76, 77, 78, 79, 80}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_real_labelmap_has_the_60_spec_classes():
    if not LABELMAP.exists():
        pytest.skip(f"shared AVA label map not found at {LABELMAP}")
    entries = read_labelmap(LABELMAP)
    assert len(entries) == 60
    assert {class_id for class_id, _ in entries} == SPEC_IDS
    assert entries[0] == (1, "bend/bow (at the waist)")
    assert entries[1] == (3, "crouch/kneel")


def test_real_val_csv_matches_python_csv_parse():
    if not VAL_CSV.exists():
        pytest.skip(f"shared AVA val CSV not found at {VAL_CSV}")
    table = read_ava_csv(VAL_CSV, "gt")
    assert len(table) == 93_400
    assert len(set(table.video_ids.tolist())) == 64
    assert table.scores is None and (table.person_ids == -1).all()
    with open(VAL_CSV, newline="") as f:
        rows = list(csv.reader(f))
    step = 997  # every 997th row: exact float equality with Python's float(), as the official reader
    for i in range(0, len(rows), step):
        row = rows[i]
        assert table.video_ids[i] == row[0]
        assert table.seconds[i] == int(row[1])
        assert table.boxes[i].tolist() == [float(v) for v in row[2:6]]
        assert table.action_ids[i] == int(row[6])


def test_labelmap_label_id_spelling_and_flexible_indent(tmp_path):
    path = _write(tmp_path / "lm.pbtxt",
                  'item {\n  name: "a b"\n  label_id: 4\n}\nitem {\n    name: "c"\n    id: 2\n}\n')
    assert read_labelmap(path) == [(4, "a b"), (2, "c")]


@pytest.mark.parametrize("text, line", [
    ('item {\n  name: "a"\n  id: x\n}\n', 3),
    ('item {\n  id: 3\n}\n', 2),
    ('item {\n  name: a\n  id: 3\n}\n', 2),
])
def test_labelmap_errors_name_file_and_line(tmp_path, text, line):
    path = _write(tmp_path / "bad.pbtxt", text)
    with pytest.raises(AvaFormatError, match=rf"bad\.pbtxt:{line}:"):
        read_labelmap(path)


def test_exclusions(tmp_path):
    path = _write(tmp_path / "ex.csv", "vidA,0902\nvidB,1000\n")
    assert read_exclusions(path) == {("vidA", 902), ("vidB", 1000)}
    with pytest.raises(AvaFormatError, match=r"ex2\.csv:2:"):
        read_exclusions(_write(tmp_path / "ex2.csv", "vidA,0902\nvidB,1000,3\n"))


def test_gt_with_mixed_7_and_8_columns(tmp_path):
    path = _write(tmp_path / "gt.csv", "v1,0902,0.1,0.2,0.3,0.4,12,7\nv1,0903,0.5,0.5,0.9,1.0,3\n")
    table = read_ava_csv(path, "gt")
    assert table.seconds.tolist() == [902, 903]
    assert table.person_ids.tolist() == [7, -1]
    np.testing.assert_array_equal(table.boxes, [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 1.0]])
    assert table.action_ids.tolist() == [12, 3]


def test_detections_round_trip(tmp_path):
    path = tmp_path / "det.csv"
    boxes = np.array([[0.1234, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]])
    write_detections_csv(path, ["vidA", "vidB"], [902, 5], boxes, [12, 80], [0.87654321, 0.5])
    assert path.read_text().splitlines() == ["vidA,0902,0.123,0.200,0.300,0.400,12,0.876543",
                                              "vidB,0005,0.000,0.000,1.000,1.000,80,0.500000"]
    table = read_ava_csv(path, "det")
    assert table.video_ids.tolist() == ["vidA", "vidB"]
    assert table.seconds.tolist() == [902, 5]
    np.testing.assert_allclose(table.boxes, boxes, atol=5e-4)
    np.testing.assert_allclose(table.scores, [0.876543, 0.5])
    assert table.action_ids.tolist() == [12, 80]


def test_seven_column_detection_gets_score_one_like_official(tmp_path):
    table = read_ava_csv(_write(tmp_path / "d.csv", "v,0902,0.1,0.2,0.3,0.4,12\n"), "det")
    assert table.scores.tolist() == [1.0]


def test_empty_file_gives_empty_table(tmp_path):
    table = read_ava_csv(_write(tmp_path / "e.csv", ""), "det")
    assert len(table) == 0 and table.boxes.shape == (0, 4)


GOOD = "v,0902,0.1,0.2,0.3,0.4,12,0.5\n"


@pytest.mark.parametrize("bad_row, message", [
    ("v,0902,0.1,0.2,0.3,0.4\n", "expected 2, 7 or 8 columns, got 6"),
    ("v,0902,0.1,0.2,0.3,0.4,12,0.5,9\n", "expected 2, 7 or 8 columns, got 9"),
    ("\n", "expected 2, 7 or 8 columns, got 0"),
    ("v,0902,0.1\n", "expected 2, 7 or 8 columns, got 3"),
    ("v,0902,0.1,0.2,0.3\n", "expected 2, 7 or 8 columns, got 5"),
    ("v,0902,,,,,,\n", "x1 '' is not a number"),
    ("v,0902,0.1,,0.3,0.4,12,0.5\n", "y1 '' is not a number"),
    ("v,0902,0.1,zz,0.3,0.4,12,0.5\n", "y1 'zz' is not a number"),
    ("v,09.5,0.1,0.2,0.3,0.4,12,0.5\n", "second '09.5' is not a number"),
    ("v,0902,0.1,0.2,0.3,0.4,12,nan\n", "score is NaN"),
    ("v,0902,10,20,300,400,12,0.5\n", "box coordinate outside \\[0, 1\\]"),
])
def test_malformed_row_error_names_its_line(tmp_path, bad_row, message):
    path = _write(tmp_path / "det.csv", GOOD * 3 + bad_row + GOOD)
    with pytest.raises(AvaFormatError, match=rf"det\.csv:4: {message}"):
        read_ava_csv(path, "det")


def test_non_integer_person_id_is_an_error(tmp_path):
    with pytest.raises(AvaFormatError, match=r"gt\.csv:2: person id"):
        read_ava_csv(_write(tmp_path / "gt.csv", "v,1,0,0,1,1,3,1\nv,1,0,0,1,1,3,1.5\n"), "gt")


@pytest.mark.parametrize("kind", ["gt", "det"])
def test_two_column_rows_are_keyframes_without_boxes(tmp_path, kind):
    # The official format since 2020: "video_id,second" marks an annotated keyframe without a box.
    text = "v,0902,0.1,0.2,0.3,0.4,12,3\nv,0903\nw,0001,0.1,0.2,0.3,0.4,5\nw,2\n"
    table = read_ava_csv(_write(tmp_path / "f.csv", text), kind)
    assert table.seconds.tolist() == [902, 1] and table.action_ids.tolist() == [12, 5]
    assert table.keyframes_without_boxes == [("v", 903), ("w", 2)]
    frame = read_ava_frame(tmp_path / "f.csv", kind)
    assert key_only_rows(frame).tolist() == [False, True, False, True]
    assert frame[1].tolist() == [902, 903, 1, 2]


def test_errors_after_two_column_rows_still_name_their_line(tmp_path):
    text = "v,0901\nv,0902,0.1,0.2,0.3,0.4,12,3\nv,0903\nv,0904,0.1,0.2,3.0,0.4,12,3\n"
    with pytest.raises(AvaFormatError, match=r"gt\.csv:4: box coordinate outside"):
        read_ava_csv(_write(tmp_path / "gt.csv", text), "gt")
