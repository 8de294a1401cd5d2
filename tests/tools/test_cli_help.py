"""Every subcommand's --help renders with every option explained and its default shown; every
``seqformer ...`` command in README.md and docs/*.md parses (dry: arguments only, nothing runs)."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from seqformer.cli import COMMANDS, build_parser, build_tool_parser, parse_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("key", sorted(COMMANDS, key=str), ids=lambda k: " ".join(w for w in k if w))
def test_help_renders_with_defaults(key):
    parser = build_tool_parser(key)
    text = parser.format_help()
    assert text.startswith(f"usage: seqformer {' '.join(w for w in key if w)}")
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{key}: {action.option_strings or action.dest} has no help"
        shows_default = action.default not in (None, False, []) and action.default is not argparse.SUPPRESS
        if shows_default and action.option_strings:
            rendered = " ".join(text.split())
            assert f"(default: {action.default})" in rendered, f"{key}: {action.option_strings} hides its default"


def test_top_level_help_lists_every_command():
    text = build_parser().format_help()
    for command in {c for c, _ in COMMANDS}:
        assert command in text


def documented_commands() -> list[tuple[str, int, str]]:
    """(file, line, command) for every ``seqformer ...`` line of a fenced code block (continuations joined)."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        in_code, pending, start = False, "", 0
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_code, pending = not in_code, ""
                continue
            if not in_code:
                continue
            if pending:
                pending += " " + line.strip()
            elif re.search(r"(^\s*|&&\s*)(\S*/)?seqformer\s", line):
                pending, start = line.strip(), lineno
            if pending and pending.endswith("\\"):
                pending = pending[:-1]
                continue
            if pending:
                found.append((path.name, start, pending))
                pending = ""
    return found


def expand_braces(word: str) -> list[str]:
    """Shell brace expansion of one ``{a,b}`` group (what the docs use)."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not m:
        return [word]
    return [w for alt in m.group(1).split(",") for w in expand_braces(word[:m.start()] + alt + word[m.end():])]


def to_argv(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    words = words[words.index(next(w for w in words if w.endswith("seqformer"))) + 1:]
    words = [w for word in words for w in expand_braces(word)]
    if "&&" in words or "|" in words:
        words = words[:min(words.index(s) for s in ("&&", "|") if s in words)]
    return words


DOCUMENTED = documented_commands()


def test_the_docs_have_examples_to_check():
    assert len(DOCUMENTED) >= 20 and any(name == "README.md" for name, _, _ in DOCUMENTED)


@pytest.mark.parametrize("where,command", [(f"{n}:{l}", c) for n, l, c in DOCUMENTED])
def test_documented_command_parses(where, command):
    argv = to_argv(command)
    if "--help" in argv or "-h" in argv or argv[-1:] == ["--version"]:
        with pytest.raises(SystemExit) as exit_info:
            parse_command(argv) if argv[0] != "--version" else build_parser().parse_args(argv)
        assert exit_info.value.code == 0, where
        return
    try:
        module, args = parse_command(argv)
    except SystemExit:
        pytest.fail(f"{where}: `{command}` does not parse")
    assert module.startswith("seqformer.tools.") and isinstance(args, argparse.Namespace)
