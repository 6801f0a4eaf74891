"""Run bnlint over the precision repositories of `../shared/wild/precision-repos.txt`.

Each repository is exported at its pinned commit the way `../shared/wild/score.py` does
(its `.py`/`.ipynb`/`pyproject.toml` files only) and checked as a whole tree with the
default rules, cold. The findings are printed one per line, grouped by rule, so that each
can be given a verdict (TP / HARMLESS / FP) in `bench/PRECISION.md`.

Usage: python bench/wild_precision.py [--bnlint CMD] [--select CODES] [--repos a/b,c/d]
                                      [--json OUT]
Needs MIRROR (default /work/.mirror) to hold the fetched snapshots; missing ones are
listed and skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
WILD = HERE.parent.parent / "shared" / "wild"


def _score_module() -> object:
    """score.py's export_tree, reused so that both runs see the same trees."""
    spec = importlib.util.spec_from_file_location("wild_score", WILD / "score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bnlint", default=str(Path(sys.executable).parent / "bnlint"))
    parser.add_argument("--select", default="")
    parser.add_argument("--repos", default="")
    parser.add_argument("--json")
    args = parser.parse_args()
    mirror = os.environ.get("MIRROR", "/work/.mirror")
    export_tree = _score_module().export_tree  # type: ignore[attr-defined]
    scratch = Path(tempfile.gettempdir()) / "bnlint-wild-precision"
    wanted = set(filter(None, args.repos.split(",")))
    rows: list[dict[str, object]] = []
    codes: Counter[str] = Counter()
    for line in (WILD / "precision-repos.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        repo, commit = line.split()[:2]
        if wanted and repo not in wanted:
            continue
        root, error = export_tree(mirror, repo, commit, scratch)
        if error:
            print(f"{repo}: skipped ({error})")
            continue
        argv = [*shlex.split(args.bnlint), "check", "--format", "json", "--no-cache"]
        argv += ["--exit-zero", *(["--select", args.select] if args.select else []), "."]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - start
        try:
            findings = json.loads(done.stdout or "[]")
        except json.JSONDecodeError:
            print(f"{repo}: bnlint failed: {done.stderr.strip()[-300:]}")
            continue
        print(f"{repo}: {len(findings)} findings, {seconds:.1f}s")
        for finding in findings:
            codes[finding["code"]] += 1
            print(
                f"  {finding['code']} {finding['filename']}:{finding['location']['row']}:"
                f"{finding['location']['column']} {finding['severity']} {finding['message'][:200]}"
            )
            rows.append({"repo": repo, **finding})
    print("by rule: " + ", ".join(f"{code} {n}" for code, n in sorted(codes.items())))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
