"""The task-agnostic training loop (plain PyTorch).

One :class:`Trainer` runs on every rank: it builds the task's model, criterion and training set,
the optimiser and schedule, resumes or loads pretrained weights, then per epoch trains, steps the
schedule, validates when due, and checkpoints (rank 0 writes).  Randomness is reproducible: see
:mod:`seqformer.engine.loader`; a resumed run repeats the losses of an uninterrupted one.
"""
from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from seqformer.config import Config, save_config
from seqformer.engine import checkpoint as ckpt_io
from seqformer.engine import precision
from seqformer.engine.distributed import DistInfo, all_gather_objects, barrier, init_distributed, reduce_mean
from seqformer.engine.loader import EpochLoader, derive_seed, seed_everything
from seqformer.engine.logger import RunLogger
from seqformer.engine.optim import build_lr_scheduler, build_optimizer, current_lrs
from seqformer.engine.run_folder import prepare_run_folder
from seqformer.engine.task import Task
from seqformer.engine.threads import describe, set_num_threads

log = logging.getLogger("seqformer.train")


class NonFiniteLossError(FloatingPointError):
    pass


def move_targets(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    """Tensor values of each target dict on ``device``; other values are kept as they are."""
    return [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]


def weighted_total(loss_dict: dict[str, torch.Tensor], weight_dict: dict[str, float]) -> torch.Tensor:
    """``sum(loss_dict[k] * weight_dict[k])`` over the keys present in both."""
    keys = [k for k in loss_dict if k in weight_dict]
    if not keys:
        raise KeyError(f"criterion returned {sorted(loss_dict)}, none of which is in its weight_dict {sorted(weight_dict)}")
    return sum(loss_dict[k] * weight_dict[k] for k in keys)  # type: ignore[return-value]


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a progress bar."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class EtaClock:
    """Overall time left from the iterations done so far in this run (validation time included, since it
    is part of the elapsed time); ``nan`` until the first iteration is done."""

    def __init__(self, total_iters: int):
        self.total, self.done, self.start = total_iters, 0, time.time()

    def step(self, n: int = 1) -> None:
        self.done += n

    def remaining(self) -> float:
        if self.done == 0:
            return math.nan
        return (time.time() - self.start) / self.done * max(self.total - self.done, 0)


def epoch_summary(epoch: int, epochs: int, stats: dict[str, float], seconds: float, samples: int,
                  metrics: dict[str, float], best: dict[str, Any] | None, eta: float) -> str:
    """The console line printed after each epoch (also with ``--no-progress``: one line, no carriage returns)."""
    parts = [f"epoch {epoch + 1}/{epochs}: mean loss {stats.get('loss', math.nan):.4f}",
             f"{format_duration(seconds)} ({samples / max(seconds, 1e-9):.2f} clips/s)"]
    if metrics:
        parts.append("val " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if best:
        parts.append(f"best {best['metric']} {best['value']:.4f} (epoch {best['epoch'] + 1})")
    parts.append(f"ETA {format_duration(eta)}" if epoch + 1 < epochs else "done")
    return " | ".join(parts)


def validation_due(epoch: int, epochs: int, val_freq: int) -> bool:
    """Every ``val_freq`` epochs (1-based count) and at the last epoch; ``val_freq <= 0`` disables it."""
    return val_freq > 0 and ((epoch + 1) % val_freq == 0 or epoch + 1 == epochs)


class Trainer:
    def __init__(self, cfg: Config, task: Task, *, progress: bool = True,
                 dist_info: DistInfo | None = None, device: torch.device | None = None):
        self.cfg = cfg
        self.task = task
        self.progress = progress
        if dist_info is None or device is None:
            dist_info, device = init_distributed(cfg.train.device)
        self.info, self.device = dist_info, device
        self.output_dir = Path(cfg.train.output_dir)
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if self.info.distributed else 1
        self.num_threads = set_num_threads(cfg.train.num_threads, local_processes)
        # decided before anything is written; only rank 0 deletes an earlier run's files
        self.run_folder_state = prepare_run_folder(self.output_dir, cfg.train.resume, cfg.train.overwrite,
                                                   delete=self.info.is_main)
        if self.run_folder_state == "clean" and self.info.is_main:
            log.warning("%s: deleted the files of an earlier run (train.overwrite or nothing to resume)", self.output_dir)
        seed_everything(cfg.train.seed + self.info.rank)  # original: seed 42 + rank

        self.model = task.build_model(cfg).to(self.device)
        self.criterion = task.build_criterion(cfg).to(self.device)
        if not isinstance(getattr(self.criterion, "weight_dict", None), dict):
            raise TypeError(f"task {task.name!r}: the criterion has no weight_dict dict attribute")
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_lr_scheduler(self.optimizer, cfg.optim)
        self.scaler = precision.grad_scaler(cfg.train.amp, self.device)  # fp16 only
        precision.prepare_model(self.model, cfg.train.amp, cfg.train.compile)
        self.loader = EpochLoader(task.build_dataset(cfg, "train"), task.collate_fn, cfg.optim.batch_size,
                                  cfg.data.num_workers, cfg.train.seed, self.info,
                                  pin_memory=self.device.type == "cuda")
        self.start_epoch = cfg.train.start_epoch
        self.best: dict[str, Any] | None = None
        self._restore()
        self.ddp_model: nn.Module = self.model
        if self.info.distributed:
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.train.find_unused_parameters)

    def _restore(self) -> None:
        """``--resume`` (model, optimiser, schedule, epoch, RNG) or else ``--pretrain_weights``."""
        tcfg = self.cfg.train
        resume = tcfg.resume
        if resume == "auto":
            latest = self.output_dir / "checkpoint.pth"
            resume = str(latest) if latest.is_file() else None
        if resume:
            if tcfg.pretrain_weights:
                log.info("resuming from %s; pretrain_weights %s is ignored", resume, tcfg.pretrain_weights)
            state = ckpt_io.resume_from(resume, self.model, self.optimizer, self.scheduler, self.scaler, self.info.rank)
            self.start_epoch, self.best = state["start_epoch"], state["best"]
            if not state["rng_restored"]:
                log.warning("%s holds no RNG state for rank %d; reseeding", resume, self.info.rank)
                seed_everything(derive_seed(tcfg.seed, self.start_epoch, self.info.rank))
            log.info("resumed from %s at epoch %d", resume, self.start_epoch)
            return
        if tcfg.pretrain_weights:
            report = ckpt_io.load_pretrained(self.model, tcfg.pretrain_weights, tcfg.jointfinetune)
            log.info("pretrain weights %s: %s", tcfg.pretrain_weights, report.summary())
        if self.start_epoch > 0:  # follow the schedule of an uninterrupted run from epoch 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
                for _ in range(self.start_epoch):
                    self.scheduler.step()

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, Any]:
        """Train from ``start_epoch`` to ``optim.epochs``; returns the last epoch record and the best metric."""
        epochs = self.cfg.optim.epochs
        n_iters = self.iters_per_epoch()
        if self.info.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            removed = ckpt_io.remove_stale_temp_files(self.output_dir)
            if removed:
                log.warning("removed %d temporary checkpoint file(s) left in %s by an interrupted save (%s)",
                            len(removed), self.output_dir, ", ".join(p.name for p in removed))
            save_config(self.cfg, self.output_dir / "config.yaml")
        logger = RunLogger(self.output_dir, self.info.is_main,
                           purge_step=self.start_epoch * n_iters if self.start_epoch else None,
                           resume_epoch=self.start_epoch if self.start_epoch else None)
        record: dict[str, Any] = {}
        if self.start_epoch >= epochs:
            log.warning("start epoch %d >= optim.epochs %d: nothing to train", self.start_epoch, epochs)
        self._say(f"training epochs {self.start_epoch + 1}-{epochs} of {epochs}, {n_iters} iterations each, on "
                  f"{describe(self.device, self.num_threads)}; outputs in {self.output_dir}")
        self.eta = EtaClock((epochs - self.start_epoch) * n_iters)
        samples_per_epoch = n_iters * self.cfg.optim.batch_size * self.info.world_size
        try:
            for epoch in range(self.start_epoch, epochs):
                t0 = time.time()
                train_stats = self.train_one_epoch(epoch, logger)
                train_seconds = time.time() - t0
                lrs = current_lrs(self.optimizer)  # the lrs this epoch trained with
                self.scheduler.step()
                metrics = self.evaluate(epoch) if validation_due(epoch, epochs, self.cfg.train.val_freq) else {}
                improved = self._update_best(metrics, epoch)
                self._save_checkpoint(epoch, improved)
                record = {"epoch": epoch, **{f"train_{k}": v for k, v in train_stats.items()},
                          **{f"lr_{k}": v for k, v in lrs.items()}, **{f"val_{k}": v for k, v in metrics.items()},
                          "time_s": time.time() - t0, "best": self.best}
                logger.log_epoch(record, step=(epoch + 1) * n_iters)
                self._say(epoch_summary(epoch, epochs, train_stats, train_seconds, samples_per_epoch, metrics,
                                        self.best, self.eta.remaining()))
        finally:
            logger.close()
        barrier()
        return {"last": record, "best": self.best, "epochs": epochs}

    def iters_per_epoch(self) -> int:
        n = len(self.loader)
        cap = self.cfg.train.max_iters_per_epoch
        return min(n, cap) if cap else n

    def train_one_epoch(self, epoch: int, logger: RunLogger) -> dict[str, float]:
        """One pass over the (capped) training loader; returns the mean of each reduced loss term."""
        self.ddp_model.train()
        self.criterion.train()
        n_iters = self.iters_per_epoch()
        weight_dict = self.criterion.weight_dict
        clip = self.cfg.optim.clip_max_norm
        sums: dict[str, float] = defaultdict(float)
        bar = tqdm(total=n_iters, desc=f"epoch {epoch + 1}/{self.cfg.optim.epochs}",
                   disable=not (self.progress and self.info.is_main), dynamic_ncols=True, leave=False)
        batches = self.loader.epoch(epoch)
        skipped_before = self._dataset_skips()
        skipped_batches = 0
        for it in range(n_iters):
            inputs, targets = next(batches)
            if self._all_ranks_skip(inputs is None):
                # every sample of some rank's batch was unreadable (data.skip_corrupt_frames): all ranks skip
                # together so that DDP's gradient all-reduce stays in step
                skipped_batches += 1
                bar.update()
                self._eta_step()
                continue
            inputs = inputs.to(self.device, non_blocking=True)
            targets = move_targets(targets, self.device)
            with precision.autocast(self.cfg.train.amp, self.device):
                outputs = self.ddp_model(inputs, targets)
            loss_dict = self.criterion(outputs, targets)  # float32: the model's heads are (precision.py)
            loss = weighted_total(loss_dict, weight_dict)
            # Reduce before backward: every rank sees the same values, so a non-finite loss stops all ranks together.
            reduced = reduce_mean({**loss_dict, "loss": loss}, self.device)
            bad = sorted(k for k, v in reduced.items() if not math.isfinite(v))
            if bad:
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, iteration {it}: "
                    + ", ".join(f"{k}={reduced[k]}" for k in bad if k != "loss") + f" (total {reduced['loss']})")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                reduced["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.ddp_model.parameters(), clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()

            for k, v in reduced.items():
                sums[k] += v
            lr = self.optimizer.param_groups[0]["lr"]
            self._eta_step()
            trained = it + 1 - skipped_batches  # the bar shows the epoch's running mean: one iteration is noise
            bar.set_postfix(mean_loss=f"{sums['loss'] / trained:.4f}", lr=f"{lr:.2e}",
                            eta=format_duration(self._eta_remaining()), refresh=False)
            bar.update()
            if it % max(self.cfg.train.log_every, 1) == 0 or it == n_iters - 1:
                logger.log_iter({"epoch": epoch, "iter": it, "step": epoch * n_iters + it, "lr": lr, **reduced})
        bar.close()
        del batches  # shuts worker processes down before validation starts its own
        stats = {k: v / max(n_iters - skipped_batches, 1) for k, v in sums.items()}
        skips = {k: v - skipped_before.get(k, 0) for k, v in self._dataset_skips().items()}
        if skipped_batches or any(skips.values()):
            log.warning("epoch %d: skipped %d batches; dataset skips this epoch: %s", epoch, skipped_batches, skips)
            stats.update({f"skipped_{k}": float(v) for k, v in skips.items()}, skipped_batches=float(skipped_batches))
        return stats

    def _eta_step(self) -> None:
        if getattr(self, "eta", None) is not None:
            self.eta.step()

    def _eta_remaining(self) -> float:
        return self.eta.remaining() if getattr(self, "eta", None) is not None else math.nan

    def _say(self, line: str) -> None:
        """A console line from rank 0 (through tqdm so that it does not break a live bar)."""
        if self.info.is_main:
            tqdm.write(line)

    def _dataset_skips(self) -> dict[str, int]:
        """Cumulative counted skips of the training dataset (datasets that can skip expose ``skip_counts()``)."""
        counts = getattr(self.loader.dataset, "skip_counts", None)
        return dict(counts()) if callable(counts) else {}

    def _all_ranks_skip(self, local_skip: bool) -> bool:
        if not self.info.distributed:
            return local_skip
        flag = torch.tensor([1.0 if local_skip else 0.0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    # ------------------------------------------------------------------ validation and checkpoints
    def evaluate(self, epoch: int) -> dict[str, float]:
        """Run the task's evaluation on every rank with the unwrapped model; metrics come from rank 0."""
        self.model.eval()
        with torch.no_grad(), precision.autocast(self.cfg.eval.amp, self.device):
            metrics = self.task.evaluate(self.model, self.cfg, self.device, str(self.output_dir), epoch)
        self.model.train()
        return {k: float(v) for k, v in (metrics or {}).items()}

    def _update_best(self, metrics: dict[str, float], epoch: int) -> bool:
        key = self.task.best_metric
        if not self.info.is_main or key is None or not metrics:
            return False
        if key not in metrics:
            raise KeyError(f"task {self.task.name!r} selects the best checkpoint by {key!r}, "
                           f"but its evaluate returned only {sorted(metrics)}")
        value = metrics[key]
        if self.best is None or value > self.best["value"]:
            self.best = {"metric": key, "value": value, "epoch": epoch}
            return True
        return False

    def _save_checkpoint(self, epoch: int, improved: bool) -> None:
        rng_states = all_gather_objects(ckpt_io.capture_rng_state())  # collective: every rank takes part
        if not self.info.is_main:
            return
        state = ckpt_io.make_checkpoint(self.model, self.optimizer, self.scheduler, epoch, self.cfg.to_dict(),
                                        rng_states, self.best, self.scaler)
        keep = self.cfg.train.keep_checkpoints
        last = self.output_dir / "checkpoint.pth"
        if keep == 0:  # only the last and the best
            ckpt_io.atomic_save(state, last)
            source = last
        else:
            source = self.output_dir / f"checkpoint{epoch:04}.pth"
            ckpt_io.atomic_save(state, source)
            ckpt_io.atomic_copy(source, last)
        if improved:
            ckpt_io.atomic_copy(source, self.output_dir / "checkpoint_best.pth")
        if keep is not None and keep > 0:
            numbered = sorted(p for p in self.output_dir.glob("checkpoint[0-9][0-9][0-9][0-9].pth"))
            for old in numbered[:-keep]:
                old.unlink(missing_ok=True)
