"""``seqformer`` console script: one entry point, subcommands implemented in ``seqformer.tools``.

Each tool module defines ``add_arguments(parser)`` and ``run(args) -> int``; they are imported
lazily so ``seqformer --help`` stays fast and a missing optional dependency of one tool does not
break the others.

This is also the one error boundary: the toolkit's own errors (:class:`seqformer.errors.SeqFormerError`)
and OS errors on the user's paths print one ``error: <message>`` line and exit 1; ``--debug`` (or
``SEQFORMER_DEBUG=1``) shows their traceback.  Any other exception is a bug of ours and keeps its
traceback.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from seqformer import __version__
from seqformer.errors import SeqFormerError

# (command, task) -> (module, help)
COMMANDS: dict[tuple[str, str | None], tuple[str, str]] = {
    ("train", None): ("seqformer.tools.train", "train a model from a YAML config (VIS, AVA, JHMDB/UCF101-24)"),
    ("predict", "vis"): ("seqformer.tools.predict_vis", "YouTube-VIS results.json from a checkpoint"),
    ("predict", "ava"): ("seqformer.tools.predict_ava", "official AVA detection CSV from a checkpoint"),
    ("predict", "jhmdb"): ("seqformer.tools.predict_jhmdb", "JHMDB-21 frame detections CSV + linked tubes JSON"),
    ("predict", "ucf24"): ("seqformer.tools.predict_jhmdb", "UCF101-24 frame detections CSV + linked tubes JSON"),
    ("evaluate", "vis"): ("seqformer.tools.evaluate_vis", "YouTube-VIS mask AP (official ytvoseval semantics)"),
    ("evaluate", "ava"): ("seqformer.tools.evaluate_ava", "AVA frame-mAP@0.5 (official ActivityNet protocol; --protocol pyslowfast | mmaction2)"),
    ("evaluate", "jhmdb"): ("seqformer.tools.evaluate_jhmdb", "JHMDB-21 frame-mAP and video-mAP (ACT/MOC protocol)"),
    ("evaluate", "ucf24"): ("seqformer.tools.evaluate_jhmdb", "UCF101-24 frame-mAP and video-mAP (ACT/MOC protocol)"),
    ("infer", "vis"): ("seqformer.tools.infer_vis", "video file/frames -> masks video, results json, tracks plot"),
    ("infer", "ava"): ("seqformer.tools.infer_ava", "video file/frames -> actions video, detection CSV, timeline"),
    ("synth", "vis"): ("seqformer.tools.synth_vis", "generate a synthetic YouTube-VIS-format dataset"),
    ("synth", "ava"): ("seqformer.tools.synth_ava", "generate a synthetic AVA-format dataset"),
    ("synth", "jhmdb"): ("seqformer.tools.synth_jhmdb", "generate a synthetic JHMDB/UCF101-24-format dataset"),
    ("split", "vis"): ("seqformer.tools.split_vis", "deterministic held-out split of a YouTube-VIS train set"),
    ("prepare", "ava"): ("seqformer.tools.prepare_ava", "cut AVA videos and extract 30 fps frames"),
    ("demo", "vis"): ("seqformer.tools.demo_vis", "synthetic VIS demo: synth -> train -> predict -> evaluate"),
    ("demo", "ava"): ("seqformer.tools.demo_ava", "synthetic AVA demo: synth -> train -> predict -> evaluate"),
    ("demo", "jhmdb"): ("seqformer.tools.demo_jhmdb", "synthetic JHMDB demo: synth -> train -> predict -> evaluate"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqformer", description="SeqFormer toolkit: video instance segmentation "
                                     "and spatio-temporal action detection; `seqformer COMMAND TASK --help` for options")
    parser.add_argument("--version", action="version", version=f"seqformer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors (or SEQFORMER_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for (command, task), (module, help_) in COMMANDS.items():
        if task is None:
            p = sub.add_parser(command, help=help_)
            p.set_defaults(_module=module)
            continue
        if command not in groups:
            tasks = " | ".join(t for (c, t) in COMMANDS if c == command)
            gp = sub.add_parser(command, help=f"{command} ({tasks})")
            groups[command] = gp.add_subparsers(dest="task", required=True)
        p = groups[command].add_parser(task, help=help_)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv[:1] or os.environ.get("SEQFORMER_DEBUG", "") not in ("", "0")
    argv = argv[1:] if argv[:1] == ["--debug"] else argv
    try:
        return dispatch(argv)
    except SeqFormerError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if debug or exc.filename is None:  # an OS error without a path is not about the user's input
            raise
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def describe_os_error(exc: OSError) -> str:
    """``<path>: <reason>`` for an OS error on a user path (missing, read-only, full disk, wrong kind)."""
    reasons = {errno.ENOENT: "no such file or directory", errno.EACCES: "permission denied",
               errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
               errno.EISDIR: "is a directory, expected a file", errno.ENOTDIR: "a path component is not a directory",
               errno.EEXIST: "already exists"}
    reason = reasons.get(exc.errno, exc.strerror or type(exc).__name__)
    path = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{path}: {reason}"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to every option whose default says something (not None, not a False flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def resolve_command(argv: list[str]) -> tuple[str, str | None] | None:
    """The ``(command, task)`` key the first words of ``argv`` name, or None."""
    words = [a for a in argv[:2] if not a.startswith("-")]
    key = (words[0], words[1] if len(words) > 1 else None) if words else None
    if key not in COMMANDS and key is not None and (key[0], None) in COMMANDS:
        key = (key[0], None)
    return key if key in COMMANDS else None


def build_tool_parser(key: tuple[str, str | None]) -> argparse.ArgumentParser:
    """The parser of one subcommand; every option's help shows its default."""
    module_name, help_ = COMMANDS[key]
    module = importlib.import_module(module_name)
    prog = "seqformer " + " ".join(w for w in key if w)
    tool_parser = argparse.ArgumentParser(prog=prog, description=help_,
                                          formatter_class=DefaultsHelpFormatter)
    module.add_arguments(tool_parser)
    tool_parser.set_defaults(_task=key[1])  # lets one tool serve several datasets (jhmdb / ucf24)
    return tool_parser


def parse_command(argv: list[str]) -> tuple[str, argparse.Namespace]:
    """(tool module name, parsed arguments) of a command line, without running it (argparse exits on errors)."""
    key = resolve_command(argv)
    if key is None:
        build_parser().parse_args(argv)  # prints usage / error and exits
        raise SystemExit(2)
    n = 1 if key[1] is None else 2
    # intermixed: `key=value` overrides may come before and after options
    return COMMANDS[key][0], build_tool_parser(key).parse_intermixed_args(argv[n:])


def dispatch(argv: list[str]) -> int:
    # Parse only the command words first, then let the tool define its own arguments.
    if resolve_command(argv) is None:
        build_parser().parse_args(argv)  # prints usage / error
        return 2
    module_name, args = parse_command(argv)
    return int(importlib.import_module(module_name).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
