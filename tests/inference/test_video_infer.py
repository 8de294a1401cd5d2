"""The inputs and outputs of ``seqformer infer``: real video files written with PyAV (decoding, bad input) and
the renderer.  The end-to-end runs with trained checkpoints are in ``test_infer_trained.py``."""
from __future__ import annotations


import av
import numpy as np
import pytest
from PIL import Image

from seqformer.cli import main
from seqformer.data.video_input import InputVideoError, expand_inputs, open_input
from seqformer.utils.render import Drawable, VideoWriter, instance_colour, render_frame

from helpers import write_video


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
