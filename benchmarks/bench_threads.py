"""CPU thread count vs training speed when the cores are shared (the oversubscription trap).

Trains the tiny VIS config (configs/ytvis/tiny_synth.yaml, data generated into a temp folder) for
``--iters`` iterations in a fresh process per setting, each setting once alone and once while a second
CPU-bound job runs (a torch matmul loop using as many threads as there are cores, standing in for another
training or a test suite).  Settings: 1 thread, the cores available to the process (the toolkit's default,
``os.sched_getaffinity``) and ``--oversubscribe`` times that (what torch's default does on a host whose
physical core count exceeds what this process may use, or what several processes x default threads do).
Prints seconds per iteration (first 3 iterations excluded as warm-up; the median over ``--repeats``
interleaved rounds, the slower one of two), the ratio to the default setting measured in the same run, and the load averages
before and after: the machine may be shared.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_threads.py --iters 20
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, sys, time, torch
from seqformer.config import load_config
from seqformer.engine.trainer import Trainer
from seqformer.tasks.vis import VISTask
data, out, threads, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = load_config(sys.argv[5], [f"data.ytvis_path={data}", f"train.output_dir={out}", "train.val_freq=0",
                                 "optim.epochs=1", f"train.max_iters_per_epoch={iters}", "train.log_every=1",
                                 f"train.num_threads={threads}", "train.keep_checkpoints=0", "train.device=cpu"])
trainer = Trainer(cfg, VISTask(), progress=False)
stamps = []
orig = trainer.optimizer.step
def timed_step(*a, **k):
    r = orig(*a, **k)
    stamps.append(time.perf_counter())
    return r
trainer.optimizer.step = timed_step
trainer.fit()
d = [b - a for a, b in zip(stamps[2:], stamps[3:])]
print(json.dumps({"threads": torch.get_num_threads(), "s_per_iter": sum(d) / len(d)}))
"""
COMPETITOR = r"""
import torch, sys
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(512, 512)
while True:
    a = torch.tanh(a @ a)
"""


def run_child(data: Path, threads: int, iters: int, config: Path) -> float:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(key, None)
        proc = subprocess.run([sys.executable, "-c", CHILD, str(data), out, str(threads), str(iters), str(config)],
                              capture_output=True, text=True, env=env, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])["s_per_iter"]


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis
    from seqformer.engine.threads import available_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds; the median is reported")
    parser.add_argument("--oversubscribe", type=int, default=4, help="threads = this x available cores")
    parser.add_argument("--config", default=str(ROOT / "configs" / "ytvis" / "tiny_synth.yaml"))
    args = parser.parse_args()
    cores = available_cores()
    settings = {"1 thread": 1, f"{cores} threads (default)": cores,
                f"{args.oversubscribe * cores} threads (oversubscribed)": args.oversubscribe * cores}
    print(f"{cores} cores available; load averages before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as data:
        generate_synth_vis(data, SynthVisConfig(num_train_videos=2 * args.iters + 4, num_val_videos=1))
        for competing in (False, True):
            comp = None
            if competing:
                comp = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(cores)])
                time.sleep(2)
            try:
                runs: dict[str, list[float]] = {name: [] for name in settings}
                for _ in range(args.repeats):  # interleaved rounds, so that a change of load hits every setting
                    for name, n in settings.items():
                        runs[name].append(run_child(Path(data), n, args.iters, Path(args.config)))
                times = {name: sorted(r)[len(r) // 2] for name, r in runs.items()}
            finally:
                if comp is not None:
                    comp.terminate()
                    comp.wait()
            ref = times[f"{cores} threads (default)"]
            print(f"\n{'with' if competing else 'without'} a second CPU-bound job ({cores} threads):")
            for name, t in times.items():
                print(f"  {name:32s} {t:6.2f} s/iteration   x{t / ref:5.2f} of the default   "
                      f"(rounds: {', '.join(f'{x:.2f}' for x in runs[name])})")
            print(f"  load averages now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
