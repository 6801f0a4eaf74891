"""Throughput benchmark: bnlint against its peers on real PyTorch code.

Why: bnlint promises to be cheap enough to run on every save and in every CI job,
so its speed claims must be measured on real code, against the tools people
already run, in the same run on the same machine. This script

1. downloads pinned wheels of timm, torchvision and ultralytics (only wheels, no
   sdists, nothing executed) into a cache outside the repository and unpacks their
   ``*.py`` members once, one tree per package;
2. installs the peers (TorchFix, which brings flake8, and ruff) into a separate
   venv in that cache -- TorchFix pins ``libcst<1.6``, so it cannot share the
   project venv;
3. times each tool in a subprocess per tree and for all trees together: wall
   seconds, CPU seconds (user + sys of the child and its waited-for children,
   from ``os.wait4``) and peak RSS (``ru_maxrss``: the largest single process in
   the tree of processes, not their sum); the median of ``--repeat`` runs;
4. checks the figures against bnlint's targets and prints PASS/MISS.

It is a script, not a test: it downloads, takes minutes (TorchFix needs minutes
per tree on two cores) and its figures depend on the machine.

    .venv/bin/python bench/throughput.py --repeat 3 --slow-repeat 1 --markdown
    .venv/bin/python bench/throughput.py --wild    # whole real repositories (wild_trees.py)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bnlint.engine.run import triggered
from bnlint.registry import RuleMeta

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path.home() / ".cache" / "bnlint-bench"
DEFAULT_BNLINT = PROJECT_ROOT / ".venv" / "bin" / "bnlint"

# Pinned so that figures are reproducible; --latest ignores these.
CORPUS_PINS: dict[str, str] = {
    "timm": "1.0.31",
    "torchvision": "0.29.1",
    "ultralytics": "8.4.190",
}
PEER_PINS: dict[str, str] = {"torchfix": "0.7.0", "flake8": "7.5.0", "ruff": "0.17.6"}

# A ~500-line timm model that builds BatchNorm layers, and a real file that none of
# bnlint's default rules' pre-filters (trigger words and patterns, read from bnlint
# itself) lets through: the one closest to 300 lines in the trees, or a generated one.
BN_MODEL_FILE = ("timm", "timm/models/vgg.py")
NO_TRIGGER_LINES = 300

# Tools whose runs take minutes; they get --slow-repeat runs instead of --repeat.
SLOW_TOOLS = ("torchfix", "flake8")
ALL = "all"
PEER_FINDING = re.compile(rb"^[^\s:][^:]*:\d+:\d+: [A-Z]+\d+", re.MULTILINE)
RUFF_SUMMARY = re.compile(rb"^Found (\d+) errors?", re.MULTILINE)

TARGET_RATIO = 10.0
# The rules bnlint had before the issue that added the rest of the catalogue (#6): the
# default set may cost at most TARGET_CATALOGUE_COST times their cold CPU time.
RULES_BEFORE_CATALOGUE = ("BN001", "BN002", "BN003", "BN004", "BN005", "BN007")
TARGET_CATALOGUE_COST = 1.2
TARGET_WARM_S = 1.0
TARGET_BN_FILE_S = 0.4
TARGET_NO_TRIGGER_S = 0.15


# --------------------------------------------------------------------------- setup


def pip_download(name: str, version: str | None, wheels: Path) -> Path:
    """Return the wheel of `name` (pinned `version`, or the newest), downloading it once."""
    if version is not None:
        found = sorted(wheels.glob(f"{name}-{version}-*.whl"))
        if found:
            return found[0]
    spec = name if version is None else f"{name}=={version}"
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        only_wheels = ["--no-binary", ":none:", "--only-binary", ":all:"]
        subprocess.run([*pip, *only_wheels, "-d", tmp, spec], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        target = wheels / wheel.name
        shutil.move(wheel, target)
    return target


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def unpack_sources(wheel: Path, dest: Path) -> Path:
    """Extract only the ``*.py`` members of `wheel` into `dest`, once."""
    done = dest / ".unpacked"
    if done.exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.endswith(".py"):
                archive.extract(member, dest)
    done.write_text(wheel.name + "\n")
    return dest


def prepare_corpus(cache: Path, names: Sequence[str], latest: bool) -> dict[str, Path]:
    """Download and unpack each package; return its tree, relative to ``cache/src``."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    trees: dict[str, Path] = {}
    for name in names:
        wheel = pip_download(name, None if latest else CORPUS_PINS[name], wheels)
        tree = unpack_sources(wheel, cache / "src" / f"{name}-{wheel_version(wheel)}")
        trees[name] = tree
    return trees


def prepare_peers(cache: Path) -> Path:
    """Create (once) the peers' venv and return its bin directory."""
    venv = cache / "peers"
    pins = [f"{name}=={version}" for name, version in PEER_PINS.items()]
    marker = venv / "bench-pins.txt"
    if marker.exists() and marker.read_text().split() == pins:
        return venv / "bin"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *pins], check=True)
    marker.write_text("\n".join(pins) + "\n")
    return venv / "bin"


def no_trigger_file(cache: Path, trees: dict[str, Path]) -> Path:
    """A real trigger-free file from the trees, or a generated one if none exists."""
    candidates = []
    for tree in sorted(trees.values()):
        for py in sorted(tree.rglob("*.py")):
            data = py.read_bytes()
            if not has_trigger(data):
                candidates.append((abs(data.count(b"\n") - NO_TRIGGER_LINES), str(py)))
    if candidates:
        return Path(min(candidates)[1])
    generated = cache / "generated" / "no_trigger.py"
    generated.parent.mkdir(parents=True, exist_ok=True)
    body = ['"""Plain helpers: no normalization layers, no mode switches."""\n']
    for i in range(60):
        body.append(f"\n\ndef helper_{i}(values: list[int]) -> int:\n")
        body.append(f"    total = {i}\n    for v in values:\n        total += v * {i + 1}\n")
        body.append("    return total\n")
    generated.write_text("".join(body))
    return generated


def has_trigger(source: bytes) -> bool:
    """Whether bnlint's pre-filter lets this file through to a default rule."""
    text = source.decode("utf-8", "replace")
    return any(triggered(rule, text) for rule in _default_rules())


@functools.cache
def _default_rules() -> list[RuleMeta]:
    from bnlint.engine.run import static_rules
    from bnlint.registry import default_codes

    defaults = default_codes()
    return [meta for code, meta in static_rules().items() if code in defaults]


# ------------------------------------------------------------------- measurement


@dataclass
class CorpusStats:
    files: int
    lines: int
    trigger_files: int


def corpus_stats(paths: Sequence[Path]) -> CorpusStats:
    files = lines = trigger = 0
    for path in paths:
        for py in [path] if path.is_file() else sorted(path.rglob("*.py")):
            data = py.read_bytes()
            files += 1
            lines += data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
            trigger += has_trigger(data)
    return CorpusStats(files, lines, trigger)


@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_kib: int
    returncode: int
    stdout: bytes


def run_once(cmd: Sequence[str], cwd: Path) -> Run:
    """Run `cmd` with stdout to a temporary file; rusage from ``os.wait4``."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read()
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss, proc.returncode, stdout)


@dataclass
class Measure:
    target: str
    tool: str
    stats: CorpusStats
    wall: float
    cpu: float
    rss_mib: float
    findings: int | None
    runs: int
    note: str = ""
    # bnlint-before-catalogue only: median over interleaved pairs of (default rules CPU /
    # rules before #6 CPU). Pairs, because this machine's speed drifts by tens of
    # percent over minutes: two medians taken minutes apart compare the drift.
    paired_ratio: float | None = None

    @property
    def lines_per_wall(self) -> float:
        return self.stats.lines / self.wall if self.wall else float("inf")

    @property
    def lines_per_cpu(self) -> float:
        return self.stats.lines / self.cpu if self.cpu else float("inf")


def count_bnlint_findings(stdout: bytes) -> int | None:
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict) and isinstance(data.get("findings"), list):
        return len(data["findings"])
    return None


def count_peer_findings(stdout: bytes) -> int:
    """flake8 and TorchFix print `path:line:col: CODE ...`; ruff's full format ends
    with `Found N errors.`"""
    summary = RUFF_SUMMARY.search(stdout)
    return int(summary.group(1)) if summary else len(PEER_FINDING.findall(stdout))


def measure(
    target: str,
    tool: str,
    cmd: Sequence[str],
    cwd: Path,
    stats: CorpusStats,
    repeat: int,
    json_output: bool = False,
) -> Measure:
    runs = [run_once(cmd, cwd) for _ in range(repeat)]
    last = runs[-1]
    findings = (
        count_bnlint_findings(last.stdout) if json_output else count_peer_findings(last.stdout)
    )
    # Peers exit 1 on findings; bnlint runs with --exit-zero, so 1 means it failed.
    ok_codes = (0,) if json_output else (0, 1)
    failed = [r.returncode for r in runs if r.returncode not in ok_codes]
    note = f"exit {failed[0]} in {len(failed)} run(s)" if failed else ""
    return Measure(
        target=target,
        tool=tool,
        stats=stats,
        wall=statistics.median(r.wall for r in runs),
        cpu=statistics.median(r.cpu for r in runs),
        rss_mib=statistics.median(r.maxrss_kib for r in runs) / 1024,
        findings=findings,
        runs=repeat,
        note=note,
    )


def summed(target: str, parts: Sequence[Measure], stats: CorpusStats) -> Measure:
    """A stand-in for a slow tool's all-trees run: the sum of its per-tree runs."""
    findings = [m.findings for m in parts]
    return Measure(
        target=target,
        tool=parts[0].tool,
        stats=stats,
        wall=sum(m.wall for m in parts),
        cpu=sum(m.cpu for m in parts),
        rss_mib=max(m.rss_mib for m in parts),
        findings=None if None in findings else sum(f or 0 for f in findings),
        runs=min(m.runs for m in parts),
        note="sum of per-tree runs",
    )


# ------------------------------------------------------------------------ tools


@dataclass
class Tools:
    bnlint: list[str] | None
    peers: Path | None
    selected: set[str] = field(default_factory=set)

    def wants(self, tool: str) -> bool:
        return tool in self.selected and (
            self.bnlint is not None if tool.startswith("bnlint") else self.peers is not None
        )

    def peer_cmd(self, tool: str, paths: Sequence[str]) -> list[str]:
        assert self.peers is not None
        if tool == "torchfix":
            return [str(self.peers / "torchfix"), *paths]
        if tool == "flake8":
            return [str(self.peers / "flake8"), "--isolated", "--select=TOR", *paths]
        if tool == "ruff":
            return [str(self.peers / "ruff"), "check", "--no-cache", "--isolated", *paths]
        raise ValueError(tool)

    def bnlint_cmd(
        self, paths: Sequence[str], cache: bool, select: Sequence[str] = ()
    ) -> list[str]:
        assert self.bnlint is not None
        flags = ["--exit-zero", "--format", "json"] + ([] if cache else ["--no-cache"])
        if select:
            flags += ["--select", ",".join(select)]
        return [*self.bnlint, "check", *flags, *paths]


def find_bnlint(executable: Path) -> list[str] | None:
    """The bnlint command if `bnlint check --help` works, else None."""
    cmd = [str(executable)]
    try:
        ok = subprocess.run([*cmd, "check", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cmd if ok.returncode == 0 else None


def tool_version(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except OSError:
        return "n/a"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "n/a"


def versions(tools: Tools, trees: dict[str, Path]) -> dict[str, str]:
    found = {name: wheel_version_of(tree) for name, tree in trees.items()}
    commit = tool_version(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"])
    found["bnlint"] = f"git {commit}" + ("" if tools.bnlint else " (not run)")
    project_python = PROJECT_ROOT / ".venv" / "bin" / "python"
    found["libcst (project venv)"] = python_package_version(project_python, "libcst")
    if tools.peers is not None:
        found["torchfix"] = tool_version([str(tools.peers / "torchfix"), "--version"])
        found["flake8"] = tool_version([str(tools.peers / "flake8"), "--version"])
        found["ruff"] = tool_version([str(tools.peers / "ruff"), "--version"])
        found["libcst (peers venv)"] = python_package_version(tools.peers / "python", "libcst")
    return found


def wheel_version_of(tree: Path) -> str:
    return tree.name.rsplit("-", 1)[-1]


def python_package_version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return tool_version([str(python), "-c", code])


def machine() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load avg at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ------------------------------------------------------------------------ runs


@dataclass
class Job:
    target: str
    tool: str
    paths: list[str]
    cwd: Path
    stats: CorpusStats


def plan(tools: Tools, cache: Path, trees: dict[str, Path], args: argparse.Namespace) -> list[Job]:
    """All measurements, cheap ones first: bnlint and ruff on every tree, then single
    files, then the slow peers tree by tree, so that an interrupted run (saved after
    every measurement with --json) still holds the figures that matter most."""
    src = next(iter(trees.values())).parent
    targets: dict[str, list[str]] = {name: [tree.name] for name, tree in trees.items()}
    if len(trees) > 1:
        targets[ALL] = [tree.name for tree in trees.values()]
    stats = {t: corpus_stats([src / p for p in rel]) for t, rel in targets.items()}
    jobs = [
        Job(target, tool, rel, src, stats[target])
        for tool in ("bnlint-cold", "bnlint-warm", "ruff")
        for target, rel in targets.items()
        if not (tool == "bnlint-warm" and args.warm_all_only and target != ALL)
    ]
    everything = ALL if ALL in targets else next(iter(targets))
    jobs.append(
        Job(everything, "bnlint-before-catalogue", targets[everything], src, stats[everything])
    )
    if not args.no_single_file:
        jobs += single_file_jobs(cache, trees)
    slow_targets = targets if args.measure_all_slow else {t: targets[t] for t in trees}
    jobs += [
        Job(target, tool, rel, src, stats[target])
        for tool in SLOW_TOOLS
        for target, rel in slow_targets.items()
    ]
    return [job for job in jobs if tools.wants(job.tool)]


def single_file_jobs(cache: Path, trees: dict[str, Path]) -> list[Job]:
    jobs: list[Job] = []
    package, relative = BN_MODEL_FILE
    if package in trees and (trees[package] / relative).exists():
        bn_file = trees[package] / relative
        stats = corpus_stats([bn_file])
        for tool in ("bnlint-cold", "ruff", *SLOW_TOOLS):
            jobs.append(Job(f"file {bn_file.name}", tool, [str(bn_file)], cache, stats))
    quiet = no_trigger_file(cache, trees)
    target = f"no-trigger {quiet.name}"
    jobs.append(Job(target, "bnlint-cold", [str(quiet)], cache, corpus_stats([quiet])))
    return jobs


def run_jobs(
    tools: Tools,
    jobs: Sequence[Job],
    results: list[Measure],
    save: Callable[[], None],
    repeat: int,
    slow_repeat: int,
) -> None:
    """Run the jobs not already in `results` (--resume), saving after each."""
    done = {(m.target, m.tool) for m in results}
    for job in jobs:
        if (job.target, job.tool) in done:
            continue
        progress(f"{job.target}: {job.tool}")
        results.append(run_tool(tools, job, slow_repeat if job.tool in SLOW_TOOLS else repeat))
        save()


def add_slow_sums(results: list[Measure], names: Sequence[str]) -> None:
    """Stand in for the slow peers' all-trees run with the sum of their per-tree runs."""
    if len(names) < 2:
        return
    stats = next((m.stats for m in results if m.target == ALL), None)
    for tool in SLOW_TOOLS:
        parts = [find(results, name, tool) for name in names]
        if stats and find(results, ALL, tool) is None and all(parts):
            results.append(summed(ALL, [p for p in parts if p], stats))


def run_tool(tools: Tools, job: Job, repeat: int) -> Measure:
    if job.tool == "bnlint-cold":
        cmd = tools.bnlint_cmd(job.paths, cache=False)
        return measure(job.target, job.tool, cmd, job.cwd, job.stats, repeat, json_output=True)
    if job.tool == "bnlint-before-catalogue":
        return measure_catalogue_cost(tools, job, repeat)
    if job.tool == "bnlint-warm":
        # bnlint keeps .bnlint_cache/ in the project root: the nearest ancestor with a
        # pyproject.toml or .git, else where it starts. Clear every candidate.
        for where in (job.cwd, *(job.cwd / p for p in job.paths)):
            shutil.rmtree(where / ".bnlint_cache", ignore_errors=True)
        cmd = tools.bnlint_cmd(job.paths, cache=True)
        run_once(cmd, job.cwd)  # fill the cache
        return measure(job.target, job.tool, cmd, job.cwd, job.stats, repeat, json_output=True)
    cmd = tools.peer_cmd(job.tool, job.paths)
    return measure(job.target, job.tool, cmd, job.cwd, job.stats, repeat)


def measure_catalogue_cost(tools: Tools, job: Job, repeat: int) -> Measure:
    """The rules before #6, each run paired with a default-rules run right after it."""
    before_cmd = tools.bnlint_cmd(job.paths, cache=False, select=RULES_BEFORE_CATALOGUE)
    default_cmd = tools.bnlint_cmd(job.paths, cache=False)
    before: list[Run] = []
    ratios: list[float] = []
    for _ in range(repeat):
        before.append(run_once(before_cmd, job.cwd))
        ratios.append(run_once(default_cmd, job.cwd).cpu / before[-1].cpu)
    return Measure(
        target=job.target,
        tool=job.tool,
        stats=job.stats,
        wall=statistics.median(r.wall for r in before),
        cpu=statistics.median(r.cpu for r in before),
        rss_mib=statistics.median(r.maxrss_kib for r in before) / 1024,
        findings=count_bnlint_findings(before[-1].stdout),
        runs=repeat,
        note="paired ratios " + ", ".join(f"{r:.2f}" for r in ratios),
        paired_ratio=statistics.median(ratios),
    )


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- report


def find(results: Sequence[Measure], target: str, tool: str) -> Measure | None:
    return next((m for m in results if m.target == target and m.tool == tool), None)


def measure_rows(results: Sequence[Measure]) -> list[list[str]]:
    header = ["target", "tool", "files", "lines", "trig.files", "findings", "wall s"]
    header += ["cpu s", "peak RSS MiB", "lines/s wall", "lines/s cpu", "runs", "note"]
    rows = [header]
    for m in results:
        rows.append(
            [
                m.target,
                m.tool,
                str(m.stats.files),
                str(m.stats.lines),
                str(m.stats.trigger_files),
                "?" if m.findings is None else str(m.findings),
                f"{m.wall:.3f}",
                f"{m.cpu:.3f}",
                f"{m.rss_mib:.0f}",
                f"{m.lines_per_wall:,.0f}",
                f"{m.lines_per_cpu:,.0f}",
                str(m.runs),
                m.note,
            ]
        )
    return rows


def ratio_rows(results: Sequence[Measure]) -> list[list[str]]:
    rows = [["target", "bnlint cold vs", "x lines/s wall", "x lines/s cpu"]]
    for cold in (m for m in results if m.tool == "bnlint-cold"):
        for peer in ("torchfix", "flake8", "ruff"):
            other = find(results, cold.target, peer)
            if other is not None:
                wall = cold.lines_per_wall / other.lines_per_wall
                cpu = cold.lines_per_cpu / other.lines_per_cpu
                rows.append([cold.target, peer, f"{wall:.3g}", f"{cpu:.3g}"])
    return rows


def target_rows(results: Sequence[Measure]) -> list[list[str]]:
    rows = [["target", "measured", "goal", "verdict"]]
    colds = [m for m in results if m.tool == "bnlint-cold" and find(results, m.target, "torchfix")]
    for cold in colds:
        if cold.target.startswith(("file ", "no-trigger ")):
            continue
        peer = find(results, cold.target, "torchfix")
        assert peer is not None
        ratio = cold.lines_per_wall / peer.lines_per_wall
        rows.append(
            verdict(f"cold vs TorchFix, {cold.target}", ratio, f">= {TARGET_RATIO:g}x", True)
        )
    for before in (m for m in results if m.tool == "bnlint-before-catalogue"):
        if before.paired_ratio is not None:
            goal = f"<= {TARGET_CATALOGUE_COST:g}x"
            name = f"default rules / rules before #6, CPU, paired runs, {before.target}"
            rows.append(verdict(name, before.paired_ratio, goal, False))
    warm = find(results, ALL, "bnlint-warm")
    if warm is not None:
        rows.append(verdict("warm re-run, all trees", warm.wall, f"< {TARGET_WARM_S:g} s", False))
    for m in results:
        if m.tool != "bnlint-cold":
            continue
        if m.target.startswith("file "):
            rows.append(verdict(f"{m.target}, wall", m.wall, f"< {TARGET_BN_FILE_S:g} s", False))
        if m.target.startswith("no-trigger "):
            goal = f"< {TARGET_NO_TRIGGER_S:g} s"
            rows.append(verdict(f"{m.target}, wall", m.wall, goal, False))
    return rows


def verdict(name: str, value: float, goal: str, at_least: bool) -> list[str]:
    """`goal` is "<op> <limit>[x]"; a limit ending in x is a ratio, else seconds."""
    limit_text = goal.split()[1]
    limit = float(limit_text.rstrip("x"))
    ok = value >= limit if at_least else value <= limit if goal.startswith("<=") else value < limit
    shown = f"{value:.2f}x" if limit_text.endswith("x") else f"{value:.3f} s"
    return [name, shown, goal, "PASS" if ok else "MISS"]


def render(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def render_mapping(title: str, mapping: dict[str, str], markdown: bool) -> str:
    if markdown:
        return f"**{title}:** " + "; ".join(f"{k} {v}" for k, v in mapping.items())
    return f"{title}:\n" + "\n".join(f"  {k:<22} {v}" for k, v in mapping.items())


def report(results: Sequence[Measure], info: dict[str, dict[str, str]], markdown: bool) -> str:
    parts = [render_mapping(title, mapping, markdown) for title, mapping in info.items()]
    for title, rows in (
        ("Measurements (median of runs)", measure_rows(results)),
        ("Ratios: bnlint cold throughput / peer throughput", ratio_rows(results)),
        ("Targets", target_rows(results)),
    ):
        if len(rows) > 1:
            parts.append(("### " if markdown else "") + title)
            parts.append(render(rows, markdown))
    return "\n\n".join(parts) + "\n"


# ------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--bnlint", type=Path, default=DEFAULT_BNLINT, help="bnlint executable")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--slow-repeat", type=int, help="runs for TorchFix and flake8 (default: --repeat)"
    )
    parser.add_argument(
        "--only", default=",".join(CORPUS_PINS), help="comma-separated packages to use"
    )
    parser.add_argument(
        "--tools",
        default="bnlint-cold,bnlint-warm,bnlint-before-catalogue,torchfix,flake8,ruff",
        help="comma-separated tools to run",
    )
    parser.add_argument("--latest", action="store_true", help="ignore the version pins")
    parser.add_argument("--no-single-file", action="store_true", help="skip single-file runs")
    parser.add_argument(
        "--measure-all-slow",
        action="store_true",
        help="really run TorchFix/flake8 on all trees at once instead of summing per-tree runs",
    )
    parser.add_argument(
        "--warm-all-only", action="store_true", help="time warm re-runs only on all trees"
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument(
        "--json", type=Path, help="also write raw measurements here, after each one"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the measurements already in --json"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="only re-print the report of runs saved with --json (later files win)",
    )
    parser.add_argument(
        "--wild",
        action="store_true",
        help="only time whole real repositories (bench/wild_trees.py): cold, warm, slowest file",
    )
    parser.add_argument(
        "--wild-only", default="", help="comma-separated owner/name of the wild trees to time"
    )
    parser.add_argument(
        "--wild-scratch", type=Path, default=Path(tempfile.gettempdir()) / "bnlint-wild"
    )
    args = parser.parse_args(argv)
    if args.slow_repeat is None:
        args.slow_repeat = args.repeat
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wild:
        import wild_trees

        only = {name for name in args.wild_only.split(",") if name}
        return wild_trees.main(args.bnlint, only, args.wild_scratch)
    if args.from_json:
        info, results = merge_results([load_results(path) for path in args.from_json])
        add_slow_sums(results, [n for n in CORPUS_PINS if find(results, n, "bnlint-cold")])
        print(report(results, info, args.markdown))
        return 0
    cache: Path = args.cache_dir.expanduser().resolve()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(CORPUS_PINS)
    if unknown:
        sys.exit(f"unknown package(s): {', '.join(sorted(unknown))}")
    selected = {t for t in args.tools.split(",") if t}
    progress("preparing corpus and peers")
    trees = prepare_corpus(cache, names, args.latest)
    peers = prepare_peers(cache) if selected & {"torchfix", "flake8", "ruff"} else None
    bnlint = find_bnlint(args.bnlint) if any(t.startswith("bnlint") for t in selected) else None
    if bnlint is None and any(t.startswith("bnlint") for t in selected):
        progress(f"bnlint not runnable ({args.bnlint} check --help failed): peers only")
    tools = Tools(bnlint=bnlint, peers=peers, selected=selected)

    info = {"Machine": machine(), "Versions": versions(tools, trees)}
    results: list[Measure] = []
    if args.resume and args.json and args.json.exists():
        info, results = load_results(args.json)

    def save() -> None:
        if args.json:
            save_results(args.json, info, results)

    jobs = plan(tools, cache, trees, args)
    run_jobs(tools, jobs, results, save, args.repeat, args.slow_repeat)
    add_slow_sums(results, list(trees))
    save()
    print(report(results, info, args.markdown))
    return 0


def save_results(path: Path, info: dict[str, dict[str, str]], results: Sequence[Measure]) -> None:
    raw = [dict(vars(m), stats=vars(m.stats)) for m in results]
    path.write_text(json.dumps({"info": info, "results": raw}, indent=2) + "\n")


def merge_results(
    runs: Sequence[tuple[dict[str, dict[str, str]], list[Measure]]],
) -> tuple[dict[str, dict[str, str]], list[Measure]]:
    """One report from several saved runs; a later run's (target, tool) replaces an
    earlier one's, and the info sections are all kept."""
    merged: dict[tuple[str, str], Measure] = {}
    info: dict[str, dict[str, str]] = {}
    for index, (run_info, results) in enumerate(runs, start=1):
        for title, mapping in run_info.items():
            info[f"{title} (run {index})" if len(runs) > 1 else title] = mapping
        merged.update({(m.target, m.tool): m for m in results})
    return info, list(merged.values())


def load_results(path: Path) -> tuple[dict[str, dict[str, str]], list[Measure]]:
    data = json.loads(path.read_text())
    results = [Measure(**{**raw, "stats": CorpusStats(**raw["stats"])}) for raw in data["results"]]
    return data["info"], results


if __name__ == "__main__":
    raise SystemExit(main())
