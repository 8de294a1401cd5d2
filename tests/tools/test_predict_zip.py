"""``predict vis --zip`` writes what the docs say: ``<out without suffix>.zip`` holding ``results.json``."""
from __future__ import annotations

import json
import zipfile

import torch

from seqformer.cli import main
from seqformer.config import load_config
from seqformer.tasks.vis import VISTask

TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=6", "model.num_frames=2",
        "data.val_short_side=64"]


def test_zip_is_named_after_out_and_holds_results_json(synth_vis, tmp_path, capsys):
    cfg = load_config("configs/ytvis/tiny_synth.yaml", TINY)
    torch.manual_seed(0)
    torch.save({"model": VISTask().build_model(cfg).state_dict()}, tmp_path / "w.pth")
    out = tmp_path / "pred" / "held_out.json"
    assert main(["predict", "vis", "--config", "configs/ytvis/tiny_synth.yaml", "--weights", str(tmp_path / "w.pth"),
                 "--images", str(synth_vis["valid_images"]), "--annotations", str(synth_vis["valid_ann"]),
                 "--out", str(out), "--zip", "--threads", "1", *TINY]) == 0
    assert "device cpu, 1 CPU thread" in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "pred" / "held_out.zip") as zf:
        assert zf.namelist() == ["results.json"]
        assert json.loads(zf.read("results.json")) == json.loads(out.read_text())
