"""Run the bad-input table of tests/test_cli_errors.py against the ``src`` of any git revision.

A regression table proves a fix only if its cases fail on the code before the fix.  This script builds
every case's inputs with today's test code, then runs the case's command line through
``seqformer.cli.main`` of the chosen revision in a subprocess (with a CPU-time limit: a hang is a failure)
and applies the test's own checks: exit code 1, no traceback, exactly one ``error:`` line naming the
expected parts.  For a revision without the CLI error boundary it also says whether the boundary alone
would have made the case pass (the exception's message already names every part).

    python scripts/check_cases_against.py b67f08b --markdown before.md     # the code before issue 13
    python scripts/check_cases_against.py .                                 # this working tree
    python scripts/check_cases_against.py b67f08b --cases evis_garbage_rle --cpu-limit 60

Options a revision does not know (argparse exits 2 naming them) are dropped and the case re-run; the
table records it.  Weights for the cases that need valid ones are built by the revision's own model
code.  Exit status: 0 when every case passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

# Runs in the revision's interpreter: main(argv) in process, stderr captured as pytest's capsys does.
RUNNER = r"""
import contextlib, io, json, sys, traceback
argv, out_path, log_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
log = open(log_path, "w")
class Tee(io.StringIO):  # keeps what was written so far on disk, for runs killed at the time limit
    def write(self, s):
        log.write(s); log.flush()
        return super().write(s)
err, out = Tee(), io.StringIO()
import seqformer
from seqformer.cli import main
result = {"seqformer": seqformer.__file__}
try:
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        result["rc"] = main(argv)
except SystemExit as exc:
    result["system_exit"] = exc.code if isinstance(exc.code, int) else str(exc.code)
except BaseException as exc:
    result["exception"] = {
        "type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(),
        "project_error": any(c.__name__ == "SeqFormerError" for c in type(exc).__mro__),
        "os_error": [exc.errno, exc.strerror, exc.filename, exc.filename2] if isinstance(exc, OSError) else None}
result["stderr"] = err.getvalue()
result["stdout_tail"] = out.getvalue().strip().splitlines()[-1:]
json.dump(result, open(out_path, "w"))
"""

WEIGHTS = r"""
import json, sys, torch
from seqformer.config import load_config
from seqformer.engine.task import get_task
for task, config, overrides, path in json.loads(sys.argv[1]):
    torch.manual_seed(0)
    torch.save({"model": get_task(task).build_model(load_config(config, overrides)).state_dict()}, path)
"""


def export_revision(rev: str, work: Path) -> Path:
    """``src`` and ``configs`` of ``rev`` (``.`` = this working tree as it is)."""
    if rev == ".":
        return REPO
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = work / f"rev-{sha}"
    if not (tree / "src").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha, "src", "configs"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def build_valid_inputs(work: Path) -> dict:
    """The test module's ``valid_inputs`` fixture, built once with today's code (weights come later)."""
    from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava
    from seqformer.data.jhmdb_format import groundtruth_from_dict, write_groundtruth_pickle
    from seqformer.data.ytvis_synth import generate_synth_vis

    from conftest import SMALL_VIS
    from jhmdb_eval_cases import hand_groundtruth

    root = work / "valid_inputs"
    saved = root / "paths.json"
    if not saved.exists():
        vis = dict(generate_synth_vis(root / "vis", SMALL_VIS), root=root / "vis")
        ava = generate_synth_ava(root / "ava", SynthAvaConfig(num_train_videos=1, num_val_videos=2, seconds=4,
                                                              height=64, width=96))
        write_groundtruth_pickle(groundtruth_from_dict(hand_groundtruth()), root / "jhmdb.pkl")
        saved.write_text(json.dumps({"vis": {k: str(v) for k, v in vis.items()},
                                     "ava": {k: str(v) for k, v in ava.items()}}))
    paths = json.loads(saved.read_text())
    return {"vis": {k: Path(v) for k, v in paths["vis"].items()}, "ava": {k: Path(v) for k, v in paths["ava"].items()},
            "jhmdb_gt": root / "jhmdb.pkl"}


def build_weights(tree: Path, out: Path) -> dict[str, Path]:
    from test_cli_errors import AVA_CONFIG, TINY, VIS_CONFIG

    out.mkdir(parents=True, exist_ok=True)
    jobs = [("vis", VIS_CONFIG, TINY, str(out / "vis.pth")), ("ava", AVA_CONFIG, TINY + ["model.num_frames=4"],
                                                              str(out / "ava.pth"))]
    if not all(Path(j[3]).exists() for j in jobs):
        subprocess.run([sys.executable, "-c", WEIGHTS, json.dumps(jobs)], cwd=tree, env=_env(tree), check=True)
    return {"vis": out / "vis.pth", "ava": out / "ava.pth"}


def _env(tree: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SEQFORMER_DEBUG"}
    return {**env, "PYTHONPATH": str(tree / "src")}


def run_case(tree: Path, argv: list[str], folder: Path, cpu_limit: int, wall_limit: float) -> dict:
    """One case in a fresh interpreter; CPU seconds bound it (a paused machine does not count as a hang)."""
    out, log = folder / "result.json", folder / "stderr.log"

    def limit_cpu() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))

    proc = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(argv), str(out), str(log)], cwd=tree,
                            env=_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=limit_cpu)
    try:
        _, crash = proc.communicate(timeout=wall_limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"timeout": f"{wall_limit:.0f} s wall clock", "stderr": log.read_text() if log.exists() else ""}
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and not out.exists():
        return {"timeout": f"{cpu_limit} s of CPU", "stderr": log.read_text() if log.exists() else ""}
    if not out.exists():
        return {"crash": proc.returncode, "stderr": crash}
    return json.loads(out.read_text())


def check(rc, err: str, expected: list[str]) -> str | None:
    """The assertions of ``test_bad_input_ends_in_one_error_line``; None when they all hold."""
    if rc != 1:
        return f"exit {rc}"
    if "Traceback" in err:
        return "traceback"
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    if len(errors) != 1:
        return f"{len(errors)} error lines"
    missing = [part for part in expected if part not in errors[0]]
    return f"message lacks {missing}" if missing else None


def judge(result: dict, expected: list[str]) -> dict:
    """Verdict, what happened, and (for an escaping exception) whether the CLI boundary alone would pass."""
    from seqformer.cli import describe_os_error

    if "timeout" in result:
        return {"failure": f"not finished after {result['timeout']}", "what": _last_line(result["stderr"])}
    if "crash" in result:
        return {"failure": f"runner died ({result['crash']})", "what": _last_line(result["stderr"])}
    exc = result.get("exception")
    if exc:
        what = f"{exc['type']}: {_first_line(exc['message'])}"
        boundary = None
        if exc["project_error"]:
            boundary = exc["message"]
        elif exc["os_error"] and exc["os_error"][2] is not None:
            boundary = describe_os_error(OSError(*exc["os_error"][:3], None, exc["os_error"][3]))
        would = None if boundary is None else check(1, result["stderr"] + f"error: {boundary}\n", expected) is None
        return {"failure": "raised (traceback)", "what": what, "boundary_alone": would}
    if "system_exit" in result:
        return {"failure": f"SystemExit({result['system_exit']})", "what": _last_line(result["stderr"])}
    failure = check(result["rc"], result["stderr"], expected)
    errors = [line for line in result["stderr"].splitlines() if line.startswith("error: ")]
    said = errors[0] if errors else _last_line(result["stderr"])
    printed = result.get("stdout_tail") or []
    return {"failure": failure, "what": said or (f"printed: {printed[0]}" if printed else "(no output)")}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="git revision whose src/ and configs/ run the cases, or . for this tree")
    parser.add_argument("--cases", nargs="*", default=["*"], help="case name patterns (fnmatch)")
    parser.add_argument("--cpu-limit", type=int, default=120, help="CPU seconds per case; more counts as a hang")
    parser.add_argument("--wall-limit", type=float, default=3600.0, help="wall-clock seconds per case (a deadlock)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the inputs (kept between runs)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    args = parser.parse_args()

    from test_cli_errors import CASES, Ctx

    work = args.work or Path(tempfile.mkdtemp(prefix="check_cases_"))
    tree = export_revision(args.rev, work)
    inputs = build_valid_inputs(work)
    weights = build_weights(tree, work / f"weights-{tree.name}")
    names = [n for n in sorted(CASES) if any(fnmatch.fnmatch(n, p) for p in args.cases)]
    rows = []
    for name in names:
        build, expected = CASES[name]
        folder = work / f"cases-{tree.name}" / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        argv = build(Ctx(folder, inputs["vis"], inputs["ava"], inputs["jhmdb_gt"], weights["vis"], weights["ava"]))
        result = run_case(tree, argv, folder, args.cpu_limit, args.wall_limit)
        dropped = []
        while result.get("system_exit") == 2:  # an option this revision does not know: drop it, run again
            found = re.search(r"unrecognized arguments: (.*)", result["stderr"])
            unknown = found.group(1).split() if found else []
            if not unknown or not set(unknown) <= set(argv):
                break
            dropped += unknown
            argv = [a for a in argv if a not in unknown]
            result = run_case(tree, argv, folder, args.cpu_limit, args.wall_limit)
        verdict = judge(result, expected)
        row = {"case": name, "passed": verdict["failure"] is None, "dropped": dropped, **verdict,
               "seqformer": result.get("seqformer")}
        rows.append(row)
        print(f"{name:34s} {'pass' if row['passed'] else 'FAIL'}  {verdict['failure'] or ''}  {verdict['what']}"
              + (f"  [dropped {' '.join(dropped)}]" if dropped else ""), flush=True)
    failed = sum(not r["passed"] for r in rows)
    alone = sum(bool(r.get("boundary_alone")) for r in rows)
    print(f"{tree.name}: {failed} of {len(rows)} cases fail, {len(rows) - failed} pass"
          + (f"; {alone} of the failures raise an error naming every part (the CLI boundary alone would pass them)"
             if alone else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(rows, args.rev))
    return 0 if failed == 0 else 1


def markdown(rows: list[dict], rev: str) -> str:
    lines = [f"Cases of tests/test_cli_errors.py run against `{rev}`\n",
             "| case | result | why | what the command did | boundary alone would pass |", "|---|---|---|---|---|"]
    for r in rows:
        what = r["what"].replace("|", "\\|")[:160] + (f" (dropped {' '.join(r['dropped'])})" if r["dropped"] else "")
        alone = {None: "", True: "yes", False: "no"}[r.get("boundary_alone")]
        lines.append(f"| {r['case']} | {'pass' if r['passed'] else 'FAIL'} | {r['failure'] or ''} | {what} | {alone} |")
    failed = sum(not r["passed"] for r in rows)
    return "\n".join(lines) + f"\n\n{failed} of {len(rows)} fail, {len(rows) - failed} pass.\n"


if __name__ == "__main__":
    sys.exit(main())
