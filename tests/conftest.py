"""Fixtures shared by the whole suite: small synthetic datasets in the real formats.

The tests folder is on ``sys.path`` (pytest's default import mode for a rootdir conftest), so test
modules in subfolders import the helper modules here (``engine_toy``, ``scalar_refs``, ``helpers``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis

SMALL_VIS = SynthVisConfig(num_train_videos=4, num_val_videos=2, num_frames=8, height=64, width=96, seed=1)


@pytest.fixture(scope="session")
def synth_vis(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic YouTube-VIS set: paths ``train_images``, ``train_ann``, ``valid_images``,
    ``valid_ann`` and its ``root`` (what ``data.ytvis_path`` points at)."""
    root = tmp_path_factory.mktemp("synth_vis")
    return dict(generate_synth_vis(root, SMALL_VIS), root=root)
