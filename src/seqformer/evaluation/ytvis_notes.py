"""What the YouTube-VIS evaluator accepted but the user should hear about: one line per kind, with counts.

The official ``ytvoseval`` scores these inputs without a word (an empty file, an infinite score, a
``bboxes``/``areas`` entry that disagrees with the segmentation); the numbers stay the official ones,
the log says how many entries were concerned.  Messages go to the evaluator's logger.
"""
from __future__ import annotations

import logging

import numpy as np

from seqformer.evaluation.ytvis_inputs import GroundTruth

logger = logging.getLogger("seqformer.evaluation.ytvis_eval")


def warn_about_inputs(gt: GroundTruth, scores: np.ndarray, skipped_unknown_category: int, results_name: str) -> None:
    """Log one warning per kind of silently accepted input (``scores``: every evaluated result's)."""
    if not gt.ann_ids:
        logger.warning("groundtruth %s has no annotations: every number is -1", gt.name)
    if len(scores) == 0 and skipped_unknown_category == 0:
        logger.warning("results %s is empty: AP and AR are 0 where the groundtruth has instances", results_name)
    infinite = int(np.isinf(scores).sum())
    if infinite:
        logger.warning("%d result(s) in %s have score Infinity or -Infinity; they are ranked as such "
                       "(as in the official evaluator)", infinite, results_name)
    for key, count in gt.null_mismatch.items():
        if count:
            effect = "the segmentations are what is matched" if key == "bboxes" else \
                "the area ranges average the non-null areas (official)"
            logger.warning("groundtruth %s: %d annotation frame(s) have '%s' null where the segmentation is "
                           "present or the other way round; %s", gt.name, count, key, effect)
