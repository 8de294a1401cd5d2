"""The config system: YAML + _base_, typed overrides, clear errors."""
from __future__ import annotations

import pytest

from seqformer.config import ConfigError, load_config, overrides_from_mapping


def test_overrides_types_and_bare_seed_names(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  num_queries: 100\noptim:\n  lr: 1.0e-4\n")
    child = tmp_path / "child.yaml"
    child.write_text("_base_: base.yaml\nmodel:\n  backbone: resnet101\n")
    cfg = load_config(child, ["lr=1e-4", "num_frames=7", "optim.lr_drop=[3,5]", "with_box_refine=false",
                              "train.resume=null", "optim.epochs=2.0"])
    assert cfg.model.num_queries == 100 and cfg.model.backbone == "resnet101"
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.model.num_frames == 7 and cfg.optim.lr_drop == [3, 5] and cfg.optim.epochs == 2
    assert cfg.model.with_box_refine is False and cfg.train.resume is None


@pytest.mark.parametrize("override, message", [
    ("model.nope=1", "unknown option 'nope'"),
    ("num_queries=abc", "expected int"),
    ("with_box_refine=3", "expected true/false"),
    ("lr", "key=value"),
    ("model.loss=1", "unknown option"),
    ("model.mask_channels=0", "mask_channels must be positive"),
])
def test_override_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_from_mapping_round_trips_a_config():
    """A generated dataset.yaml is merged through override strings: every value, of every type (lists,
    null, strings that look like numbers), must arrive unchanged."""
    source = load_config(None, ["model.num_frames=3", "optim.lr_drop=[4, 7]", "data.ytvis_path='0012'",
                                "train.resume=null"])
    rebuilt = load_config(None, overrides_from_mapping(source.to_dict()))
    assert rebuilt.to_dict() == source.to_dict() and rebuilt.data.ytvis_path == "0012"
