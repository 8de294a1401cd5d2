"""The package layout's rules (docs/architecture.md), checked on the import graph, and the old import paths."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from seqformer._moved import MOVED
from seqformer.config import load_config

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "seqformer"


def imported_modules(path: Path) -> set[str]:
    """Every ``seqformer...`` module a file imports (at any depth, lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("seqformer")}


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_engine_imports_no_task_no_model_no_inference():
    for path in modules_under("engine"):
        bad = {m for m in imported_modules(path) if m.startswith(("seqformer.tasks", "seqformer.models",
                                                                   "seqformer.inference"))}
        assert not bad, f"{path.name} imports {bad}"


def test_no_module_imports_a_tool_and_no_relative_imports():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":
            continue
        assert not {m for m in imported_modules(path) if m.startswith("seqformer.tools")}, path
        assert "from ." not in path.read_text(), f"{path}: relative import (the rule is absolute imports)"


def test_models_do_not_know_tasks():
    """Only the task adapters pick a model: models/ never imports tasks/ (build_model's shim asks the registry)."""
    for path in modules_under("models"):
        assert not {m for m in imported_modules(path) if m.startswith("seqformer.tasks")}, path


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_name_the_new_place(old):
    with pytest.raises(ModuleNotFoundError, match=f"{old} moved to {MOVED[old].split(' ')[0]}"):
        __import__(old)


def test_old_build_model_still_works_with_a_deprecation_warning():
    from seqformer.models.build import build_model
    from seqformer.models.vis_model import SeqFormer

    cfg = load_config("configs/ytvis/tiny_synth.yaml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_model(cfg)
    assert isinstance(model, SeqFormer) and model.matcher is not None
    assert any(issubclass(w.category, DeprecationWarning) and "get_task" in str(w.message) for w in caught)


def test_model_and_criterion_share_one_matcher():
    from seqformer.engine.task import get_task

    cfg = load_config("configs/ytvis/tiny_synth.yaml")
    task = get_task("vis")
    assert task.build_model(cfg).matcher is task.build_criterion(cfg).matcher
