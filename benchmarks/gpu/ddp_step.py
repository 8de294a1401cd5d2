"""Two training steps through torchrun with NCCL (world size 1): DDP, collectives, pinned-memory loading.

A world of one normally skips the process group; here it is joined on purpose (NCCL) and the
trainer is told it is distributed, so DistributedDataParallel, the NCCL all-reduces of the losses,
the gathered RNG states of the checkpoint and a pinned-memory DataLoader with 2 workers all run on
the GPU once.  Run as::

    torchrun --standalone --nproc_per_node=1 benchmarks/gpu/ddp_step.py OUT_DIR

Writes OUT_DIR/ddp_step.json (backend, DDP, pin_memory, losses, seconds).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from _common import DEVICE, REPO, environment, skip_without_cuda, write_part


def main(out_dir: str) -> None:
    if skip_without_cuda(out_dir, "ddp_step"):
        return
    from seqformer.config import load_config
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis
    from seqformer.engine.distributed import DistInfo, detect_launch
    from seqformer.engine.trainer import Trainer
    from seqformer.tasks.vis import VISTask

    class JoinedWorld(DistInfo):  # a world of one that still uses the process group
        @property
        def distributed(self) -> bool:
            return True

    launch = detect_launch()
    if DEVICE == "cuda":
        torch.cuda.set_device(launch.local_rank)
    dist.init_process_group("nccl" if DEVICE == "cuda" else "gloo", init_method="env://")
    info = JoinedWorld(launch.rank, launch.world_size, launch.local_rank)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        if info.is_main:
            generate_synth_vis(data, SynthVisConfig(num_train_videos=4, num_val_videos=1, num_frames=6, height=128, width=192,
                                                     seed=0))
        dist.barrier()
        cfg = load_config(REPO / "configs/ytvis/tiny_synth.yaml", [
            f"data.ytvis_path={data}", f"train.output_dir={Path(tmp) / 'run'}", f"train.device={DEVICE}",
            "data.num_workers=2", "optim.epochs=1", "train.max_iters_per_epoch=2", "train.val_freq=0",
            "train.amp=bf16", "model.msda_impl=auto"])
        t0 = time.perf_counter()
        trainer = Trainer(cfg, VISTask(), progress=False, dist_info=info, device=torch.device(DEVICE, launch.local_rank if DEVICE == "cuda" else None))
        result = trainer.fit()
        seconds = time.perf_counter() - t0
        record = {"status": "ok", "env": environment(), "backend": dist.get_backend(), "world_size": dist.get_world_size(),
                  "ddp": type(trainer.ddp_model).__name__, "pin_memory": trainer.loader.loader.pin_memory, "num_workers": cfg.data.num_workers,
                  "train_loss": result["last"].get("train_loss"), "seconds": seconds,
                  "checkpoint": (Path(tmp) / "run" / "checkpoint.pth").is_file()}
    if info.is_main:
        write_part(out_dir, "ddp_step", record)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/gpu_bench")
