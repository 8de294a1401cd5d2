"""Pictures: one stable id per predicted VIS track, the threshold and a 'nothing passes' note in the
legend, upscaling; the AVA keyframe picture groups rows into actors."""
from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from seqformer.utils.ava_picture import group_actors
from seqformer.utils.visualize import PALETTE, legend_lines, predicted_instances, render_vis_gif


def rle(mask: np.ndarray) -> dict:
    r = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode()}


def make_video(tmp_path, frames=3, h=16, w=24):
    names = []
    for t in range(frames):
        (tmp_path / "v").mkdir(exist_ok=True)
        Image.new("RGB", (w, h), (100, 100, 100)).save(tmp_path / "v" / f"{t}.png")
        names.append(f"v/{t}.png")
    return {"id": 7, "file_names": names, "height": h, "width": w}


def test_one_id_per_track_stable_across_thresholds(tmp_path):
    left, right = np.zeros((16, 24), bool), np.zeros((16, 24), bool)
    left[2:10, 1:8], right[4:12, 14:22] = True, True
    track_a, track_b = [rle(left)] * 3, [rle(right), None, rle(right)]
    results = [{"video_id": 7, "score": 0.2, "category_id": 2, "segmentations": track_a},  # same track, 2nd class
               {"video_id": 7, "score": 0.9, "category_id": 1, "segmentations": track_a},
               {"video_id": 7, "score": 0.5, "category_id": 3, "segmentations": track_b},
               {"video_id": 8, "score": 0.99, "category_id": 1, "segmentations": track_a}]
    inst = predicted_instances(results, 7)
    assert [(i["id"], i["category_id"], i["score"]) for i in inst] == [(1, 1, 0.9), (2, 3, 0.5)]
    names = {1: "disc", 3: "triangle"}
    assert [t for t, _ in legend_lines("v", inst, 0.3, names)] == [
        "v: predictions scoring >= 0.30", "#1 disc 0.90", "#2 triangle 0.50"]
    assert [t for t, _ in legend_lines("v", inst, 0.7, names)] == ["v: predictions scoring >= 0.70", "#1 disc 0.90"]
    assert legend_lines("v", inst, 0.95, names)[-1][0] == "nothing passes the threshold (best score 0.90)"
    assert legend_lines("v", [], 0.3, names)[-1][0] == "nothing passes the threshold (no predictions)"

    video = make_video(tmp_path)
    out = render_vis_gif(tmp_path, video, results, names, tmp_path / "p.gif", score_threshold=0.3, scale=3)
    with Image.open(out) as gif:
        assert gif.n_frames == 3
        gif.seek(1)
        frame = np.asarray(gif.convert("RGB")).astype(int)
    assert frame.shape[1] == 72 and frame.shape[0] > 48  # upscaled 3x, legend below
    grey = np.array([100, 100, 100])
    # track #1's colour is blended into its (upscaled) mask; track #2 is absent in frame 1
    blended = 0.5 * grey + 0.5 * np.array(PALETTE[1])
    assert np.abs(frame[3 * 3, 3 * 2] - blended).max() <= 12
    assert np.abs(frame[3 * 11, 3 * 20] - grey).max() <= 12


def test_ava_rows_sharing_a_box_are_one_actor():
    rows = [("v", 61, 0.1, 0.1, 0.5, 0.5, 1, 0.9), ("v", 61, 0.1, 0.1, 0.5, 0.5, 3, 0.6),
            ("v", 61, 0.1, 0.1, 0.5, 0.5, 5, 0.2), ("v", 61, 0.6, 0.2, 0.9, 0.8, 9, 0.95),
            ("v", 63, 0.6, 0.2, 0.9, 0.8, 9, 0.1)]
    actors = group_actors(rows, 0.5)
    assert actors == {("v", 61): [((0.6, 0.2, 0.9, 0.8), [(9, 0.95)]), ((0.1, 0.1, 0.5, 0.5), [(1, 0.9), (3, 0.6)])]}


def test_labels_do_not_cover_the_legend_or_each_other():
    """Two objects touching the top edge of a small frame: their tags and the legend get separate rows."""
    from seqformer.utils.render import Drawable, render_frame

    frame = np.full((64, 96, 3), 128, np.uint8)
    a, b = np.zeros((64, 96), bool), np.zeros((64, 96), bool)
    a[0:30, 0:40], b[2:30, 10:60] = True, True
    out = render_frame(frame, [Drawable(1, "#1 ring 0.90", mask=a), Drawable(2, "#2 disc 0.80", mask=b)],
                       legend="score >= 0.30")
    boxed = ((out == 0).all(-1).sum(1) >= 6)  # rows crossed by a label box (black pixels)
    legend_rows = int(np.argmin(boxed))  # the legend box sits in the corner: rows 0 .. legend_rows-1
    assert legend_rows >= 8 and boxed.sum() == 3 * legend_rows  # three one-line boxes, no two sharing a row
