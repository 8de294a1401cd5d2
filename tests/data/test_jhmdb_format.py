"""JHMDB/UCF101-24 ground-truth pickles: the real file, round trips, the restricted unpickler, schema errors."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from seqformer.data.jhmdb_format import (
    JhmdbFormatError,
    groundtruth_from_dict,
    read_groundtruth_pickle,
    write_groundtruth_pickle,
)
from seqformer.errors import SeqFormerError

SHARED_GT = Path(__file__).resolve().parents[3] / "shared" / "data" / "jhmdb" / "JHMDB-GT.pkl"


def _tube(start, end, box=(1.0, 2.0, 30.5, 40.0)):
    frames = np.arange(start, end + 1, dtype=np.float32)[:, None]
    return np.concatenate([frames, np.tile(np.asarray(box, np.float32), (len(frames), 1))], axis=1)


def _small() -> dict:
    return {"labels": ["run", "jump"],
            "gttubes": {"run/a": {0: [_tube(1, 5), _tube(3, 8)]}, "jump/b": {1: [_tube(2, 4)]}, "run/c": {}},
            "nframes": {"run/a": 8, "jump/b": 4, "run/c": 3},
            "train_videos": [["run/a"], ["jump/b", "run/c"]], "test_videos": [["jump/b", "run/c"], ["run/a"]],
            "resolution": {"run/a": (240, 320), "jump/b": (240, 320), "run/c": (100, 200)}}


def _structure(obj):
    """Types and shapes of a loaded pickle, recursively (dict keys and order included)."""
    if isinstance(obj, dict):
        return ("dict", [(type(k).__name__, k, _structure(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_structure(v) for v in obj])
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.flags["C_CONTIGUOUS"])
    return (type(obj).__name__, obj)


@pytest.fixture(scope="module")
def shared_gt():
    if not SHARED_GT.is_file():
        pytest.skip(f"shared JHMDB ground truth not found at {SHARED_GT}")
    return read_groundtruth_pickle(SHARED_GT)


def test_real_jhmdb_file(shared_gt):
    gt = shared_gt
    assert gt.num_labels == 21 and gt.num_splits == 3 and len(gt.nframes) == 928
    assert gt.labels[0] == "brush_hair" and gt.labels[-1] == "wave"
    for split in (1, 2, 3):
        test, train = gt.test_videos_of(split), gt.train_videos_of(split)
        assert not set(test) & set(train) and len(test) + len(train) == 928
    video = gt.test_videos_of(1)[0]
    assert gt.frames(video) == 40 and gt.resolution[video] == (240, 320)
    tube = gt.tubes_of(video, 0)[0]
    assert tube.dtype == np.float32 and tube.shape == (40, 5)
    np.testing.assert_array_equal(tube[:, 0], np.arange(1, 41))
    assert gt.ignored_keys == []


def test_real_file_round_trip_keeps_structure(shared_gt, tmp_path):
    out = tmp_path / "JHMDB-GT.pkl"
    write_groundtruth_pickle(shared_gt, out)
    again = read_groundtruth_pickle(out)
    assert again.labels == shared_gt.labels and again.nframes == shared_gt.nframes
    assert again.train_videos == shared_gt.train_videos and again.test_videos == shared_gt.test_videos
    assert again.resolution == shared_gt.resolution
    for video, by_label in shared_gt.gttubes.items():
        assert list(again.gttubes[video]) == list(by_label)
        for label, tubes in by_label.items():
            for a, b in zip(tubes, again.gttubes[video][label], strict=True):
                np.testing.assert_array_equal(a, b)
    # What a plain (trusting) reader sees is the same object structure as the published file.
    with open(SHARED_GT, "rb") as f:
        original = pickle.load(f, encoding="latin1")
    with open(out, "rb") as f:
        written = pickle.load(f, encoding="latin1")
    assert _structure(written) == _structure(original)
    assert out.read_bytes()[:2] == b"\x80\x02"  # protocol 2


def test_small_round_trip_and_helpers(tmp_path):
    gt = groundtruth_from_dict(_small(), "small")
    for protocol in (0, 2, 5):
        path = tmp_path / f"gt{protocol}.pkl"
        write_groundtruth_pickle(gt, path, protocol=protocol)
        again = read_groundtruth_pickle(path)
        assert again.to_dict().keys() == gt.to_dict().keys()
        assert again.test_videos_of(2) == ["run/a"] and again.frames("run/a") == 8
        assert [t.tolist() for t in again.tubes_of("run/a", 0)] == [t.tolist() for t in gt.tubes_of("run/a", 0)]
        assert again.tubes("run/c") == {} and again.tubes_of("jump/b", 0) == []
    with pytest.raises(JhmdbFormatError, match=r"split 3 does not exist \(the file has splits 1\.\.2\)"):
        gt.test_videos_of(3)
    with pytest.raises(JhmdbFormatError, match="unknown video 'nope'"):
        gt.frames("nope")


def test_float64_and_numpy_scalars_are_normalised(tmp_path):
    data = _small()
    data["gttubes"]["run/a"][0] = [t.astype(np.float64) for t in data["gttubes"]["run/a"][0]]
    data["nframes"]["run/a"] = np.int64(8)
    path = tmp_path / "gt.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)
    gt = read_groundtruth_pickle(path)
    assert gt.tubes_of("run/a", 0)[0].dtype == np.float32 and type(gt.nframes["run/a"]) is int


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_restricted_unpickler_refuses_code(tmp_path, protocol):
    marker = tmp_path / "pwned"
    data = _small()
    data["labels"] = [_RunsCode(marker), "jump"]
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    with pytest.raises(JhmdbFormatError, match=r"evil\.pkl: not a ground-truth pickle \(refusing to load global "
                                                r"(posix|os)\.system"):
        read_groundtruth_pickle(path)
    assert not marker.exists()
    assert issubclass(JhmdbFormatError, SeqFormerError)


def test_unreadable_files(tmp_path):
    with pytest.raises(JhmdbFormatError, match="missing.pkl: cannot read"):
        read_groundtruth_pickle(tmp_path / "missing.pkl")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps(_small(), protocol=2)[:200])
    with pytest.raises(JhmdbFormatError, match="truncated.pkl: not a .*pickle"):
        read_groundtruth_pickle(truncated)


def _mutated(change):
    data = _small()
    change(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("resolution"), "missing key\\(s\\) resolution"),
    (lambda d: d.update(labels=["run", "run"]), "label 'run' appears more than once"),
    (lambda d: d["gttubes"]["run/a"].update({2: []}), r"gttubes\['run/a'\]\[2\]: label must be an integer in 0..1"),
    (lambda d: d["gttubes"]["run/a"][0].append(_tube(1, 3)[:, :4]),
     r"gttubes\['run/a'\]\[0\]\[2\]: a tube must have shape \(n >= 1, 5\), got \(3, 4\)"),
    (lambda d: d["gttubes"]["run/a"][0].append(np.delete(_tube(1, 5), 2, axis=0)),
     r"gttubes\['run/a'\]\[0\]\[2\]: frames must be consecutive and increasing \(row 2 jumps\)"),
    (lambda d: d["gttubes"]["jump/b"][1].append(_tube(3, 5)), r"frames 3\.\.5 outside the video's 1\.\.4"),
    (lambda d: d["gttubes"]["jump/b"][1].append(np.array([[1, 0, 0, np.nan, 1]], np.float32)), "non-finite"),
    (lambda d: d["gttubes"]["jump/b"][1].append([[1, 0, 0, 1, 1]]), "a tube must be a numeric numpy array"),
    (lambda d: d["test_videos"][0].append("ghost"), r"test_videos split 1: video 'ghost' is not in nframes"),
    (lambda d: d["test_videos"].append([]), "train_videos has 2 splits but test_videos 3"),
    (lambda d: d["gttubes"].pop("run/c"), r"train_videos split 2: video 'run/c' has no gttubes entry"),
    (lambda d: d["resolution"].update({"run/c": (100,)}), r"resolution\['run/c'\] must be \(height, width\)"),
    (lambda d: d["nframes"].update({"run/c": 0}), r"nframes\['run/c'\] must be a positive integer"),
    (lambda d: d["gttubes"].update({"other": {}}), "gttubes: video 'other' is not in nframes"),
])
def test_schema_errors_name_file_and_place(tmp_path, change, message):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(_mutated(change), f, protocol=2)
    with pytest.raises(JhmdbFormatError, match=f"bad.pkl: .*{message}"):
        read_groundtruth_pickle(path)


def test_writer_refuses_what_it_could_not_read_back(tmp_path):
    gt = groundtruth_from_dict(_small(), "small")
    gt.test_videos[0].append("ghost")
    with pytest.raises(JhmdbFormatError, match="video 'ghost' is not in nframes"):
        write_groundtruth_pickle(gt, tmp_path / "out.pkl")
    assert not (tmp_path / "out.pkl").exists()


def test_unknown_top_level_keys_are_reported():
    data = _small()
    data["version"] = 2
    assert groundtruth_from_dict(data).ignored_keys == ["version"]
