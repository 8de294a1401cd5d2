"""Training checkpoints: atomic writes, RNG capture, resume and pretrained-weight loading.

Every value in a checkpoint is a tensor, a number, a string, ``None`` or a list/dict of those, so
the file loads with ``torch.load(weights_only=True)`` (no pickled argparse or numpy objects).
Writes go to a temporary file in the destination directory followed by ``os.replace``, so a crash
mid-write leaves the previous checkpoint intact.

Resume restores the scheduler *as saved*: unlike the original (which reset ``last_epoch`` and
restarted the LR schedule), a resumed run follows the same learning rates as an uninterrupted one.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from seqformer.errors import SeqFormerError
from seqformer.weight_files import CheckpointError, check_compatible, load_torch_file, read_state_dict

FORMAT_VERSION = 1


# Temporary files of _atomic_write: ".<name>.<random>.tmp" next to the target.
STALE_TEMP_PATTERN = ".checkpoint*.pth.*.tmp"


class CheckpointWriteError(SeqFormerError, OSError):
    """A checkpoint could not be written (full disk, read-only folder...); earlier files are intact."""


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, SeqFormerError):
            # torch.save reports a full disk as "RuntimeError: [enforce fail at inline_container.cc...]"
            raise CheckpointWriteError(f"{path}: could not be written ({_write_failure_reason(exc, path.parent)}); "
                                       "the previous checkpoints are intact") from exc
        raise


def _write_failure_reason(exc: BaseException, folder: Path) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < 64 * 2**20:
        return f"no space left on device: {free / 2**20:.1f} MiB free in {folder}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def remove_stale_temp_files(output_dir: str | Path) -> list[Path]:
    """Delete temporary files that a save killed mid-write left in ``output_dir`` (ours only:
    :data:`STALE_TEMP_PATTERN`, not recursive); returns what was removed.  Call it before any save
    of this run has started: a concurrent save's temporary file matches the pattern too."""
    removed = []
    for tmp in sorted(Path(output_dir).glob(STALE_TEMP_PATTERN)):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink()
            removed.append(tmp)
    return removed


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` that either fully replaces ``path`` or leaves it untouched."""
    _atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    """Copy a finished checkpoint file to ``dst`` with the same all-or-nothing guarantee."""
    _atomic_write(Path(dst), lambda tmp: shutil.copyfile(src, tmp))


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU (and CUDA) generator states as weights_only-loadable values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:  # different GPU count: restore what maps onto this process's device
            torch.cuda.set_rng_state(cuda_states[min(torch.cuda.current_device(), len(cuda_states) - 1)])


def make_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, epoch: int,
                    config: dict[str, Any], rng_states: list[dict[str, Any]], best: dict[str, Any] | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
    """The checkpoint dict of a finished ``epoch`` (``model`` must be unwrapped from DDP).

    ``rng_states`` holds :func:`capture_rng_state` of every rank, indexed by rank, because each
    rank draws its own augmentation and dropout randomness.
    """
    ckpt: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "epoch": int(epoch),
        "config": config,
        "rng": list(rng_states),
        "best": dict(best) if best else None,
    }
    if scaler is not None and scaler.is_enabled():
        ckpt["scaler"] = scaler.state_dict()
    return ckpt


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint written by :func:`make_checkpoint` (weights_only)."""
    ckpt = load_torch_file(path, "training checkpoint")
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: no 'model' entry; not a training checkpoint")
    return ckpt


def resume_from(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                scaler: torch.amp.GradScaler | None = None, rank: int = 0) -> dict[str, Any]:
    """Restore model, optimiser, scheduler, AMP scaler and this rank's RNG from ``path``.

    Returns ``{"start_epoch": int, "best": dict | None, "rng_restored": bool}``; the RNG cannot be
    restored when the checkpoint came from a run with fewer ranks (the caller then re-seeds).  The model is loaded strictly; the
    schedule's milestones and gamma must match the current configuration (changing them mid-run
    would silently give learning rates neither schedule describes).
    """
    ckpt = read_checkpoint(path)
    for key in ("optimizer", "lr_scheduler", "epoch", "rng"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: no {key!r} entry; it holds weights only "
                                  f"(use --pretrain-weights to initialise from it instead of --resume)")
    state = ckpt["model"]
    check_compatible(model, state, str(path))
    model.load_state_dict(state, strict=True)
    saved_groups = [g.get("name") for g in ckpt["optimizer"]["param_groups"]]
    current_groups = [g.get("name") for g in optimizer.param_groups]
    if saved_groups != current_groups:
        raise CheckpointError(f"{path}: optimiser groups {saved_groups} differ from the current {current_groups}")
    optimizer.load_state_dict(ckpt["optimizer"])
    saved_sched = ckpt["lr_scheduler"]
    if sorted(dict(saved_sched["milestones"])) != sorted(dict(scheduler.milestones)) or \
            saved_sched["gamma"] != scheduler.gamma:
        raise CheckpointError(
            f"{path}: saved schedule (lr_drop={sorted(dict(saved_sched['milestones']))}, "
            f"lr_gamma={saved_sched['gamma']}) differs from the config (lr_drop={sorted(dict(scheduler.milestones))}, "
            f"lr_gamma={scheduler.gamma}); resume with the original schedule")
    scheduler.load_state_dict(saved_sched)
    if scaler is not None and "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    rng_restored = rank < len(ckpt["rng"])
    if rng_restored:
        restore_rng_state(ckpt["rng"][rank])
    return {"start_epoch": int(ckpt["epoch"]) + 1, "best": ckpt.get("best"), "rng_restored": rng_restored}


@dataclass
class PretrainReport:
    """What :func:`load_pretrained` did; counts refer to model state-dict keys."""

    loaded: int
    missing: list[str] = field(default_factory=list)  # model keys not in the file
    unexpected: list[str] = field(default_factory=list)  # file keys the model does not have
    dropped: list[str] = field(default_factory=list)  # class_embed keys removed before loading
    prefix_fix: str | None = None  # "strip 'detr.'" / "add 'detr.'" when keys were renamed

    def summary(self) -> str:
        fix = f", keys renamed ({self.prefix_fix})" if self.prefix_fix else ""
        return (f"loaded {self.loaded} tensors, {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.dropped)} class_embed dropped{fix}")


def _prefix_variants(state: dict[str, torch.Tensor]) -> list[tuple[str | None, dict[str, torch.Tensor]]]:
    variants: list[tuple[str | None, dict[str, torch.Tensor]]] = [(None, state)]
    if any(k.startswith("detr.") for k in state):
        variants.append(("strip 'detr.'", {k[5:] if k.startswith("detr.") else k: v for k, v in state.items()}))
    else:
        variants.append(("add 'detr.'", {f"detr.{k}": v for k, v in state.items()}))
    return variants


def load_pretrained(model: nn.Module, path: str | Path, jointfinetune: bool = False) -> PretrainReport:
    """Initialise ``model`` from the ``model`` weights in ``path`` (original ``--pretrain_weights``).

    Without ``jointfinetune`` every key containing ``class_embed`` is dropped (the class set
    changes) and the rest loads non-strictly; with it, loading is strict.  A SeqFormer VIS
    checkpoint (``detr.*`` keys) and a plain Deformable-DETR-style model differ by a ``detr.``
    prefix; whichever naming matches more model keys is used.  Matching *no* key is an error
    (the fork silently loaded nothing in that case), and so is a shape mismatch.
    """
    state = read_state_dict(path)
    dropped: list[str] = []
    if not jointfinetune:
        dropped = sorted(k for k in state if "class_embed" in k)
        state = {k: v for k, v in state.items() if "class_embed" not in k}
    expected = model.state_dict()
    prefix_fix, state = max(_prefix_variants(state), key=lambda item: sum(k in expected for k in item[1]))
    matched = [k for k in state if k in expected]
    if not matched:
        raise CheckpointError(
            f"{path}: none of its {len(state)} weights match a parameter of the model "
            f"(file key e.g. {next(iter(state), None)!r}, model key e.g. {next(iter(expected), None)!r}); "
            f"wrong checkpoint for this model?")
    for key in matched:
        if tuple(state[key].shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{path}: {key!r} has shape {list(state[key].shape)}, "
                                  f"the model expects {list(expected[key].shape)}")
    if jointfinetune:
        check_compatible(model, state, str(path))
    result = model.load_state_dict(state, strict=jointfinetune)
    return PretrainReport(loaded=len(matched), missing=list(result.missing_keys),
                          unexpected=list(result.unexpected_keys), dropped=dropped, prefix_fix=prefix_fix)
