"""CPU cost of this bnlint against an earlier bnlint, on the same trees, in pairs.

Why: a change to the program model (issue 10) may make every file dearer to check, and
this machine's speed drifts by tens of percent over minutes, so two medians taken apart
compare the drift, not the code. Each pair runs the baseline and the candidate back to
back (cold: `--no-cache`, default rules, the whole tree) and the ratio of their CPU
seconds (user + sys of the child, from `os.wait4`) is kept; the median of the pairs is
the figure.

Set up the baseline once as its own checkout and venv, for example:

    git worktree add --detach ../wt-base <commit>
    python3 -m venv ../wt-base/.venv && ../wt-base/.venv/bin/pip install -e ../wt-base

then:

    .venv/bin/python bench/cost_vs_baseline.py --baseline ../wt-base/.venv/bin/bnlint \
        --pairs 5 [TREE ...]

Trees default to the unpacked wheels of `bench/throughput.py` (timm, torchvision,
ultralytics under ~/.cache/bnlint-bench/src).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_TREES = sorted((Path.home() / ".cache" / "bnlint-bench" / "src").glob("*"))
TARGET_RATIO = 1.3


def cpu_seconds(bnlint: str, tree: Path) -> tuple[float, float]:
    """(CPU, wall) seconds of one cold default-rules run over `tree`."""
    argv = [bnlint, "check", "--no-cache", "--exit-zero", "--quiet", "."]
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{bnlint} failed on {tree}: {process.stderr.read().decode()[-300:]}")  # type: ignore[union-attr]
    return usage.ru_utime + usage.ru_stime, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the earlier bnlint executable")
    parser.add_argument(
        "--candidate", default=str(Path(sys.executable).parent / "bnlint"), help="this bnlint"
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("trees", nargs="*", type=Path, default=DEFAULT_TREES)
    args = parser.parse_args()
    ratios: list[float] = []
    for pair in range(args.pairs):
        base_cpu = candidate_cpu = 0.0
        for tree in args.trees:
            base_cpu += cpu_seconds(args.baseline, tree)[0]
            candidate_cpu += cpu_seconds(args.candidate, tree)[0]
        ratios.append(candidate_cpu / base_cpu)
        print(
            f"pair {pair + 1}: baseline {base_cpu:.2f} CPU-s, candidate {candidate_cpu:.2f} "
            f"CPU-s, ratio {ratios[-1]:.2f}"
        )
    median = statistics.median(ratios)
    verdict = "PASS" if median <= TARGET_RATIO else "MISS"
    trees = ", ".join(tree.name for tree in args.trees)
    print(f"cold CPU, candidate / baseline, median of {len(ratios)} pairs over {trees}:")
    print(f"  {median:.2f}x (target <= {TARGET_RATIO}x) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
