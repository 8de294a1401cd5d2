"""Run the reference AVA evaluators themselves (not re-implementations) from scratch checkouts.

Nothing of the references is copied here: this harness imports or runs their code from
``--reference-root`` (default ``$SEQFORMER_AVA_REFERENCES`` or ``/work/scratch``), which holds

* ``ActivityNet/`` -- github.com/activitynet/ActivityNet (``Evaluation/get_ava_performance.py``),
* ``SlowFast/`` -- github.com/facebookresearch/SlowFast (``slowfast/utils/ava_eval_helper.py``,
  ``ava_evaluation/``),
* ``mmaction2/`` -- github.com/open-mmlab/mmaction2 (``mmaction/evaluation/functional/ava_utils.py``),

and prints ``{"per_class": {name: AP | null}, "mAP": ..., "normalized": [...]}`` (or ``{"error": ...}``
when the reference itself fails). What is patched, all at run time, no reference file edited:

* numpy-2 aliases ``np.float``, ``np.int``, ``np.NAN`` (removed in numpy 2, used by their metrics
  code), installed by a ``sitecustomize.py`` written to a temporary folder on ``PYTHONPATH``.
* activitynet: the script runs as a subprocess as its docstring says (``python -O
  get_ava_performance.py -l -g -d``, cwd ``Evaluation/``) with ``Evaluation/ava`` on ``PYTHONPATH``
  (its vendored TF modules use Python-2 implicit relative imports); its printed dict is parsed. It has
  no exclusions option since 2020: with one, the excluded keyframes' rows are removed from both files.
* pyslowfast: ``vision.fair.slowfast.ava_evaluation`` (a Meta-internal import path in its HEAD) is
  aliased to the repository's ``ava_evaluation/`` folder; ``slowfast.utils.distributed`` (torch,
  pytorchvideo; only ``is_master_proc`` is used) and ``slowfast.utils.env`` (iopath; only
  ``pathmgr.open`` is used) are stubs. ``evaluate_ava_from_files`` runs; its printed dict is parsed.
* mmaction2: ``ava_utils`` is imported through stub parent packages (their ``__init__`` files import
  mmengine/mmcv/torch); ``ava_eval(..., ignore_empty_frames=True)`` runs as AVAMetric calls it. It
  prints APs with 4 decimals, so ``ava_utils.metrics.compute_average_precision`` is wrapped to record
  its return values; class ids come from its printed ``Index: k`` lines, in the same order.
* pyslowfast, mmaction2: their readers assert 7 or 8 columns, so 2-column ``video_id,second`` rows
  are removed from the files first (they carry no box; listed in ``normalized``). PySlowFast's
  reader also indexes a detection's 8th column unconditionally: 7-column detection rows get the
  score 1.0 that the other readers give them.

Usage: ``python benchmarks/ava_references.py PROTOCOL LABELMAP GT DET [EXCLUSIONS] [--reference-root DIR]``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path

NUMPY2_ALIASES = '''import numpy as np
for _name, _value in (("float", float), ("int", int), ("NAN", np.nan)):
    if _name not in np.__dict__:
        setattr(np, _name, _value)
'''
_PPRINT_AP = re.compile(r"'PascalBoxes_PerformanceByCategory/AP@0\.5IOU/(.*?)': (?:np\.float64\()?([-+0-9.eEnaif]+)\)?")
_PPRINT_MAP = re.compile(r"'PascalBoxes_Precision/mAP@0\.5IOU': (?:np\.float64\()?([-+0-9.eEnaif]+)\)?")


def default_root() -> Path:
    return Path(os.environ.get("SEQFORMER_AVA_REFERENCES", "/work/scratch"))


def activitynet_command(root: Path, labelmap, gt, det, shim_dir: Path) -> tuple[list[str], dict, Path]:
    """(argv, env, cwd) running the official script unmodified, as its docstring shows."""
    evaluation = root / "ActivityNet" / "Evaluation"
    env = dict(os.environ, PYTHONPATH=f"{shim_dir}{os.pathsep}{evaluation / 'ava'}")
    argv = [sys.executable, "-O", "get_ava_performance.py", "-l", str(labelmap), "-g", str(gt), "-d", str(det)]
    return argv, env, evaluation


def write_shim(folder: Path) -> Path:
    (folder / "sitecustomize.py").write_text(NUMPY2_ALIASES)
    return folder


def parse_printed_metrics(text: str) -> dict:
    per_class = {name: float(value) for name, value in _PPRINT_AP.findall(text)}
    (mean_ap,) = _PPRINT_MAP.findall(text)
    return {"per_class": per_class, "mAP": float(mean_ap)}


def _rows(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _write_rows(rows, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


def run_activitynet(root: Path, labelmap, gt, det, exclusions, tmp: Path) -> dict:
    normalized = []
    if exclusions:
        excluded = {(r[0], int(r[1])) for r in _rows(exclusions)}
        files = {}
        for name, path in (("gt", gt), ("det", det)):
            rows = _rows(path)
            kept = [r for r in rows if (r[0], int(r[1])) not in excluded]
            files[name] = _write_rows(kept, tmp / f"{name}.csv")
            normalized.append(f"{name}: {len(rows) - len(kept)} rows of excluded keyframes removed")
        gt, det = files["gt"], files["det"]
    argv, env, cwd = activitynet_command(root, labelmap, gt, det, write_shim(tmp))
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1], "normalized": normalized}
    return {**parse_printed_metrics(proc.stdout), "normalized": normalized}


def _without_two_column_rows(paths: dict, tmp: Path) -> tuple[dict, list[str]]:
    out, normalized = {}, []
    for name, path in paths.items():
        rows = _rows(path)
        kept = [r for r in rows if len(r) != 2]
        if len(kept) != len(rows):
            path = _write_rows(kept, tmp / f"{name}.csv")
            normalized.append(f"{name}: {len(rows) - len(kept)} 2-column rows removed")
        out[name] = str(path)
    return out, normalized


def _install_aliases() -> None:
    exec(NUMPY2_ALIASES, {})


def run_pyslowfast(root: Path, labelmap, gt, det, exclusions, tmp: Path) -> dict:
    _install_aliases()
    paths, normalized = _without_two_column_rows({"gt": gt, "det": det}, tmp)
    rows = _rows(paths["det"])
    if any(len(r) == 7 for r in rows):
        normalized.append(f"det: {sum(len(r) == 7 for r in rows)} 7-column rows given score 1.0")
        paths["det"] = str(_write_rows([r + ["1.0"] if len(r) == 7 else r for r in rows], tmp / "det_scored.csv"))
    sys.path.insert(0, str(root / "SlowFast"))
    import ava_evaluation  # the repository's top-level ava_evaluation/ folder (namespace package)

    for name in ("vision", "vision.fair", "vision.fair.slowfast"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["vision.fair.slowfast.ava_evaluation"] = ava_evaluation
    env = types.ModuleType("slowfast.utils.env")
    env.pathmgr = types.SimpleNamespace(open=open)
    env.setup_environment = lambda: None
    distributed = types.ModuleType("slowfast.utils.distributed")
    distributed.is_master_proc = lambda *args, **kwargs: True
    sys.modules.update({"slowfast.utils.env": env, "slowfast.utils.distributed": distributed})
    from slowfast.utils import ava_eval_helper

    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            ava_eval_helper.evaluate_ava_from_files(str(labelmap), paths["gt"], paths["det"],
                                                    str(exclusions) if exclusions else None)
    except Exception as exc:  # the reference's own failure
        return {"error": f"{type(exc).__name__}: {exc}", "normalized": normalized}
    return {**parse_printed_metrics(printed.getvalue()), "normalized": normalized}


def run_mmaction2(root: Path, labelmap, gt, det, exclusions, tmp: Path) -> dict:
    _install_aliases()
    paths, normalized = _without_two_column_rows({"gt": gt, "det": det}, tmp)
    package = root / "mmaction2" / "mmaction"
    for name, folder in (("mmaction", package), ("mmaction.evaluation", package / "evaluation"),
                         ("mmaction.evaluation.functional", package / "evaluation" / "functional")):
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module
    from mmaction.evaluation.functional import ava_utils

    recorded: list[float] = []
    compute_average_precision = ava_utils.metrics.compute_average_precision

    def recording(precision, recall):
        value = compute_average_precision(precision, recall)
        recorded.append(float(value))
        return value

    ava_utils.metrics.compute_average_precision = recording
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            result = ava_utils.ava_eval(paths["det"], "mAP", str(labelmap), paths["gt"],
                                        str(exclusions) if exclusions else None, ignore_empty_frames=True)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "normalized": normalized}
    ids = [int(k) for k in re.findall(r"^Index: (\d+), Action: ", printed.getvalue(), flags=re.M)]
    if len(ids) != len(recorded):
        raise RuntimeError(f"mmaction2 printed {len(ids)} classes but computed {len(recorded)} APs")
    with open(labelmap) as f:
        labelmap_entries, _ = ava_utils.read_labelmap(f)
    names = {entry["id"]: entry["name"] for entry in labelmap_entries}
    return {"per_class": {names[k]: ap for k, ap in zip(ids, recorded)}, "mAP": float(result["overall"]),
            "normalized": normalized}


RUNNERS = {"activitynet": run_activitynet, "pyslowfast": run_pyslowfast, "mmaction2": run_mmaction2}


def run_reference(protocol: str, labelmap, gt, det, exclusions=None, root: Path | None = None,
                  env: dict | None = None) -> dict:
    """Run one reference in a fresh Python process (their import shims stay out of this one)."""
    argv = [sys.executable, __file__, protocol, str(labelmap), str(gt), str(det)]
    if exclusions:
        argv.append(str(exclusions))
    argv += ["--reference-root", str(root or default_root())]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{protocol} reference harness failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=sorted(RUNNERS))
    parser.add_argument("labelmap")
    parser.add_argument("groundtruth")
    parser.add_argument("detections")
    parser.add_argument("exclusions", nargs="?")
    parser.add_argument("--reference-root", type=Path, default=default_root())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = RUNNERS[args.protocol](args.reference_root, args.labelmap, args.groundtruth, args.detections,
                                        args.exclusions, Path(tmp))
    if "per_class" in result:  # strict JSON: NaN -> null
        result["per_class"] = {k: None if math.isnan(v) else v for k, v in result["per_class"].items()}
        result["mAP"] = None if math.isnan(result["mAP"]) else result["mAP"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
