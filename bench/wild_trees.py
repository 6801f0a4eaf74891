"""Whole real repositories, checked as a new user would: `bnlint check .` at the root.

Why: a tree of hundreds of files exercises the project-wide passes (cross-file names,
callers, freezes through helpers) in ways small corpora do not; fastestimator once
took over 300 s (issue 11). For the repositories of ../shared/wild/precision-repos.txt
(at their pinned commits) and fastestimator (at HEAD), each exported the way
../shared/wild/score.py exports a case (its .py/.ipynb/pyproject.toml files only),
this prints:

- cold (no `.bnlint_cache/`) and warm wall/CPU seconds of `bnlint check`, CPU from
  `os.wait4` (workers included), and ruff on the same tree in the same run as a peer;
- the slowest file and its time, from a one-process run that times each file's
  summary and lint (the budget guard's view of the tree).

Repositories not fetched under $MIRROR (default /work/.mirror) are skipped with a
message. Run through throughput.py:

    .venv/bin/python bench/throughput.py --wild [--wild-only fastestimator/fastestimator]
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WILD = PROJECT_ROOT.parent / "shared" / "wild"
FASTESTIMATOR = "fastestimator/fastestimator"
TARGET_COLD_S = {FASTESTIMATOR: 15.0}
TARGET_COLD_DEFAULT_S = 10.0
TARGET_WARM_S = {FASTESTIMATOR: 1.0}

# Runs in a subprocess: one process (no pool), each file's summary and lint timed.
SLOWEST_FILE = """
import json, sys, time
import bnlint.engine.pool as pool
import bnlint.engine.project as project
import bnlint.engine.run as run
pool.POOL_MIN_BYTES = float("inf")
spent = {}
def timed(module, name, path_of):
    original = getattr(module, name)
    def wrapper(item, *args):
        start = time.perf_counter()
        try:
            return original(item, *args)
        finally:
            path = path_of(item)
            spent[path] = spent.get(path, 0.0) + time.perf_counter() - start
    setattr(module, name, wrapper)
timed(project, "_summarize", lambda item: item[0])
timed(run, "lint_job", lambda job: job.display)
from bnlint.cli import main
sys.argv = ["bnlint", "check", "--no-cache", "--exit-zero", "--quiet", "--format", "json", "."]
try:
    main()
except SystemExit:
    pass
path, seconds = max(spent.items(), key=lambda item: item[1], default=("-", 0.0))
sys.stderr.write("SLOWEST " + json.dumps([path, seconds]) + "\\n")
"""


@dataclass
class Timing:
    wall: float
    cpu: float
    returncode: int
    stdout: bytes


@dataclass
class TreeResult:
    repo: str
    commit: str
    files: int
    cold: Timing
    warm: Timing
    ruff: Timing | None
    findings: int | None
    slowest: tuple[str, float]


def timed_run(cmd: list[str], cwd: Path) -> Timing:
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        return Timing(
            wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), out.read()
        )


def repositories(only: set[str]) -> list[tuple[str, str | None]]:
    listed = WILD / "precision-repos.txt"
    repos: list[tuple[str, str | None]] = []
    if listed.exists():
        for line in listed.read_text().splitlines():
            parts = line.split()
            if parts and not line.startswith("#"):
                repos.append((parts[0], parts[1] if len(parts) > 1 else None))
    else:
        print(f"skipped the precision repositories: {listed} not found")
    repos.append((FASTESTIMATOR, None))
    return [(repo, commit) for repo, commit in repos if not only or repo in only]


def load_export_tree() -> object | None:
    score = WILD / "score.py"
    if not score.exists():
        return None
    spec = importlib.util.spec_from_file_location("wild_score", score)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.export_tree


def slowest_file(python: Path, tree: Path) -> tuple[str, float]:
    proc = subprocess.run(
        [str(python), "-c", SLOWEST_FILE], cwd=tree, capture_output=True, text=True
    )
    for line in proc.stderr.splitlines():
        if line.startswith("SLOWEST "):
            path, seconds = json.loads(line[len("SLOWEST ") :])
            return str(path), float(seconds)
    return "?", 0.0


def measure_tree(
    bnlint: Path, ruff: Path | None, repo: str, commit: str | None, tree: Path
) -> TreeResult:
    shutil.rmtree(tree / ".bnlint_cache", ignore_errors=True)
    check = [str(bnlint), "check", "--exit-zero", "--format", "json", "."]
    cold = timed_run(check, tree)
    warm = timed_run(check, tree)
    shutil.rmtree(tree / ".bnlint_cache", ignore_errors=True)
    peer = None
    if ruff is not None:
        peer = timed_run([str(ruff), "check", "--no-cache", "--exit-zero", "--quiet", "."], tree)
    try:
        findings: int | None = len(json.loads(cold.stdout))
    except ValueError:
        findings = None
    files = sum(1 for p in tree.rglob("*") if p.suffix in (".py", ".ipynb"))
    slowest = slowest_file(bnlint.parent / "python", tree)
    return TreeResult(repo, commit or "HEAD", files, cold, warm, peer, findings, slowest)


def verdict(value: float, goal: float) -> str:
    return "PASS" if value <= goal else "MISS"


def render(results: list[TreeResult]) -> str:
    header = (
        "| repository | commit | files | findings | cold wall s | cold CPU s | warm wall s "
        "| ruff wall s | cold / ruff | slowest file | its s | target |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in results:
        goal_cold = TARGET_COLD_S.get(r.repo, TARGET_COLD_DEFAULT_S)
        goals = [f"cold ≤ {goal_cold:g} s {verdict(r.cold.wall, goal_cold)}"]
        if r.repo in TARGET_WARM_S:
            goal_warm = TARGET_WARM_S[r.repo]
            goals.append(f"warm ≤ {goal_warm:g} s {verdict(r.warm.wall, goal_warm)}")
        ruff_wall = f"{r.ruff.wall:.2f}" if r.ruff else "-"
        ratio = f"{r.cold.wall / r.ruff.wall:.0f}x" if r.ruff and r.ruff.wall else "-"
        lines.append(
            f"| {r.repo} | {r.commit[:12]} | {r.files} | {r.findings} | {r.cold.wall:.2f} "
            f"| {r.cold.cpu:.2f} | {r.warm.wall:.2f} | {ruff_wall} | {ratio} "
            f"| {r.slowest[0]} | {r.slowest[1]:.2f} | {'; '.join(goals)} |"
        )
    return "\n".join(lines)


def main(bnlint: Path, only: set[str], scratch: Path) -> int:
    mirror = Path(os.environ.get("MIRROR", "/work/.mirror"))
    export_tree = load_export_tree()
    if export_tree is None:
        print(f"skipped the wild trees: {WILD / 'score.py'} not found")
        return 0
    ruff = bnlint.parent / "ruff"
    results: list[TreeResult] = []
    for repo, commit in repositories(only):
        tree, problem = export_tree(str(mirror), repo, commit, str(scratch))  # type: ignore[operator]
        if tree is None:
            print(f"skipped {repo}: {problem} (not under {mirror})", flush=True)
            continue
        result = measure_tree(bnlint, ruff if ruff.exists() else None, repo, commit, Path(tree))
        results.append(result)
        print(
            f"{repo}: cold {result.cold.wall:.2f} s, warm {result.warm.wall:.2f} s, "
            f"slowest {result.slowest[0]} {result.slowest[1]:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    if results:
        print(render(results))
        slowest = max(
            (r for r in results if r.repo != FASTESTIMATOR),
            key=lambda r: r.cold.wall,
            default=None,
        )
        if slowest is not None:
            print(f"\nslowest precision repository cold: {slowest.repo} {slowest.cold.wall:.2f} s")
    return 0
