"""``seqformer infer vis|ava`` on real video files written with PyAV: decoding, rendering, round-trips."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import yaml
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from seqformer.cli import main
from seqformer.config import load_config
from seqformer.data.video_input import InputVideoError, expand_inputs, open_input
from seqformer.evaluation.ytvis_eval import evaluate_ytvis
from seqformer.utils.render import Drawable, VideoWriter, instance_colour, render_frame

from helpers import build_model_for


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264", pix_fmt: str = "yuv420p",
                times: list[float] | None = None, rotation: int = 0, options: dict | None = None) -> Path:
    """Encode RGB frames; ``times`` (seconds) gives a variable frame rate."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if times is not None:
                vf.pts, vf.time_base = round(times[i] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    return path


def pattern_frames(n: int = 6, h: int = 32, w: int = 48) -> list[np.ndarray]:
    """Frames whose brightness encodes their index and a block marks the top-left (orientation)."""
    frames = []
    for t in range(n):
        f = np.full((h, w, 3), 30 + 30 * t, np.uint8)
        f[:8, :12] = (250, 20, 20)
        frames.append(f)
    return frames


@pytest.mark.parametrize("name,codec,pix_fmt", [("a.mp4", "libx264", "yuv420p"), ("a.webm", "libvpx-vp9", "yuv420p"),
                                                ("a.avi", "mjpeg", "yuvj420p")])
def test_containers_decode_to_the_source_frames(tmp_path, name, codec, pix_fmt):
    src = pattern_frames()
    video = open_input(write_video(tmp_path / name, src, codec=codec, pix_fmt=pix_fmt))
    got = list(video.frames())
    assert (video.width, video.height, video.fps) == (48, 32, 10)
    assert len(got) == len(src) and not video.counts.warnings(video.fps)
    for a, b in zip(got, src):
        assert np.abs(a.astype(int) - b).mean() < 6


def test_variable_frame_rate_is_resampled_and_counted(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.5, 0.6, 0.9]  # gaps and a burst
    src = pattern_frames(len(times))
    video = open_input(write_video(tmp_path / "vfr.mp4", src, times=times), fps=10)
    got = list(video.frames())
    assert video.variable_rate
    # slot k shows the last frame before (k + 0.5) / 10 s (ffmpeg's fps filter rule); the last frame
    # lasts as long as the gap before it (0.3 s), so it fills slots 9-11
    expected = [0, 1, 2, 2, 3, 4, 5, 5, 5, 6, 6, 6]
    assert len(got) == len(expected)
    for k, i in enumerate(expected):
        assert abs(float(got[k][20:, 20:].mean()) - (30 + 30 * i)) < 6, k
    assert "resampled 7 source frames to 12" in video.counts.warnings(10)[0]


def test_rotation_metadata_is_applied(tmp_path):
    src = pattern_frames(3)
    video = open_input(write_video(tmp_path / "rot.mp4", src, rotation=90))
    got = next(iter(video.frames()))
    assert (video.height, video.width) == (48, 32) and video.rotation == 90
    assert np.abs(got.astype(int) - np.rot90(src[0])).mean() < 6  # PyAV: counter-clockwise degrees


def test_bad_inputs_give_one_error_line(tmp_path, capsys):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(InputVideoError, match="notes.mp4: not a video"):
        open_input(tmp_path / "notes.mp4")
    with av.open(str(tmp_path / "sound.wav"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(InputVideoError, match="no video stream"):
        open_input(tmp_path / "sound.wav")
    with av.open(str(tmp_path / "empty.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = 32, 48, "yuv420p"
    with pytest.raises(InputVideoError, match="empty.mp4"):
        open_input(tmp_path / "empty.mp4")
    with pytest.raises(InputVideoError, match="matches nothing"):
        expand_inputs([str(tmp_path / "*.mkv")])
    # through the command line: one `error:` line, exit 1, before any model is built
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    for argv, message in [(["--input", str(tmp_path / "notes.mp4"), "--out", str(tmp_path / "o")], "not a video"),
                          (["--input", str(write_video(tmp_path / "ok.mp4", pattern_frames(2))), "--out", str(blocked)],
                           "not a folder")]:
        rc = main(["infer", "vis", "--config", "unused.yaml", "--weights", "unused.pth", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and err[0].startswith("error:") and message in err[0], err


def test_corrupt_frames_are_skipped_and_counted_or_stop(tmp_path):
    path = write_video(tmp_path / "c.avi", pattern_frames(8), codec="mjpeg", pix_fmt="yuvj420p")
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG starts
    data[starts[5]:starts[6] - 8] = np.random.default_rng(0).integers(0, 255, starts[6] - 8 - starts[5],
                                                                        dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    video = open_input(path)
    got = list(video.frames())
    assert video.counts.decode_errors == 1 and len(got) == 8  # the timeline holds frame 4 in slot 5
    assert abs(float(got[5][20:, 20:].mean()) - float(got[4][20:, 20:].mean())) < 1
    with pytest.raises(InputVideoError, match="decode error after frame 5"):
        list(open_input(path, on_decode_error="stop").frames())


def test_odd_sized_grayscale_and_alpha_frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (35, 51), np.uint8), "L").save(folder / "img_2.png")
    Image.fromarray(rng.integers(0, 255, (35, 51, 4), np.uint8), "RGBA").save(folder / "img_10.png")
    video = open_input(folder, fps=5)
    got = list(video.frames())
    assert [f.shape for f in got] == [(35, 51, 3)] * 2 and video.counts.alpha_dropped == 1
    assert (got[0][..., 0] == got[0][..., 1]).all()  # grey stays grey; img_2 sorts before img_10
    with VideoWriter(tmp_path / "odd.mp4", 5, 35, 51) as writer:
        for f in got:
            writer.write(f)
    check = open_input(tmp_path / "odd.mp4")
    assert (check.height, check.width, len(list(check.frames()))) == (36, 52, 2)


def test_renderer_colours_the_mask_and_nothing_else(tmp_path):
    frame = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[30:50, 40:70] = True
    out = render_frame(frame, [Drawable(3, "#3 disc 0.90", mask=mask)], alpha=0.5).astype(int)
    colour = np.array(instance_colour(3))
    assert np.abs(out[35:50, 40:70] - (100 + colour) / 2).max() <= 1
    # untouched: above the label (a 12-pixel band just above the mask), left of the mask, below it
    assert (out[:17] == 100).all() and (out[30:50, :40] == 100).all() and (out[50:] == 100).all()
    assert (out[18:30] != 100).any()  # the label
    assert instance_colour(3) != instance_colour(4) and instance_colour(40) == instance_colour(40)
    big = render_frame(frame, [Drawable(3, "#3", mask=mask)], scale=2.0)
    assert big.shape == (120, 160, 3) and np.abs(big[80:96, 90:136].astype(int) - (100 + colour) / 2).max() <= 1
    # an interrupted write leaves no file at the final name (and keeps an older one intact)
    final = tmp_path / "v.mp4"
    final.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), VideoWriter(final, 10, 60, 80) as writer:
        writer.write(frame)
        raise KeyboardInterrupt
    assert final.read_bytes() == b"old" and list(tmp_path.iterdir()) == [final]


TINY_VIS = {"model": {"num_queries": 8, "enc_layers": 1, "dec_layers": 2, "hidden_dim": 32, "dim_feedforward": 64,
                      "nheads": 4, "num_classes": 6, "mask_channels": 8},
            "data": {"val_short_side": 48, "val_img_dir": "valid/JPEGImages",
                     "val_ann": "annotations/instances_valid_sub.json"},
            "eval": {"max_frames_per_clip": 4, "clip_overlap": 1}}


@pytest.fixture(scope="module")
def vis_setup(tmp_path_factory, synth_vis):
    root = tmp_path_factory.mktemp("infer_vis")
    cfg_data = json.loads(json.dumps(TINY_VIS))
    cfg_data["data"]["ytvis_path"] = str(synth_vis["root"])
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg_data))
    torch.manual_seed(0)
    model = build_model_for(load_config(root / "tiny.yaml"))
    with torch.no_grad():  # spread the scores and make masks non-trivial (plumbing, not accuracy)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.detr.class_embed[-1].bias.add_(4.0)
    torch.save({"model": model.state_dict()}, root / "w.pth")
    gt = json.loads(Path(synth_vis["valid_ann"]).read_text())
    video = gt["videos"][0]
    one = {**gt, "videos": [{**video, "id": 1}],
           "annotations": [{**a, "id": i + 1, "video_id": 1} for i, a in enumerate(gt["annotations"])
                           if a["video_id"] == video["id"]]}
    (root / "gt_one.json").write_text(json.dumps(one))
    frames_dir = Path(synth_vis["valid_images"]) / Path(video["file_names"][0]).parent
    return root, frames_dir, video


def test_infer_vis_frame_folder_equals_predict_and_evaluates(vis_setup, synth_vis):
    root, frames_dir, video = vis_setup
    common = ["--config", str(root / "tiny.yaml"), "--weights", str(root / "w.pth"), "--no-progress"]
    assert main(["infer", "vis", *common, "--input", str(frames_dir), "--out", str(root / "out"), "--no-render"]) == 0
    stem = frames_dir.name
    infer_results = json.loads((root / "out" / f"{stem}.json").read_text())
    entry = json.loads((root / "out" / f"{stem}_video.json").read_text())["videos"][0]
    assert (entry["length"], entry["height"], entry["width"]) == (video["length"], video["height"], video["width"])
    assert main(["predict", "vis", "--config", str(root / "tiny.yaml"), "--weights", str(root / "w.pth"),
                 "--images", str(synth_vis["valid_images"]), "--annotations", str(root / "gt_one.json"),
                 "--out", str(root / "predict.json")]) == 0
    predicted = json.loads((root / "predict.json").read_text())
    key = lambda r: (r["category_id"], round(r["score"], 6))  # noqa: E731
    assert sorted(map(key, infer_results)) == sorted(map(key, predicted))
    for a, b in zip(sorted(infer_results, key=key), sorted(predicted, key=key)):
        assert a["segmentations"] == b["segmentations"]
    infer_stats = evaluate_ytvis(root / "gt_one.json", infer_results)
    assert infer_stats == evaluate_ytvis(root / "gt_one.json", predicted)
    # the minimal annotation file written next to the results is accepted by `evaluate vis`
    assert main(["evaluate", "vis", "--groundtruth", str(root / "out" / f"{stem}_video.json"),
                 "--results", str(root / "out" / f"{stem}.json")]) == 0


def test_infer_vis_threads_and_bf16_autocast_on_cpu(vis_setup, capsys):
    """``--threads`` and ``--amp`` mean what they mean for ``predict``: bfloat16 autocast runs on the CPU
    too (it used to be ignored there) and changes scores by rounding only."""
    root, frames_dir, _ = vis_setup
    common = ["infer", "vis", "--config", str(root / "tiny.yaml"), "--weights", str(root / "w.pth"), "--no-progress",
              "--input", str(frames_dir), "--no-render", "--threads", "1"]
    assert main([*common, "--out", str(root / "fp32")]) == 0
    assert main([*common, "--out", str(root / "bf16"), "--amp", "bf16"]) == 0
    assert "device cpu, 1 CPU thread " in capsys.readouterr().out
    fp32, bf16 = (json.loads((root / d / f"{frames_dir.name}.json").read_text()) for d in ("fp32", "bf16"))
    assert len(fp32) == len(bf16) > 0
    scores = lambda rs: sorted(r["score"] for r in rs)  # noqa: E731
    np.testing.assert_allclose(scores(bf16), scores(fp32), atol=0.05)  # random weights: 0.025 seen
    assert scores(bf16) != scores(fp32)  # autocast did run


def test_infer_vis_mp4_renders_instances_in_their_colours(vis_setup):
    root, frames_dir, video = vis_setup
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(frames_dir.iterdir())]
    src = write_video(root / "clip.mp4", frames, fps=6, options={"crf": "0"})
    out = root / "out_mp4"
    assert main(["infer", "vis", "--config", str(root / "tiny.yaml"), "--weights", str(root / "w.pth"),
                 "--input", str(src), "--out", str(out), "--score-threshold", "0", "--no-progress"]) == 0
    rendered = open_input(out / "clip.mp4")
    got = list(rendered.frames())
    assert (len(got), rendered.height, rendered.width, rendered.fps) == (len(frames), 64, 96, 6)
    results = json.loads((out / "clip.json").read_text())
    assert {r["video_id"] for r in results} == {1} and all(len(r["segmentations"]) == len(frames) for r in results)
    assert (out / "clip_tracks.png").stat().st_size > 1000
    # the top instance's mask carries its colour and nothing else does: render it alone from the JSON
    # (random weights give overlapping masks) and compare with (input + colour) / 2
    from seqformer.inference.video_vis import render_video

    best = max((r for r in results if r["segmentations"][0] is not None), key=lambda r: r["score"])
    render_video(open_input(src), results, {}, root / "one.mp4", best["score"], progress=False)
    got = list(open_input(root / "one.mp4").frames())
    colour = np.array(instance_colour(best["instance_id"]), float)
    checked = 0
    for t, source in enumerate(open_input(src).frames()):
        mask = mask_util.decode(best["segmentations"][t]).astype(bool)
        if mask.sum() < 20:
            continue
        ys, xs = np.nonzero(mask)
        inside = binary_erosion(mask, iterations=2)  # 4:2:0 chroma blurs colour across the mask's edge
        inside[:ys.min() + 14] = False  # the label sits on the mask's top edge
        inside &= ~binary_dilation(got[t].max(-1) < 40, iterations=3)  # or lower, off the legend: its black box
        if inside.sum() < 10:
            continue
        near = np.zeros_like(mask)
        near[max(ys.min() - 14, 0):ys.max() + 3, max(xs.min() - 2, 0):xs.max() + 3] = True
        outside = ~near
        outside[:14] = False  # the legend
        diff_in = np.abs(got[t][inside] - (source[inside].astype(float) + colour) / 2).mean()
        diff_out = np.abs(got[t][outside].astype(float) - source[outside]).mean()
        assert diff_in < 10 and diff_out < 3, (t, diff_in, diff_out)
        checked += 1
    assert checked > 0


def test_infer_ava_frame_folder_equals_predict(tmp_path):
    from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava
    from seqformer.engine.task import get_task
    from seqformer.evaluation.ava_eval import evaluate_ava
    from seqformer.inference.ava import write_rows

    generate_synth_ava(tmp_path / "ava", SynthAvaConfig(num_train_videos=1, num_val_videos=1, seconds=4))
    cfg_data = yaml.safe_load((Path(__file__).parents[2] / "configs" / "ava" / "tiny_synth.yaml").read_text())
    for section, values in yaml.safe_load((tmp_path / "ava" / "dataset.yaml").read_text()).items():
        cfg_data.setdefault(section, {}).update(values)
    cfg_data["model"].update(hidden_dim=32, dim_feedforward=64, dec_layers=2)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg_data))
    cfg = load_config(tmp_path / "tiny.yaml")
    torch.manual_seed(0)
    task = get_task("ava")
    model = task.build_model(cfg).eval()
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    rows = task.predict(model, cfg, torch.device("cpu"), progress=False)
    frames_dir = next(p for p in (tmp_path / "ava" / "frames").iterdir() if p.name.startswith("synth_val"))
    out = tmp_path / "out"
    assert main(["infer", "ava", "--config", str(tmp_path / "tiny.yaml"), "--weights", str(tmp_path / "w.pth"),
                 "--input", str(frames_dir), "--fps", str(cfg.data.ava_fps), "--out", str(out), "--no-progress",
                 "--score-threshold", "0"]) == 0
    lines = (out / f"{frames_dir.name}.csv").read_text().splitlines()
    seconds = sorted({int(line.split(",")[1]) for line in lines})
    assert seconds == [0, 1, 2, 3]  # a keyframe every second from the start of the input
    # the folder starts at second `start_second` of the dataset's timeline; predict scored its annotated keyframes
    shifted = [line.split(",") for line in lines]
    keyframes = {(r[0], r[1]) for r in rows}
    infer_rows = [(v, int(s) + cfg.data.ava_start_second, *map(float, rest[:4]), int(rest[4]), float(rest[5]))
                  for v, s, *rest in shifted if (v, int(s) + cfg.data.ava_start_second) in keyframes]
    assert len(infer_rows) == len(rows)
    for a, b in zip(sorted(infer_rows), sorted(rows)):
        assert a[:2] == b[:2] and a[6] == b[6]
        np.testing.assert_allclose(a[2:6], b[2:6], atol=6e-4)  # the CSV keeps 3 decimals
        assert a[7] == pytest.approx(b[7], abs=1e-6)
    write_rows(tmp_path / "predict.csv", rows)
    write_rows(tmp_path / "infer.csv", infer_rows)
    d = cfg.data
    assert evaluate_ava(d.ava_labelmap, d.ava_val_csv, tmp_path / "infer.csv", d.ava_exclusions)["mAP"] == \
        pytest.approx(evaluate_ava(d.ava_labelmap, d.ava_val_csv, tmp_path / "predict.csv", d.ava_exclusions)["mAP"],
                      abs=1e-4)
    rendered = open_input(out / f"{frames_dir.name}.mp4")
    assert (len(list(rendered.frames())), rendered.height, rendered.width, rendered.fps) == \
        (4 * d.ava_fps, 96, 160, d.ava_fps)
    assert (out / f"{frames_dir.name}_timeline.png").stat().st_size > 1000
