"""Old module paths of earlier releases, kept as clear errors instead of bare ``ModuleNotFoundError``.

Notebooks written against the first layout import e.g. ``seqformer.engine.predict_vis``; those
modules moved when the package was reorganised (docs/architecture.md).  Importing an old path
raises ``ModuleNotFoundError`` whose message names the new place.
"""
from __future__ import annotations

import importlib.abc
import sys

MOVED = {
    "seqformer.engine.predict_vis": "seqformer.inference.vis",
    "seqformer.engine.long_video": "seqformer.inference.long_video",
    "seqformer.utils.clip_batch": "seqformer.structures",
    "seqformer.models.weights": "seqformer.weight_files",
    "seqformer.models.criterion": "seqformer.models.vis_criterion / seqformer.models.ava_criterion",
    "seqformer.models.criterion_vis": "seqformer.models.vis_criterion",
    "seqformer.models.criterion_ava": "seqformer.models.ava_criterion",
    "seqformer.models.matcher": "seqformer.models.vis_matcher / seqformer.models.ava_matcher",
    "seqformer.models.detr": "seqformer.models.video_detr",
    "seqformer.models.seqformer": "seqformer.models.vis_model",
    "seqformer.models.action": "seqformer.models.ava_model",
    "seqformer.models.backbone": "seqformer.models.backbones.image / seqformer.models.position_encoding",
    "seqformer.models.swin": "seqformer.models.backbones.swin",
    "seqformer.models.csn": "seqformer.models.backbones.csn",
    "seqformer.models.csn_weights": "seqformer.models.backbones.csn_weights",
    "seqformer.models.video_backbone": "seqformer.models.backbones.video",
    "seqformer.models.tiny_backbone": "seqformer.models.backbones.tiny",
    "seqformer.data.ytvis": "seqformer.data.ytvis_dataset",
    "seqformer.data.clip_transforms": "seqformer.data.ytvis_transforms",
    "seqformer.data.synth_vis": "seqformer.data.ytvis_synth",
    "seqformer.data.ava": "seqformer.data.ava_dataset",
    "seqformer.data.ava_io": "seqformer.data.ava_format",
    "seqformer.data.synth_ava": "seqformer.data.ava_synth",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Answers imports of :data:`MOVED` paths with an error that names the new module."""

    def find_spec(self, fullname, path, target=None):
        if fullname in MOVED:
            raise ModuleNotFoundError(f"{fullname} moved to {MOVED[fullname]} (see docs/architecture.md)",
                                      name=fullname)
        return None


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
