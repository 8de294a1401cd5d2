"""The one base class of the toolkit's own errors.

Every error that describes bad *input* (a malformed file, a bad option, an unreadable frame, a
checkpoint that does not fit) derives from :class:`SeqFormerError`, so the command-line entry point
can print it as one ``error: <message>`` line and exit 1, while any other exception -- a bug of
ours -- keeps its traceback.  Messages name the file and the line/row/video/frame/option.
Subclasses also derive from the built-in class they used to be (``ValueError``,
``RuntimeError``), so callers that caught those keep working.
"""
from __future__ import annotations

import sys


class SeqFormerError(Exception):
    """Bad input or an unmet precondition that the user can fix; the message says what and where."""


def warn(message: str) -> None:
    """Say once, on stderr, what was accepted but changes the result (``warning: <message>``).

    For counted skips and silently-official behaviour: the message carries the count and the file.
    """
    print(f"warning: {message}", file=sys.stderr, flush=True)
