"""Checking an output path before the work that produces it.

``predict vis|ava`` may run for hours; finding out only at the end that ``--out`` names a folder,
sits on a read-only file system or under a file is a waste.  :func:`check_writable_file` tries
what the final write will do (create the parent folders, create a file next to the target) and
raises :class:`OutputPathError` naming the option, the path and the reason.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from seqformer.errors import SeqFormerError

_REASONS = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
            errno.ENOSPC: "no space left on device", errno.ENOTDIR: "a path component is a file, not a folder",
            errno.EEXIST: "a path component is a file, not a folder"}


class OutputPathError(SeqFormerError, OSError):
    """An output path that cannot be written; the message names the option and the path."""


def check_writable_file(path: str | os.PathLike, option: str) -> Path:
    """Raise unless a file can be written at ``path`` (parent folders are created); returns the Path."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a directory, expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = _REASONS.get(e.errno, e.strerror or type(e).__name__)
        raise OutputPathError(f"{option} {path}: cannot write there ({reason})") from None
    return path
