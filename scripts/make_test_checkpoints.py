"""Regenerate the tiny trained checkpoints that the ``infer`` tests load (``tests/fixtures/checkpoints/``).

    PYTHONPATH=src python scripts/make_test_checkpoints.py [--tasks vis ava] [--threads 1]

Why committed files and not a training fixture: a model that really finds the synthetic objects needs
minutes of CPU training (VIS 2,880 iterations, AVA 1,800), far beyond the test suite's budget (a minute
of VIS training, 128 iterations, scores AP 0.00), while loading one costs milliseconds.  This
script is the only way the files are made, and it is deterministic: the synthetic sets come from the
seeded generators, training uses a fixed ``train.seed`` on one CPU thread, so the same torch build writes
the same weights (``checkpoints.json`` records a SHA-256 of the tensors, the torch version, the training
time and the valid-split scores; another build may differ in the last bits and still pass the tests,
whose thresholds have margin).

Each model is trained on its own seed of the generator, never on the videos the tests use, and is
scored on a held-out split of that seed; the numbers go to ``checkpoints.json`` next to the weights.
The weights are stored in float16 (half the bytes; inference runs in float32 on the rounded weights,
which is what the recorded numbers are measured on).  Rerun after a change of the model's parameters
(a strict load then fails with the key) or of the generators.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "checkpoints"
PLACEHOLDER = "set-by-the-test"

# The data a model trains on: a seed of each generator other than the tests' (VIS: seed 1, AVA: seed 0), so
# every video a test shows the model is new to it.  The models are the demos' (configs/*/tiny_synth.yaml, the
# demos' set sizes); the last epoch is kept, and the valid split is only scored, never used to choose.
VIS_DATA = dict(num_train_videos=48, num_val_videos=8, seed=11)
VIS_OVERRIDES = ["train.val_freq=2"]  # configs/ytvis/tiny_synth.yaml as the demo trains it, validated every 2 epochs
AVA_DATA = dict(num_train_videos=24, num_val_videos=6, seed=11)
AVA_OVERRIDES = ["train.val_freq=5"]  # configs/ava/tiny_synth.yaml as the demo trains it
COMMON_OVERRIDES = ["train.seed=42", "train.keep_checkpoints=0", "data.num_workers=0"]


def _portable(value, work: Path):
    """The config to commit: every path into the temporary folder replaced (the tests set their own)."""
    if isinstance(value, dict):
        return {k: _portable(v, work) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v, work) for v in value]
    return PLACEHOLDER if isinstance(value, str) and value.startswith(str(work)) else value


def _half_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """A digest of the tensors themselves (names, dtypes, shapes, bytes), not of the file's zip layout."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].contiguous()
        digest.update(f"{key}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def vis_config(work: Path, threads: int, trial: list[str]):
    from seqformer.config import load_config
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis

    data = SynthVisConfig(**VIS_DATA)
    generate_synth_vis(work / "vis", data)
    overrides = [f"data.ytvis_path={work / 'vis'}", f"train.output_dir={work / 'run'}", f"train.num_threads={threads}",
                 *COMMON_OVERRIDES, *VIS_OVERRIDES, *trial]
    return load_config(REPO / "configs" / "ytvis" / "tiny_synth.yaml", overrides), data


def ava_config(work: Path, threads: int, trial: list[str]):
    from seqformer.config import load_config, overrides_from_mapping
    from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava

    data = SynthAvaConfig(**AVA_DATA)
    paths = generate_synth_ava(work / "ava", data)
    dataset = overrides_from_mapping(yaml.safe_load(Path(paths["config"]).read_text()))
    overrides = [*dataset, f"train.output_dir={work / 'run'}", f"train.num_threads={threads}",
                 *COMMON_OVERRIDES, *AVA_OVERRIDES, *trial]
    return load_config(REPO / "configs" / "ava" / "tiny_synth.yaml", overrides), data


def train_and_score(name: str, work: Path, threads: int, trial: list[str]) -> tuple[dict, dict, dict]:
    """Train on the synthetic set; returns the record, the portable config and the float16 state dict."""
    from seqformer.engine.task import get_task
    from seqformer.engine.trainer import Trainer

    cfg, data = {"vis": vis_config, "ava": ava_config}[name](work, threads, trial)
    task = get_task(name)
    t0 = time.time()
    trainer = Trainer(cfg, task, progress=False)
    trainer.fit()
    seconds = time.time() - t0
    model = trainer.model.eval()
    state = _half_state(model)
    model.load_state_dict(state)  # copied into the float32 parameters: score what the tests will load
    with torch.no_grad():
        metrics = task.evaluate(model, cfg, trainer.device, str(work / "run"), cfg.optim.epochs)
    keep = ("AP", "AP50", "AP75", "AR10", "mAP")
    log = [json.loads(line) for line in (work / "run" / "log.jsonl").read_text().splitlines()]
    curve = [{"epoch": r["epoch"] + 1, **{k[4:]: round(v, 4) for k, v in r.items() if k[4:] in keep}}
             for r in log if r.get("type") == "epoch" and any(k.startswith("val_") for k in r)]
    record = {"train_seconds": round(seconds, 1), "iterations": trainer.iters_per_epoch() * cfg.optim.epochs,
              "validation_during_training": curve,
              "valid_with_float16_weights": {k: round(float(v), 4) for k, v in metrics.items() if k in keep},
              "data": dataclasses.asdict(data), "overrides": {"vis": VIS_OVERRIDES, "ava": AVA_OVERRIDES}[name]
              + COMMON_OVERRIDES + trial}
    return record, _portable(cfg.to_dict(), work), state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=["vis", "ava"], default=["vis", "ava"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: bit-for-bit reproducible)")
    parser.add_argument("--trial", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra config overrides, for experiments only (the committed files use none)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "checkpoints.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for name in args.tasks:
        with tempfile.TemporaryDirectory() as tmp:
            record, config, state = train_and_score(name, Path(tmp), args.threads, args.trial)
        weights = args.out / f"{name}_tiny.pth"
        torch.save({"model": state}, weights)
        (args.out / f"{name}_tiny.yaml").write_text(
            f"# written by scripts/make_test_checkpoints.py with {name}_tiny.pth; paths are set by the tests\n"
            + yaml.safe_dump(config, sort_keys=False))
        record.update(weights_sha256=_weights_sha256(state), bytes=weights.stat().st_size, torch=torch.__version__,
                      threads=args.threads)
        summary[name] = record
        print(f"{name}: {json.dumps(record)}", flush=True)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
