"""One run per output folder: continue it explicitly, start over explicitly, or refuse.

A second training written into a folder that already holds one used to append to its ``log.jsonl`` (stale
and duplicated steps in the curves), add a second TensorBoard event file and leave the first run's
per-epoch checkpoints next to the new ones.  :func:`prepare_run_folder` decides before anything is written:

* ``train.resume`` set (a checkpoint, or ``auto`` with ``checkpoint.pth`` present): continue the run;
* ``train.overwrite``: delete the files a run writes (never anything else in the folder) and start clean;
* ``resume=auto`` with no checkpoint to resume from: the earlier attempt never finished an epoch, so its
  partial files are deleted and the run starts clean (what a requeued job expects);
* otherwise a folder holding a run is refused with one line naming both ways out.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from seqformer.errors import SeqFormerError

# Everything the trainer and the tasks' per-epoch validation write into train.output_dir.
RUN_FILE_PATTERNS = ("log.jsonl", "config.yaml", "checkpoint*.pth", "checkpoint*.pth.tmp*",
                     "results_val_epoch*.json", "detections_val_epoch*.csv")
RUN_DIRS = ("tensorboard",)


class RunFolderError(SeqFormerError):
    pass


def run_files(output_dir: str | Path) -> list[Path]:
    """The files and folders of an earlier run in ``output_dir`` (empty when there is none)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = {p for pattern in RUN_FILE_PATTERNS for p in folder.glob(pattern)}
    found |= {folder / d for d in RUN_DIRS if (folder / d).exists()}
    return sorted(found)


def prepare_run_folder(output_dir: str | Path, resume: str | None, overwrite: bool, delete: bool = True) -> str:
    """What to do with ``output_dir``: returns ``"resume"``, ``"clean"`` (deleted an earlier run's files, or
    would have with ``delete=False``) or ``"new"``; raises :class:`RunFolderError` when it holds a run that
    neither ``resume`` nor ``overwrite`` claims.  ``delete=False`` lets non-main ranks decide without touching
    the disk."""
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite contradict each other; pass one")
    existing = run_files(output_dir)
    if resume and resume != "auto":
        return "resume"
    if resume == "auto" and (Path(output_dir) / "checkpoint.pth").is_file():
        return "resume"
    if not existing:
        return "new"
    if not (overwrite or resume == "auto"):
        names = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise RunFolderError(f"{output_dir} already holds a run ({names}); pass --resume auto to continue it, "
                             f"--overwrite to start over, or choose another output folder")
    if delete:
        for path in existing:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    return "clean"
