"""``seqformer`` console script: one entry point, subcommands implemented in ``seqformer.tools``.

Each tool module defines ``add_arguments(parser)`` and ``run(args) -> int``; they are imported
lazily so ``seqformer --help`` stays fast and a missing optional dependency of one tool does not
break the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (command, task) -> (module, help)
COMMANDS: dict[tuple[str, str | None], tuple[str, str]] = {
    ("train", None): ("seqformer.tools.train", "train a model from a YAML config (VIS or AVA)"),
    ("predict", "vis"): ("seqformer.tools.predict_vis", "YouTube-VIS results.json from a checkpoint"),
    ("predict", "ava"): ("seqformer.tools.predict_ava", "official AVA detection CSV from a checkpoint"),
    ("evaluate", "vis"): ("seqformer.tools.evaluate_vis", "YouTube-VIS mask AP (official ytvoseval semantics)"),
    ("evaluate", "ava"): ("seqformer.tools.evaluate_ava", "AVA frame-mAP@0.5 (official ActivityNet protocol; --protocol pyslowfast | mmaction2)"),
    ("synth", "vis"): ("seqformer.tools.synth_vis", "generate a synthetic YouTube-VIS-format dataset"),
    ("synth", "ava"): ("seqformer.tools.synth_ava", "generate a synthetic AVA-format dataset"),
    ("split", "vis"): ("seqformer.tools.split_vis", "deterministic held-out split of a YouTube-VIS train set"),
    ("prepare", "ava"): ("seqformer.tools.prepare_ava", "cut AVA videos and extract 30 fps frames"),
    ("demo", "vis"): ("seqformer.tools.demo_vis", "synthetic VIS demo: synth -> train -> predict -> evaluate"),
    ("demo", "ava"): ("seqformer.tools.demo_ava", "synthetic AVA demo: synth -> train -> predict -> evaluate"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqformer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for (command, task), (module, help_) in COMMANDS.items():
        if task is None:
            p = sub.add_parser(command, help=help_)
            p.set_defaults(_module=module)
            continue
        if command not in groups:
            gp = sub.add_parser(command, help=f"{command} (vis | ava)")
            groups[command] = gp.add_subparsers(dest="task", required=True)
        p = groups[command].add_parser(task, help=help_)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Parse only the command words first, then let the tool define its own arguments.
    words = [a for a in argv[:2] if not a.startswith("-")]
    key = (words[0], words[1] if len(words) > 1 else None) if words else None
    if key not in COMMANDS and key is not None and (key[0], None) in COMMANDS:
        key = (key[0], None)
    if key not in COMMANDS:
        parser.parse_args(argv)  # prints usage / error
        return 2
    module_name, help_ = COMMANDS[key]
    module = importlib.import_module(module_name)
    prog = "seqformer " + " ".join(w for w in key if w)
    tool_parser = argparse.ArgumentParser(prog=prog, description=help_)
    module.add_arguments(tool_parser)
    n = 1 if key[1] is None else 2
    args = tool_parser.parse_args(argv[n:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
