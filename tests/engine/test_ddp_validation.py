"""Distributed validation gives exactly the single-process numbers (VIS and AVA, 2 Gloo processes vs 1).

TubeR's multi-GPU evaluation changed the AVA mAP because ranks' detections were concatenated in rank
order; score ties make the official metric depend on that order.  Here both tasks' ``evaluate`` run
in 2 CPU processes and in 1, and the written prediction files and the metrics must be identical.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from seqformer.config import load_config
from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava
from seqformer.engine.distributed import cleanup, init_distributed
from seqformer.engine.task import get_task

TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=6", "data.num_workers=0"]
REPO = Path(__file__).parents[2]


def _configs(vis_root: str, ava: dict) -> dict:
    vis = load_config(REPO / "configs/ytvis/tiny_synth.yaml",
                      TINY + [f"data.ytvis_path={vis_root}", "model.num_frames=2", "data.val_short_side=48",
                              "eval.max_frames_per_clip=4", "eval.clip_overlap=1"])
    ava_cfg = load_config(REPO / "configs/ava/tiny_synth.yaml", TINY + [
        "model.num_frames=4", f"data.ava_frames={ava['frames']}", f"data.ava_val_csv={ava['val_csv']}",
        f"data.ava_train_csv={ava['train_csv']}", f"data.ava_labelmap={ava['labelmap']}",
        f"data.ava_exclusions={ava['exclusions']}", "data.ava_fps=8", "data.ava_start_second=60",
        "data.ava_val_short_side=48", "optim.batch_size=3"])
    return {"vis": vis, "ava": ava_cfg}


def _evaluate_all(cfgs: dict, weights: dict, out: Path) -> dict:
    metrics = {}
    for name, cfg in cfgs.items():
        task = get_task(name)
        model = task.build_model(cfg)
        model.load_state_dict(torch.load(weights[name], weights_only=True))
        model.eval()
        metrics[name] = task.evaluate(model, cfg, torch.device("cpu"), str(out / name), epoch=0)
    return metrics


def _worker(rank: int, world_size: int, port: int, vis_root: str, ava: dict, weights: dict, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    init_distributed("cpu")
    try:
        metrics = _evaluate_all(_configs(vis_root, ava), weights, Path(out))
        if rank == 0:
            (Path(out) / "metrics.json").write_text(json.dumps(metrics))
        else:
            assert metrics == {"vis": {}, "ava": {}}  # only rank 0 scores
    finally:
        cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_validation_equals_one_process(synth_vis, tmp_path):
    ava = {k: str(v) for k, v in generate_synth_ava(tmp_path / "ava", SynthAvaConfig(
        num_train_videos=1, num_val_videos=3, seconds=4, height=48, width=80)).items()}
    cfgs = _configs(str(synth_vis["root"]), ava)
    weights = {}
    for name, cfg in cfgs.items():
        torch.manual_seed(1)
        model = get_task(name).build_model(cfg)
        with torch.no_grad():  # a sharper class head than at init, so that scores spread and rows differ
            for p in model.parameters():
                p.mul_(3.0)
        weights[name] = str(tmp_path / f"{name}.pth")
        torch.save(model.state_dict(), weights[name])

    mp.spawn(_worker, args=(2, _free_port(), str(synth_vis["root"]), ava, weights, str(tmp_path / "ddp")),
             nprocs=2, join=True)
    torch.set_num_threads(1)
    single = _evaluate_all(cfgs, weights, tmp_path / "single")
    distributed = json.loads((tmp_path / "ddp" / "metrics.json").read_text())

    assert distributed == json.loads(json.dumps(single))  # every number to the last digit
    assert set(single["vis"]) >= {"AP", "AR10"} and "mAP" in single["ava"]
    for name, pattern in (("vis", "results_val_epoch0000.json"), ("ava", "detections_val_epoch0000.csv")):
        one = (tmp_path / "single" / name / pattern).read_bytes()
        two = (tmp_path / "ddp" / name / pattern).read_bytes()
        assert one == two and len(one) > 100, name  # same rows in the same order
    rows = (tmp_path / "single" / "ava" / "detections_val_epoch0000.csv").read_text().splitlines()
    keyframes = list(dict.fromkeys(r.split(",")[0] + r.split(",")[1] for r in rows))
    assert len({k[:13] for k in keyframes}) == 3 and len(keyframes) == 5  # 5 keyframes interleaved over 2 ranks
