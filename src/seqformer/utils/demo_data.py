"""The demos' synthetic data folder: reused only when it was made with exactly the asked-for settings.

The generators are deterministic, so a folder made with the same settings holds exactly what they would
write again; a folder made with other settings (other counts, another seed) is deleted and written again,
with a line saying so.  The settings are stamped into ``<data>/synth_settings.json`` after the last file
is written, so an interrupted generation is never taken for a finished one.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqformer.errors import SeqFormerError

STAMP = "synth_settings.json"
# What the VIS and AVA generators write at the top of their folder: a folder holding anything else is not
# one of ours and is never deleted.
GENERATED_NAMES = {STAMP, "annotations", "train", "valid", "test", "frames", "videos", "dataset.yaml"}


def stamped_settings(data_dir: str | Path) -> dict[str, Any] | None:
    """The settings a finished generation stamped into ``data_dir``, or None (absent, unreadable)."""
    try:
        data = json.loads((Path(data_dir) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prepare_synthetic_data(data_dir: str | Path, settings: Any, generate: Callable[[Path, Any], Any],
                           say: Callable[[str], None] = print) -> bool:
    """Make ``data_dir`` hold the set ``generate(data_dir, settings)`` writes (``settings``: a dataclass);
    returns True when it was generated, False when the existing folder was reused."""
    data_dir = Path(data_dir)
    wanted = dataclasses.asdict(settings)
    found = stamped_settings(data_dir)
    if found == wanted:
        say(f"reusing the synthetic data in {data_dir} (made with the same settings)")
        return False
    if data_dir.exists():
        foreign = sorted(p.name for p in data_dir.iterdir() if p.name not in GENERATED_NAMES)
        if foreign:
            raise SeqFormerError(f"{data_dir} holds files the demo did not write ({', '.join(foreign[:3])}); "
                                 f"choose another --out")
        differ = sorted(k for k in wanted if found is None or found.get(k) != wanted[k])
        why = "has no settings stamp" if found is None else "was made with other " + ", ".join(
            f"{k} ({found.get(k)} -> {wanted[k]})" for k in differ)
        say(f"{data_dir} {why}: generating it again")
        shutil.rmtree(data_dir)
    say(f"generating synthetic data in {data_dir}")
    generate(data_dir, settings)
    (data_dir / STAMP).write_text(json.dumps(wanted, indent=1))
    return True
