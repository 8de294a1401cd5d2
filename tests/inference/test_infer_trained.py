"""``seqformer infer vis|ava`` end to end with tiny *trained* checkpoints, checked against the synthetic ground truth.

The checkpoints (``tests/fixtures/checkpoints/``, written by ``scripts/make_test_checkpoints.py``) were
trained on other seeds of the same generators, so every video here is new to them.  A model that finds
the objects lets the tests check what a user sees: the rendered colour sits on the ground-truth object,
the rendered box on the ground-truth actor, and the results score the same through ``evaluate`` as
``predict``'s on the frame folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import yaml
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion, find_objects
from scipy.ndimage import label as connected_components

from seqformer.cli import main
from seqformer.config import load_config
from seqformer.data.video_input import open_input
from seqformer.evaluation.ytvis_eval import evaluate_ytvis
from seqformer.utils.render import instance_colour

from helpers import write_video

CHECKPOINTS = Path(__file__).parents[1] / "fixtures" / "checkpoints"
UPSCALE = 4  # the AVA video is rendered 4x larger (ava_setup)


def trained_config(name: str, out: Path, overrides: dict[str, dict]) -> Path:
    """The checkpoint's committed config with the test's data paths filled in."""
    data = yaml.safe_load((CHECKPOINTS / f"{name}_tiny.yaml").read_text())
    for section, values in overrides.items():
        data[section].update(values)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def video_iou(a: list, b: list) -> float:
    """YouTube-VIS video IoU of two per-frame RLE lists (``None`` = absent)."""
    inter = union = 0
    for sa, sb in zip(a, b):
        ma = mask_util.decode(sa).astype(bool) if sa else None
        mb = mask_util.decode(sb).astype(bool) if sb else None
        if ma is None and mb is None:
            continue
        ma = np.zeros_like(mb) if ma is None else ma
        mb = np.zeros_like(ma) if mb is None else mb
        inter, union = inter + (ma & mb).sum(), union + (ma | mb).sum()
    return inter / max(union, 1)


@pytest.fixture(scope="module")
def vis_setup(tmp_path_factory):
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis

    root = tmp_path_factory.mktemp("infer_vis_trained")
    # one video of the generator's default size (objects of 25-55 pixels), a star and a triangle
    paths = generate_synth_vis(root / "vis", SynthVisConfig(num_train_videos=0, num_val_videos=1, num_frames=8, seed=1))
    config = trained_config("vis", root, {"data": {"ytvis_path": str(root / "vis"), "num_workers": 0}})
    gt = json.loads(paths["valid_ann"].read_text())
    frames_dir = paths["valid_images"] / Path(gt["videos"][0]["file_names"][0]).parent
    return root, config, paths, frames_dir, gt


def test_infer_vis_frame_folder_equals_predict_and_evaluates(vis_setup):
    root, config, paths, frames_dir, gt = vis_setup
    video = gt["videos"][0]
    weights = str(CHECKPOINTS / "vis_tiny.pth")
    common = ["--config", str(config), "--weights", weights, "--no-progress"]
    assert main(["infer", "vis", *common, "--input", str(frames_dir), "--out", str(root / "out"), "--no-render"]) == 0
    stem = frames_dir.name
    infer_results = json.loads((root / "out" / f"{stem}.json").read_text())
    entry = json.loads((root / "out" / f"{stem}_video.json").read_text())["videos"][0]
    assert (entry["length"], entry["height"], entry["width"]) == (video["length"], video["height"], video["width"])
    assert main(["predict", "vis", "--config", str(config), "--weights", weights,
                 "--images", str(paths["valid_images"]), "--annotations", str(paths["valid_ann"]),
                 "--out", str(root / "predict.json")]) == 0
    predicted = json.loads((root / "predict.json").read_text())
    key = lambda r: (r["category_id"], round(r["score"], 6))  # noqa: E731
    assert sorted(map(key, infer_results)) == sorted(map(key, predicted))
    for a, b in zip(sorted(infer_results, key=key), sorted(predicted, key=key)):
        assert a["segmentations"] == b["segmentations"]
    infer_stats = evaluate_ytvis(paths["valid_ann"], infer_results)
    assert infer_stats == evaluate_ytvis(paths["valid_ann"], predicted)
    assert infer_stats["AP50"] >= 0.5, infer_stats  # the objects are found (random weights: 0)
    # the minimal annotation file written next to the results is accepted by `evaluate vis`
    assert main(["evaluate", "vis", "--groundtruth", str(root / "out" / f"{stem}_video.json"),
                 "--results", str(root / "out" / f"{stem}.json")]) == 0


JITTER = [0, 0.04, -0.04, 0.04, -0.04, 0.04, 0, 0]  # seconds: variable, but each frame keeps its 1/6 s slot


@pytest.mark.parametrize("name,codec,pix_fmt,kind", [
    ("h264.mp4", "libx264", "yuv420p", "constant"), ("vp9.webm", "libvpx-vp9", "yuv420p", "constant"),
    ("mjpeg.avi", "mjpeg", "yuvj420p", "constant"), ("vfr.mp4", "libx264", "yuv420p", "variable"),
    ("rotated.mp4", "libx264", "yuv420p", "rotated")])
def test_infer_vis_reads_every_container_and_finds_the_objects(vis_setup, name, codec, pix_fmt, kind):
    """Each kind of file the issue names goes through ``infer vis``: the rendered video has the source's
    frame count, display size and rate, and the results score on the ground truth of the same frames."""
    root, config, paths, frames_dir, _ = vis_setup
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(frames_dir.iterdir())]
    h, w = frames[0].shape[:2]
    fps_args = []
    if kind == "variable":
        src = write_video(root / name, frames, fps=6, times=[k / 6 + j for k, j in enumerate(JITTER)])
        fps_args = ["--fps", "6"]
    elif kind == "rotated":  # stored turned clockwise, displayed upright by the rotation metadata
        src = write_video(root / name, [np.ascontiguousarray(np.rot90(f, -1)) for f in frames], fps=6, rotation=90)
        assert open_input(src).rotation == 90
    else:
        src = write_video(root / name, frames, fps=6, codec=codec, pix_fmt=pix_fmt)
    assert open_input(src).variable_rate == (kind == "variable")
    out = root / f"out_{kind}_{codec}"
    assert main(["infer", "vis", "--config", str(config), "--weights", str(CHECKPOINTS / "vis_tiny.pth"),
                 "--input", str(src), "--out", str(out), "--no-progress", *fps_args]) == 0
    stem = Path(name).stem
    rendered = open_input(out / f"{stem}.mp4")
    assert (len(list(rendered.frames())), rendered.height, rendered.width, rendered.fps) == (len(frames), h, w, 6)
    results = json.loads((out / f"{stem}.json").read_text())
    assert evaluate_ytvis(paths["valid_ann"], results)["AP50"] >= 0.5


def test_infer_vis_threads_and_bf16_autocast_on_cpu(vis_setup, capsys):
    """``--threads`` and ``--amp`` mean what they mean for ``predict``: bfloat16 autocast runs on the CPU
    too (it used to be ignored there) and changes scores by rounding only."""
    root, config, _, frames_dir, _ = vis_setup
    common = ["infer", "vis", "--config", str(config), "--weights", str(CHECKPOINTS / "vis_tiny.pth"),
              "--no-progress", "--input", str(frames_dir), "--no-render", "--threads", "1"]
    assert main([*common, "--out", str(root / "fp32")]) == 0
    assert main([*common, "--out", str(root / "bf16"), "--amp", "bf16"]) == 0
    assert "device cpu, 1 CPU thread " in capsys.readouterr().out
    fp32, bf16 = (json.loads((root / d / f"{frames_dir.name}.json").read_text()) for d in ("fp32", "bf16"))
    assert len(fp32) == len(bf16) > 0
    scores = lambda rs: sorted(r["score"] for r in rs)  # noqa: E731
    np.testing.assert_allclose(scores(bf16), scores(fp32), atol=0.01)  # 0.0007 seen
    assert scores(bf16) != scores(fp32)  # autocast did run


def shown_instances(results: list[dict], threshold: float) -> dict[int, dict]:
    """instance id -> its best-scoring result at or above ``threshold`` (what the renderer draws)."""
    shown: dict[int, dict] = {}
    for r in results:
        if r["score"] >= threshold and r["score"] > shown.get(r["instance_id"], {"score": -1.0})["score"]:
            shown[r["instance_id"]] = r
    return shown


def label_boxes(frame: np.ndarray, source: np.ndarray, margin: int = 2) -> np.ndarray:
    """Where the renderer put its labels and legend: the bounding boxes (plus ``margin``) of the black
    patches the rendered ``frame`` has and the ``source`` does not (labels move to stay clear of each other)."""
    black = (frame.max(-1) < 40) & (source.max(-1) >= 60)
    boxes = np.zeros(black.shape, bool)
    for ys, xs in find_objects(connected_components(black)[0]):
        boxes[max(ys.start - margin, 0):ys.stop + margin, max(xs.start - margin, 0):xs.stop + margin] = True
    return boxes


def test_infer_vis_mp4_colours_the_ground_truth_objects(vis_setup):
    root, config, _, frames_dir, gt = vis_setup
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(frames_dir.iterdir())]
    src = write_video(root / "clip.mp4", frames, fps=6, options={"crf": "0"})
    out = root / "out_mp4"
    assert main(["infer", "vis", "--config", str(config), "--weights", str(CHECKPOINTS / "vis_tiny.pth"),
                 "--input", str(src), "--out", str(out), "--no-progress"]) == 0
    rendered = open_input(out / "clip.mp4")
    got = list(rendered.frames())
    h, w = frames[0].shape[:2]
    assert (len(got), rendered.height, rendered.width, rendered.fps) == (len(frames), h, w, 6)
    results = json.loads((out / "clip.json").read_text())
    assert {r["video_id"] for r in results} == {1} and all(len(r["segmentations"]) == len(frames) for r in results)
    assert (out / "clip_tracks.png").stat().st_size > 1000

    # every ground-truth object is found: the drawn instance (score >= the default 0.3) overlapping it most
    shown = shown_instances(results, 0.3)
    matches = []
    for obj in gt["annotations"]:
        iou, instance = max((video_iou(obj["segmentations"], r["segmentations"]), i) for i, r in shown.items())
        assert iou >= 0.6 and shown[instance]["category_id"] == obj["category_id"], (obj["category_id"], iou)
        matches.append((obj, instance))
    assert len({i for _, i in matches}) == len(matches)  # one instance per object

    # inside a ground-truth object the pixels are (frame + its instance's colour) / 2; away from every drawn
    # mask and label they are the frame's.  H.264's 4:2:0 chroma blurs colour across edges: erode/dilate by 2
    coloured = []
    for t, source in enumerate(open_input(src).frames()):
        source, frame = source.astype(float), got[t].astype(float)
        masks = {i: mask_util.decode(r["segmentations"][t]).astype(bool) for i, r in shown.items()}
        labels = label_boxes(frame, source)
        outside = ~binary_dilation(np.any(list(masks.values()), axis=0), iterations=2) & ~labels
        assert np.abs(frame[outside] - source[outside]).mean() < 3, t
        for obj, instance in matches:
            if obj["segmentations"][t] is None:
                continue
            others = np.any([m for i, m in masks.items() if i != instance] + [np.zeros((h, w), bool)], axis=0)
            region = binary_erosion(mask_util.decode(obj["segmentations"][t]).astype(bool), iterations=2)
            region &= ~labels & ~binary_dilation(others, iterations=2)
            if region.sum() < 20:
                continue
            expected = (source[region] + np.array(instance_colour(instance), float)) / 2
            closer = np.linalg.norm(frame[region] - expected, axis=1) < np.linalg.norm(frame[region] - source[region],
                                                                                         axis=1)
            coloured.append(float(closer.mean()))
    assert len(coloured) >= len(frames) and min(coloured) >= 0.8, coloured


@pytest.fixture(scope="module")
def ava_setup(tmp_path_factory):
    """One held-out synthetic video (8 s, 2-3 actors) through ``infer ava`` on its frame folder, rendered 4x:
    2-pixel box lines keep their colour through H.264's 4:2:0 chroma (1-pixel lines at 96 x 160 do not)."""
    from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava

    root = tmp_path_factory.mktemp("infer_ava_trained")
    generate_synth_ava(root / "ava", SynthAvaConfig(num_train_videos=0, num_val_videos=1, seconds=8))
    dataset = yaml.safe_load((root / "ava" / "dataset.yaml").read_text())
    dataset["data"]["num_workers"] = 0
    config = trained_config("ava", root, dataset)
    frames_dir = root / "ava" / "frames" / "synth_val_000"
    fps = load_config(config).data.ava_fps
    assert main(["infer", "ava", "--config", str(config), "--weights", str(CHECKPOINTS / "ava_tiny.pth"),
                 "--input", str(frames_dir), "--fps", str(fps), "--out", str(root / "out"), "--no-progress",
                 "--render-upscale", str(UPSCALE)]) == 0
    return root, config, frames_dir, root / "out" / frames_dir.name


def _gt_boxes(csv: Path) -> dict[tuple[int, int], list[float]]:
    """(second, person) -> normalised box of the ground-truth CSV."""
    boxes = {}
    for line in csv.read_text().splitlines():
        _, second, *box, _, person = line.split(",")
        boxes[int(second), int(person)] = [float(v) for v in box]
    return boxes


def test_infer_ava_frame_folder_equals_predict_and_beats_random(ava_setup):
    from seqformer.engine.task import get_task
    from seqformer.evaluation.ava_eval import evaluate_ava
    from seqformer.inference.ava import write_rows
    from seqformer.weight_files import load_model_weights

    root, config, frames_dir, outputs = ava_setup
    cfg = load_config(config)
    d = cfg.data
    task = get_task("ava")
    torch.manual_seed(0)
    untrained = task.build_model(cfg).eval()
    model = task.build_model(cfg).eval()
    load_model_weights(model, CHECKPOINTS / "ava_tiny.pth")
    rows = task.predict(model, cfg, torch.device("cpu"), progress=False)
    lines = outputs.with_suffix(".csv").read_text().splitlines()
    assert sorted({int(line.split(",")[1]) for line in lines}) == list(range(8))  # a keyframe every second
    # the folder starts at second `start_second` of the dataset's timeline; predict scored its annotated keyframes
    keyframes = {(r[0], r[1]) for r in rows}
    infer_rows = [(v, int(s) + d.ava_start_second, *map(float, rest[:4]), int(rest[4]), float(rest[5]))
                  for v, s, *rest in (line.split(",") for line in lines)
                  if (v, int(s) + d.ava_start_second) in keyframes]
    assert len(infer_rows) == len(rows)
    for a, b in zip(sorted(infer_rows), sorted(rows)):
        assert a[:2] == b[:2] and a[6] == b[6]
        np.testing.assert_allclose(a[2:6], b[2:6], atol=6e-4)  # the CSV keeps 3 decimals
        assert a[7] == pytest.approx(b[7], abs=5e-6)  # 6 decimals, and predict runs clips in batches of 2
    write_rows(root / "predict.csv", rows)
    write_rows(root / "infer.csv", infer_rows)
    write_rows(root / "random.csv", task.predict(untrained, cfg, torch.device("cpu"), progress=False))
    scores = {name: evaluate_ava(d.ava_labelmap, d.ava_val_csv, root / f"{name}.csv", d.ava_exclusions)["mAP"]
              for name in ("predict", "random")}
    # the infer CSV (seconds moved onto the dataset's timeline) through the command line
    assert main(["evaluate", "ava", "--labelmap", str(d.ava_labelmap), "--groundtruth", str(d.ava_val_csv),
                 "--detections", str(root / "infer.csv"),
                 *(["--exclusions", str(d.ava_exclusions)] if d.ava_exclusions else []),
                 "--json", str(root / "infer_eval.json"), "--no-plot"]) == 0
    scores["infer"] = json.loads((root / "infer_eval.json").read_text())["mAP"]
    assert scores["infer"] == pytest.approx(scores["predict"], abs=1e-4)
    assert scores["infer"] >= 0.6 and scores["infer"] >= scores["random"] + 0.4, scores  # measured 0.96 vs 0.00
    rendered = open_input(outputs.with_suffix(".mp4"))
    assert (len(list(rendered.frames())), rendered.height, rendered.width, rendered.fps) == \
        (8 * d.ava_fps, UPSCALE * 96, UPSCALE * 160, d.ava_fps)
    assert outputs.with_name(f"{frames_dir.name}_timeline.png").stat().st_size > 1000


def box_iou(a, b) -> float:
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def outline_cover(frame: np.ndarray, source: np.ndarray, box: np.ndarray, colour: tuple, tol: int = 3) -> float:
    """The smallest share, over the left, right and bottom sides of pixel ``box``, of positions where a pixel
    within ``tol`` of the side is nearer ``colour`` than the ``source`` pixel in the rendered ``frame`` (1: a
    complete outline).  The top side carries the black label, which H.264's 4:2:0 chroma bleeds into the line."""
    x1, y1, x2, y2 = box.round().astype(int)
    x0, y0 = max(x1 - tol, 0), max(y1 - tol, 0)  # work on the box's neighbourhood only
    frame, source = frame[y0:y2 + tol + 1, x0:x2 + tol + 1], source[y0:y2 + tol + 1, x0:x2 + tol + 1]
    x1, x2, y1, y2 = x1 - x0, x2 - x0, y1 - y0, y2 - y0
    to_colour = np.linalg.norm(frame - colour, axis=2)
    drawn = (to_colour < 100) & (to_colour < np.linalg.norm(frame - source, axis=2))  # a thin line's colour blurs
    sides = [drawn[y1 + tol:y2 - tol, max(x1 - tol, 0):x1 + tol + 1].any(1),
             drawn[y1 + tol:y2 - tol, x2 - tol:x2 + tol + 1].any(1),
             drawn[y2 - tol:y2 + tol + 1, x1 + tol:x2 - tol].any(0)]
    return min(float(side.mean()) for side in sides)


def test_infer_ava_draws_a_box_on_each_ground_truth_actor(ava_setup):
    _, config, frames_dir, outputs = ava_setup
    d = load_config(config).data
    threshold = 0.3  # the default: actors with an action scoring at least this are drawn
    got = list(open_input(outputs.with_suffix(".mp4")).frames())
    source = list(open_input(frames_dir, fps=d.ava_fps).frames())
    h, w = got[0].shape[:2]
    detections: dict[tuple[int, tuple], float] = {}  # (second, box) -> the query's best action score
    for line in outputs.with_suffix(".csv").read_text().splitlines():
        _, second, *box, _, score = line.split(",")
        key = (int(second), tuple(map(float, box)))
        detections[key] = max(detections.get(key, 0.0), float(score))
    palette = [np.array(instance_colour(i), float) for i in range(1, 25)]
    covers, actors = [], _gt_boxes(Path(d.ava_val_csv))
    for (second, person), gt_box in actors.items():
        second -= int(d.ava_start_second)  # seconds of the input
        found = [(score, box) for (s, box), score in detections.items() if s == second and box_iou(box, gt_box) >= 0.5]
        assert found, (second, person)  # every actor is found, whatever the score
        drawn = [(score, box) for score, box in found if score >= threshold]
        if not drawn:
            continue
        slot = int(round(second * d.ava_fps))  # the keyframe's frame: the box drawn is the keyframe box
        frame = got[slot].astype(float)
        src = np.asarray(Image.fromarray(source[slot]).resize((w, h), Image.BILINEAR)).astype(float)
        pixel_box = np.array(max(drawn)[1]) * [w, h, w, h]
        covers.append(max(outline_cover(frame, src, pixel_box, colour) for colour in palette))
        shifted = pixel_box + 0.3 * (pixel_box[2] - pixel_box[0]) * np.array([1, 0, 1, 0])  # not where it is drawn
        assert max(outline_cover(frame, src, shifted, colour) for colour in palette) < 0.5
    # the confident ones (4 of the 6 actors with the committed checkpoint) are drawn where the model put them
    assert len(covers) >= len(actors) // 2 and min(covers) >= 0.7, covers
