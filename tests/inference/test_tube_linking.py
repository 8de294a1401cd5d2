"""Tubelet linking on hand cases: one actor across overlapping clips, two actors, labels, extents, frame NMS."""
from __future__ import annotations

import numpy as np
import pytest

from seqformer.inference.jhmdb import clip_centres
from seqformer.inference.tube_linking import Tubelet, frame_detections, link_tubelets, make_tubelet


def _tubelet(label, score, first, boxes, presence=None):
    boxes = np.asarray(boxes, np.float64)
    n = len(boxes)
    return Tubelet(label, score, np.arange(first, first + n), boxes, np.ones(n) if presence is None else np.asarray(presence, float))


def test_make_tubelet_averages_repeats_and_interpolates_strided_frames():
    frame_ids = np.array([1, 1, 3, 5])  # edge repeat at the start, stride 2
    boxes = np.array([[0, 0, 10, 10], [2, 2, 12, 12], [4, 0, 14, 10], [8, 0, 18, 10]], float)
    t = make_tubelet(2, 0.7, frame_ids, boxes, np.array([1.0, 0.0, 1.0, 0.0]))
    assert t.frames.tolist() == [1, 2, 3, 4, 5] and t.label == 2 and t.score == 0.7
    np.testing.assert_allclose(t.boxes[0], [1, 1, 11, 11])  # mean of the repeated frame
    np.testing.assert_allclose(t.boxes[1], [2.5, 0.5, 12.5, 10.5])  # halfway between frames 1 and 3
    np.testing.assert_allclose(t.boxes[3], [6, 0, 16, 10])
    np.testing.assert_allclose(t.presence, [0.5, 0.75, 1.0, 0.5, 0.0])


def test_one_actor_over_overlapping_clips_is_one_tube():
    a = _tubelet(0, 0.8, 1, [[0, 0, 10, 10]] * 4)
    b = _tubelet(0, 0.6, 3, [[2, 0, 12, 10]] * 4)  # shares frames 3, 4 (IoU 2/3)
    c = _tubelet(0, 0.4, 5, [[2, 0, 12, 10]] * 4)
    tubes = link_tubelets([[a], [b], [c]], link_iou=0.5)
    assert len(tubes) == 1
    tube = tubes[0]
    assert tube.frames.tolist() == list(range(1, 9)) and tube.score == pytest.approx(0.6)
    np.testing.assert_allclose(tube.boxes[2], [1, 0, 11, 10])  # frame 3: mean of a and b
    np.testing.assert_allclose(tube.boxes[0], [0, 0, 10, 10])
    assert len(link_tubelets([[a], [b], [c]], link_iou=0.7)) == 2  # IoU 2/3 < 0.7: b starts a new tube, c joins it


def test_two_actors_and_two_labels_stay_apart():
    left, right = [[0, 0, 10, 10]] * 4, [[50, 0, 60, 10]] * 4
    clip1 = [_tubelet(0, 0.9, 1, left), _tubelet(0, 0.8, 1, right), _tubelet(1, 0.3, 1, left)]
    clip2 = [_tubelet(0, 0.7, 3, right), _tubelet(0, 0.5, 3, left), _tubelet(1, 0.2, 3, left)]
    tubes = link_tubelets([clip1, clip2], link_iou=0.3)
    summary = sorted((t.label, t.boxes[0, 0], t.frames[0], t.frames[-1]) for t in tubes)
    assert summary == [(0, 0.0, 1, 6), (0, 50.0, 1, 6), (1, 0.0, 1, 6)]


def test_a_tubelet_extends_one_tube_only_and_only_from_the_previous_clip():
    box = [[0, 0, 10, 10]] * 4
    clip1 = [_tubelet(0, 0.9, 1, box)]
    clip2 = [_tubelet(0, 0.8, 3, box), _tubelet(0, 0.7, 3, box)]  # a duplicate: the second starts a new tube
    assert sorted(len(t.frames) for t in link_tubelets([clip1, clip2])) == [4, 6]
    gap = [_tubelet(0, 0.9, 1, box)], [], [_tubelet(0, 0.9, 3, box)]  # the tube died in the empty clip
    assert len(link_tubelets(list(gap))) == 2


def test_presence_trims_the_tube_ends():
    t = _tubelet(0, 0.5, 1, [[0, 0, 10, 10]] * 6, presence=[0.1, 0.2, 0.9, 0.4, 0.8, 0.3])
    tube, = link_tubelets([[t]], presence_threshold=0.5)
    assert tube.frames.tolist() == [3, 4, 5]  # consecutive: frame 4 stays inside the extent
    assert link_tubelets([[t]], presence_threshold=0.95) == []


def test_frame_detections_score_and_nms():
    box = [[0, 0, 10, 10]] * 2
    keep = _tubelet(0, 0.8, 1, box, presence=[1.0, 0.6])
    duplicate = _tubelet(0, 0.3, 1, [[1, 0, 11, 10]] * 2)
    other_label = _tubelet(1, 0.4, 1, box)
    tubes = link_tubelets([[keep, duplicate, other_label]], presence_threshold=0.0)
    frames, boxes, labels, scores = frame_detections(tubes, frame_nms=0.6)
    assert frames.tolist() == [1, 1, 2, 2]
    assert labels.tolist() == [0, 1, 0, 1] and scores.tolist() == pytest.approx([0.8, 0.4, 0.48, 0.4])
    assert len(frame_detections(tubes, frame_nms=1.0)[0]) == 6  # no NMS: the duplicate stays


def test_clip_centres_cover_every_frame():
    assert clip_centres(20, 8, 1) == [0, 4, 8, 12, 16]  # span 8, step 4; the clip at 16 reaches frame 19
    assert clip_centres(21, 8, 1) == [0, 4, 8, 12, 16, 20]
    assert clip_centres(10, 4, 2, step=3) == [0, 3, 6, 9]
    for n in (9, 17, 40):
        for centres in (clip_centres(n, 7, 1), clip_centres(n, 8, 2)):
            covered = {c + o for c in centres for o in range(-8, 8)}
            assert set(range(n)) <= covered
