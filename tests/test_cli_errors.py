"""Bad input through every command ends in one ``error:`` line naming the file and the place, exit 1.

Each case builds a broken input from a small valid synthetic set, runs ``seqformer.cli.main`` in
process and asserts: exit code 1, no traceback, exactly one ``error:`` line, and that the line names
what the user must look at (file, line / video / frame / option).  Errors are raised before any model
is trained, so the whole table runs in a few seconds.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from seqformer.cli import main
from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava

TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=6", "data.num_workers=0"]
VIS_CONFIG = "configs/ytvis/tiny_synth.yaml"
AVA_CONFIG = "configs/ava/tiny_synth.yaml"


@dataclass
class Ctx:
    """Paths of the valid inputs and helpers that write broken copies into ``tmp``."""

    tmp: Path
    vis: dict
    ava: dict
    jhmdb_gt: Path
    vis_weights: Path
    ava_weights: Path

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)

    def vis_json(self, name: str, change: Callable[[dict], None], source: str = "train_ann") -> str:
        data = json.loads(Path(self.vis[source]).read_text())
        change(data)
        return self.write(name, json.dumps(data))

    def vis_results(self, name: str, change: Callable[[list], None]) -> str:
        gt = json.loads(Path(self.vis["valid_ann"]).read_text())
        results = [{"video_id": a["video_id"], "category_id": a["category_id"], "score": 0.9,
                    "segmentations": a["segmentations"]} for a in gt["annotations"]]
        change(results)
        return self.write(name, json.dumps(results))

    def ava_lines(self, name: str, lines: list[str], base: str = "val_csv") -> str:
        text = Path(self.ava[base]).read_text()
        return self.write(name, text + "\n".join(lines) + "\n")

    def vis_train(self, *extra: str) -> list[str]:
        return self._train(VIS_CONFIG, [f"data.ytvis_path={self.vis['root']}", "model.num_frames=2"], extra)

    def ava_train(self, *extra: str) -> list[str]:
        return self._train(AVA_CONFIG, [*self.ava_overrides(), "model.num_frames=4"], extra)

    def _train(self, config: str, overrides: list[str], extra: tuple[str, ...]) -> list[str]:
        flags = [a for i, a in enumerate(extra) if a.startswith("--") or (i and extra[i - 1].startswith("--"))]
        positional = [a for a in extra if a not in flags]
        return ["train", "--config", config, "--no-progress", *flags, *TINY, *overrides,
                f"train.output_dir={self.tmp / 'run'}", *positional]

    def ava_overrides(self) -> list[str]:
        a = self.ava
        return [f"data.ava_frames={a['frames']}", f"data.ava_train_csv={a['train_csv']}",
                f"data.ava_val_csv={a['val_csv']}", f"data.ava_labelmap={a['labelmap']}",
                f"data.ava_exclusions={a['exclusions']}", "data.ava_fps=8", "data.ava_start_second=60"]

    def evaluate_vis(self, gt: str | None = None, results: str | None = None) -> list[str]:
        return ["evaluate", "vis", "--groundtruth", gt or str(self.vis["valid_ann"]),
                "--results", results or self.vis_results("ok.json", lambda r: None)]

    def evaluate_ava(self, labelmap=None, gt=None, det=None, exclusions=None) -> list[str]:
        argv = ["evaluate", "ava", "--no-plot", "--labelmap", labelmap or str(self.ava["labelmap"]),
                "--groundtruth", gt or str(self.ava["val_csv"]), "--detections", det or str(self.ava["val_csv"])]
        return argv + (["--exclusions", exclusions] if exclusions else [])

    def predict_vis(self, weights=None, annotations=None, out=None, *extra: str) -> list[str]:
        return ["predict", "vis", "--config", VIS_CONFIG, "--weights", weights or str(self.vis_weights),
                "--images", str(self.vis["valid_images"]), "--annotations", annotations or str(self.vis["valid_ann"]),
                "--out", out or str(self.tmp / "results.json"), "--device", "cpu", *TINY, *extra]

    def predict_ava(self, weights=None, out=None, *extra: str) -> list[str]:
        return ["predict", "ava", "--config", AVA_CONFIG, "--weights", weights or str(self.ava_weights),
                "--out", out or str(self.tmp / "det.csv"), "--device", "cpu", "--no-progress", *TINY,
                *self.ava_overrides(), "model.num_frames=4", *extra]


def _set(path: list, value) -> Callable:
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _dup_first_video(data: dict) -> None:
    data["videos"].append(dict(data["videos"][0]))


def _string_video_id(data: dict) -> None:
    old = data["videos"][0]["id"]
    data["videos"][0]["id"] = "v1"
    for a in data["annotations"]:
        if a["video_id"] == old:
            a["video_id"] = "v1"


def _garbage_counts(results: list) -> None:
    results[0]["segmentations"] = [None if s is None else {"size": s["size"], "counts": "@@@@garbage!!"}
                                   for s in results[0]["segmentations"]]


def _short_counts(results: list) -> None:  # valid alphabet, runs sum to 1 pixel
    results[0]["segmentations"] = [None if s is None else {"size": s["size"], "counts": "1"}
                                   for s in results[0]["segmentations"]]


LABELMAP_DUP = 'item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n'
GT_INVERTED = "synth_val_000,0061,0.719,0.396,0.481,0.729,1,0"
OUTSIDE = ["synth_train_000,0100,0.1,0.1,0.5,0.5,1,0", "synth_train_000,0200,0.1,0.1,0.5,0.5,1,0"]
CASES: dict[str, tuple[Callable[[Ctx], list[str]], list[str]]] = {
    # ---- evaluate vis
    "evis_results_not_json": (lambda c: c.evaluate_vis(results=c.write("r.json", "[{oops")), ["r.json", "JSON"]),
    "evis_results_object": (lambda c: c.evaluate_vis(results=c.write("r.json", "{}")), ["r.json", "list"]),
    "evis_result_without_score": (lambda c: c.evaluate_vis(results=c.vis_results("r.json", lambda r: r[0].pop("score"))),
                                  ["r.json", "result [0]", "score"]),
    "evis_result_unknown_video": (lambda c: c.evaluate_vis(results=c.vis_results("r.json", _set([0, "video_id"], 99))),
                                  ["r.json", "video 99"]),
    "evis_result_string_score": (lambda c: c.evaluate_vis(results=c.vis_results("r.json", _set([0, "score"], "high"))),
                                 ["r.json", "result [0]", "'score'"]),
    "evis_garbage_rle": (lambda c: c.evaluate_vis(results=c.vis_results("r.json", _garbage_counts)),
                         ["r.json", "result [0]", "video 1", "frame 0", "RLE"]),
    "evis_short_rle": (lambda c: c.evaluate_vis(results=c.vis_results("r.json", _short_counts)),
                       ["r.json", "result [0]", "frame 0", "sum to 1"]),
    "evis_result_wrong_length": (lambda c: c.evaluate_vis(results=c.vis_results(
        "r.json", lambda r: r[0]["segmentations"].pop())), ["r.json", "result [0]", "segmentations"]),
    "evis_gt_string_video_id": (lambda c: c.evaluate_vis(gt=c.vis_json("gt.json", _string_video_id, "valid_ann")),
                                ["gt.json", "videos[0]", "'v1'"]),
    "evis_gt_duplicate_video": (lambda c: c.evaluate_vis(gt=c.vis_json("gt.json", _dup_first_video, "valid_ann")),
                                ["gt.json", "duplicate video id"]),
    "evis_gt_not_json": (lambda c: c.evaluate_vis(gt=c.write("gt.json", "{")), ["gt.json", "JSON"]),
    "evis_gt_no_annotations": (lambda c: c.evaluate_vis(gt=c.vis_json("gt.json", lambda d: d.pop("annotations"),
                                                                     "valid_ann")), ["gt.json", "annotations"]),
    "evis_results_missing": (lambda c: c.evaluate_vis(results=str(c.tmp / "nope.json")), ["nope.json"]),
    # ---- evaluate ava
    "eava_gt_inverted_box": (lambda c: c.evaluate_ava(gt=c.ava_lines("gt.csv", [GT_INVERTED])),
                             ["gt.csv:", "x1 > x2"]),
    "eava_gt_inverted_y": (lambda c: c.evaluate_ava(gt=c.ava_lines("gt.csv", ["synth_val_000,0061,0.1,0.9,0.5,0.2,1,0"])),
                           ["gt.csv:", "y1 > y2"]),
    "eava_gt_columns": (lambda c: c.evaluate_ava(gt=c.ava_lines("gt.csv", ["a,1,2"])), ["gt.csv:", "columns"]),
    "eava_gt_second_text": (lambda c: c.evaluate_ava(gt=c.ava_lines("gt.csv", ["v,abc,0.1,0.1,0.2,0.2,1,0"])),
                            ["gt.csv:", "second"]),
    "eava_gt_pixels": (lambda c: c.evaluate_ava(gt=c.ava_lines("gt.csv", ["v,0061,10,10,200,200,1,0"])),
                       ["gt.csv:", "normalised"]),
    "eava_gt_person_float": (lambda c: c.evaluate_ava(gt=c.ava_lines("gt.csv", ["v,0061,0.1,0.1,0.2,0.2,1,0.5"])),
                             ["gt.csv:", "person id"]),
    "eava_det_inf_score": (lambda c: c.evaluate_ava(det=c.ava_lines("det.csv", ["v,0061,0.1,0.1,0.2,0.2,1,inf"])),
                           ["det.csv:", "score"]),
    "eava_det_nan_coord": (lambda c: c.evaluate_ava(det=c.ava_lines("det.csv", ["v,0061,nan,0.1,0.2,0.2,1,0.5"])),
                           ["det.csv:", "x1"]),
    "eava_labelmap_duplicate": (lambda c: c.evaluate_ava(labelmap=c.write("l.pbtxt", LABELMAP_DUP)),
                                ["l.pbtxt:7", "duplicate class id 1", "line 3"]),
    "eava_labelmap_id_text": (lambda c: c.evaluate_ava(labelmap=c.write("l.pbtxt", 'item {\n name: "a"\n id: x\n}\n')),
                              ["l.pbtxt:3", "not an integer"]),
    "eava_labelmap_empty": (lambda c: c.evaluate_ava(labelmap=c.write("l.pbtxt", "\n")), ["l.pbtxt", "no 'id:'"]),
    "eava_labelmap_id_zero": (lambda c: c.evaluate_ava(labelmap=c.write("l.pbtxt", 'item {\n name: "a"\n id: 0\n}\n')),
                              ["l.pbtxt", ">= 1"]),
    "eava_exclusions_columns": (lambda c: c.evaluate_ava(exclusions=c.write("ex.csv", "v,1,2\n")), ["ex.csv:1", "2 columns"]),
    "eava_exclusions_second": (lambda c: c.evaluate_ava(exclusions=c.write("ex.csv", "v,abc\n")), ["ex.csv:1", "second"]),
    "eava_labelmap_missing": (lambda c: c.evaluate_ava(labelmap=str(c.tmp / "none.pbtxt")), ["none.pbtxt"]),
    "eava_det_binary": (lambda c: c.evaluate_ava(det=c.write("det.csv", "\udcff\udcfe,1,2\n".encode(
        "utf-8", "surrogateescape").decode("latin-1"))), ["det.csv"]),
    # ---- evaluate jhmdb
    "ejhmdb_gt_text": (lambda c: ["evaluate", "jhmdb", "--groundtruth", c.write("gt.pkl", "text"),
                                  "--detections", c.write("d.csv", "video,frame,x1,y1,x2,y2,label,score\n")],
                       ["gt.pkl"]),
    "ejhmdb_det_inverted": (lambda c: ["evaluate", "jhmdb", "--groundtruth", str(c.jhmdb_gt), "--detections",
                                       c.write("d.csv", "video,frame,x1,y1,x2,y2,label,score\nalpha/f1,1,50,1,10,9,1,0.5\n")],
                            ["d.csv:2"]),
    "ejhmdb_det_columns": (lambda c: ["evaluate", "jhmdb", "--groundtruth", str(c.jhmdb_gt), "--detections",
                                      c.write("d.csv", "video,frame,x1,y1,x2,y2,label,score\nalpha/f1,1,2\n")],
                           ["d.csv:2"]),
    "ejhmdb_split": (lambda c: ["evaluate", "jhmdb", "--groundtruth", str(c.jhmdb_gt), "--split", "7",
                                "--detections", c.write("d.csv", "video,frame,x1,y1,x2,y2,label,score\n")],
                     ["split"]),
    # ---- train: config
    "train_config_missing": (lambda c: ["train", "--config", str(c.tmp / "none.yaml")], ["none.yaml"]),
    "train_config_bad_yaml": (lambda c: ["train", "--config", c.write("c.yaml", "model: [")], ["c.yaml", "YAML"]),
    "train_config_unknown_key": (lambda c: ["train", "--config", c.write("c.yaml", "model:\n  num_query: 3\n")],
                                 ["c.yaml", "num_query"]),
    "train_config_not_mapping": (lambda c: ["train", "--config", c.write("c.yaml", "- 1\n")], ["c.yaml", "mapping"]),
    "train_override_bad_yaml": (lambda c: c.vis_train("optim.lr_drop=[1,"), ["optim.lr_drop", "YAML"]),
    "train_override_bad_yaml_brace": (lambda c: c.vis_train("train.output_dir={a"), ["train.output_dir", "YAML"]),
    "train_override_unknown": (lambda c: c.vis_train("foo=1"), ["'foo'"]),
    "train_override_no_equals": (lambda c: c.vis_train("optim.lr"), ["optim.lr", "key=value"]),
    "train_override_type": (lambda c: c.vis_train("optim.lr=fast"), ["optim.lr", "float"]),
    "train_negative_lr_backbone": (lambda c: c.vis_train("optim.lr_backbone=-1.0e-5"), ["optim.lr_backbone"]),
    "train_negative_weight_decay": (lambda c: c.vis_train("optim.weight_decay=-1"), ["optim.weight_decay"]),
    "train_tiny_backbone_weights": (lambda c: c.vis_train(f"model.backbone_weights={c.vis_weights}"),
                                    ["model.backbone_weights", "tiny"]),
    "train_bad_task": (lambda c: c.vis_train("model.task=seg"), ["model.task"]),
    # ---- train: data
    "train_vis_no_annotations": (lambda c: c.vis_train(f"data.train_ann={c.vis_json('t.json', lambda d: d.pop('annotations'))}"),
                                 ["t.json", "annotations"]),
    "train_vis_duplicate_video": (lambda c: c.vis_train(f"data.train_ann={c.vis_json('t.json', _dup_first_video)}"),
                                  ["t.json", "video 1", "duplicate"]),
    "train_vis_string_video_id": (lambda c: c.vis_train(f"data.train_ann={c.vis_json('t.json', _string_video_id)}"),
                                  ["t.json", "video"]),
    "train_vis_not_json": (lambda c: c.vis_train(f"data.train_ann={c.write('t.json', '[')}"), ["t.json", "line 1"]),
    "train_vis_missing_image": (lambda c: c.vis_train(f"data.train_ann={c.vis_json('t.json', _set(['videos', 0, 'file_names', 0], 'x/none.jpg'))}"),
                                ["t.json", "video 1", "none.jpg"]),
    "train_ava_inverted_box": (lambda c: c.ava_train(f"data.ava_train_csv={c.ava_lines('t.csv', [GT_INVERTED], 'train_csv')}"),
                               ["t.csv:", "x1 > x2"]),
    "train_ava_labelmap_duplicate": (lambda c: c.ava_train(f"data.ava_labelmap={c.write('l.pbtxt', LABELMAP_DUP)}"),
                                     ["l.pbtxt:7", "duplicate"]),
    "train_ava_keyframes_outside": (lambda c: c.ava_train(f"data.ava_train_csv={c.ava_lines('t.csv', OUTSIDE, 'train_csv')}"),
                                    ["t.csv", "2 of", "synth_train_000,100 -> frame 320 of 32",
                                     "data.ava_start_second", "data.skip_corrupt_frames"]),
    "train_ava_frames_index_fps": (lambda c: c.ava_train("data.ava_fps=30"), ["frames_index.json", "data.ava_fps=8"]),
    "train_ava_num_classes": (lambda c: c.ava_train("model.num_classes=3"), ["model.num_classes=6"]),
    "train_ava_flip_pairs": (lambda c: c.ava_train("data.ava_flip_pairs=[[1,99]]"), ["data.ava_flip_pairs", "99"]),
    "train_resume_text": (lambda c: c.vis_train("--resume", c.write("r.pth", "hello")), ["r.pth", "not a PyTorch"]),
    "train_resume_missing": (lambda c: c.vis_train("--resume", str(c.tmp / "none.pth")), ["none.pth", "not found"]),
    "train_resume_weights_only": (lambda c: c.vis_train("--resume", str(c.vis_weights)), ["vis.pth", "weights only"]),
    "train_pretrain_text": (lambda c: c.vis_train("--pretrain-weights", c.write("p.pth", "hello")), ["p.pth"]),
    "train_output_dir_is_file": (lambda c: c.vis_train(f"train.output_dir={c.write('f.txt', 'x')}/run"), ["f.txt"]),
    # ---- predict vis
    "pvis_weights_text": (lambda c: c.predict_vis(weights=c.write("w.pth", "hello world")), ["w.pth", "text file"]),
    "pvis_weights_missing": (lambda c: c.predict_vis(weights=str(c.tmp / "none.pth")), ["none.pth", "not found"]),
    "pvis_weights_wrong_model": (lambda c: c.predict_vis(str(c.ava_weights)), ["ava.pth", "key"]),
    "pvis_duplicate_video": (lambda c: c.predict_vis(annotations=c.vis_json("v.json", _dup_first_video, "valid_ann")),
                             ["v.json", "video 1", "duplicate"]),
    "pvis_annotations_not_json": (lambda c: c.predict_vis(annotations=c.write("v.json", "{")), ["v.json", "JSON"]),
    "pvis_annotations_no_videos": (lambda c: c.predict_vis(annotations=c.write("v.json", "{}")), ["v.json", "videos"]),
    "pvis_out_is_dir": (lambda c: c.predict_vis(None, None, str(c.tmp)), ["--out", "directory"]),
    "pvis_out_under_file": (lambda c: c.predict_vis(None, None, c.write("f.txt", "x") + "/r.json"), ["--out", "f.txt"]),
    # the output path is checked first: with a missing --weights too, the error is about --out
    "pvis_out_checked_before_work": (lambda c: c.predict_vis(str(c.tmp / "none.pth"), None, str(c.tmp)),
                                     ["--out", "directory"]),
    "pava_out_checked_before_work": (lambda c: c.predict_ava(str(c.tmp / "none.pth"), str(c.tmp)),
                                     ["--out", "directory"]),
    "pvis_config_missing": (lambda c: ["predict", "vis", "--config", "none.yaml", "--weights", "w", "--images", "i",
                                       "--annotations", "a"], ["none.yaml"]),
    # ---- predict ava
    "pava_weights_text": (lambda c: c.predict_ava(weights=c.write("w.pth", "hello world")), ["w.pth", "text file"]),
    "pava_out_is_dir": (lambda c: c.predict_ava(None, str(c.tmp)), ["--out", "directory"]),
    "pava_out_under_file": (lambda c: c.predict_ava(None, c.write("f.txt", "x") + "/d.csv"), ["--out", "f.txt"]),
    "pava_val_inverted": (lambda c: c.predict_ava(None, None, f"data.ava_val_csv={c.ava_lines('v.csv', [GT_INVERTED])}"),
                          ["v.csv:", "x1 > x2"]),
    # ---- split vis
    "split_duplicate_video": (lambda c: ["split", "vis", "--annotations", c.vis_json("t.json", _dup_first_video),
                                         "--out-dir", str(c.tmp / "s")], ["t.json", "duplicate"]),
    "split_not_json": (lambda c: ["split", "vis", "--annotations", c.write("t.json", "nope"), "--out-dir",
                                  str(c.tmp / "s")], ["t.json"]),
    "split_fraction": (lambda c: ["split", "vis", "--annotations", str(c.vis["train_ann"]), "--out-dir",
                                  str(c.tmp / "s"), "--val-fraction", "2"], ["--val-fraction"]),
    "split_overwrite_input": (lambda c: ["split", "vis", "--annotations", str(c.vis["train_ann"]), "--out-dir",
                                         str(Path(c.vis["train_ann"]).parent), "--train-name",
                                         Path(c.vis["train_ann"]).name], ["--out-dir", "overwrite"]),
    # ---- prepare ava
    "prep_videos_missing": (lambda c: ["prepare", "ava", "--videos", str(c.tmp / "novids"), "--out", str(c.tmp / "o")],
                            ["novids", "no such file"]),
    "prep_frame_pattern": (lambda c: ["prepare", "ava", "--videos", str(c.tmp), "--out", str(c.tmp / "o"),
                                      "--frame-pattern", "img_{frame:05d}.jpg"], ["--frame-pattern"]),
    # ---- synth
    "synth_ava_small_frames": (lambda c: ["synth", "ava", "--out", str(c.tmp / "s"), "--height", "8", "--width", "8"],
                               ["--height", "--width"]),
    "synth_ava_segments": (lambda c: ["synth", "ava", "--out", str(c.tmp / "s"), "--seconds", "5"],
                           ["--seconds", "--segment-seconds"]),
    "synth_vis_small_frames": (lambda c: ["synth", "vis", "--out", str(c.tmp / "s"), "--height", "8"], ["--height"]),
}


@pytest.fixture(scope="module")
def valid_inputs(synth_vis, tmp_path_factory) -> dict:
    from seqformer.config import load_config
    from seqformer.data.jhmdb_format import groundtruth_from_dict, write_groundtruth_pickle
    from seqformer.engine.task import get_task

    from jhmdb_eval_cases import hand_groundtruth

    root = tmp_path_factory.mktemp("valid_inputs")
    ava = generate_synth_ava(root / "ava", SynthAvaConfig(num_train_videos=1, num_val_videos=2, seconds=4,
                                                          height=64, width=96))
    weights = {}
    for task, config, extra in (("vis", VIS_CONFIG, []), ("ava", AVA_CONFIG, ["model.num_frames=4"])):
        torch.manual_seed(0)
        model = get_task(task).build_model(load_config(config, TINY + extra))
        weights[task] = root / f"{task}.pth"
        torch.save({"model": model.state_dict()}, weights[task])
    write_groundtruth_pickle(groundtruth_from_dict(hand_groundtruth()), root / "jhmdb.pkl")
    return {"vis": synth_vis, "ava": ava, "jhmdb_gt": root / "jhmdb.pkl", "weights": weights}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_ends_in_one_error_line(name, valid_inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SEQFORMER_DEBUG", raising=False)
    monkeypatch.chdir(Path(__file__).parents[1])  # the configs are relative to the repository root
    build, expected = CASES[name]
    ctx = Ctx(tmp_path, valid_inputs["vis"], valid_inputs["ava"], valid_inputs["jhmdb_gt"],
              valid_inputs["weights"]["vis"], valid_inputs["weights"]["ava"])
    argv = build(ctx)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1, (argv, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for part in expected:
        assert part in errors[0], (part, errors[0])


def test_table_covers_every_command():
    prefixes = {name.split("_")[0] for name in CASES}
    assert len(CASES) >= 60
    assert prefixes == {"evis", "eava", "ejhmdb", "train", "pvis", "pava", "split", "synth", "prep"}


def test_debug_flag_shows_the_traceback(valid_inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[1])
    bad = tmp_path / "l.pbtxt"
    bad.write_text(LABELMAP_DUP)
    argv = ["evaluate", "ava", "--no-plot", "--labelmap", str(bad), "--groundtruth", str(valid_inputs["ava"]["val_csv"]),
            "--detections", str(valid_inputs["ava"]["val_csv"])]
    from seqformer.data.ava_format import AvaFormatError

    with pytest.raises(AvaFormatError, match="duplicate class id"):
        main(["--debug", *argv])
    monkeypatch.setenv("SEQFORMER_DEBUG", "1")
    with pytest.raises(AvaFormatError):
        main(argv)
    assert os.environ["SEQFORMER_DEBUG"] == "1"
