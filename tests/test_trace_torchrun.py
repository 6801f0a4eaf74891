"""`bnlint run` under torchrun: two real processes on CPU (gloo), one merged report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

SCRIPT = textwrap.dedent(
    """\
    import sys
    import time
    from pathlib import Path

    import torch
    import torch.distributed as dist
    from torch import nn

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(rank)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(16, 4)
    with torch.no_grad():
        model(x)  # every rank: BatchNorm in training mode under no_grad
    if rank == 1:
        probe = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8))
        with torch.no_grad():
            probe(x)  # rank 1 only
    scenario = sys.argv[1]
    if scenario == "crash" and rank == 1:
        raise RuntimeError("rank 1 lost its data shard")
    if scenario == "killed" and rank == 1:
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer: no report from rank 1
    if scenario == "hang" and rank == 1:
        deadline = time.monotonic() + 120
        while not Path(sys.argv[2]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    if scenario != "hang":
        dist.barrier()
    dist.destroy_process_group()
    """
)
EVERY_RANK_LINE = 15
RANK_ONE_LINE = 19
REPORT = ("--format", "json", "--select", "BN002", "-o", "report.json")


def write_script(directory: Path) -> Path:
    script = directory / "train.py"
    script.write_text(SCRIPT)
    return script


def environment() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("BNLINT_RANK_DIR", None)
    return env


def torchrun(*bnlint_run_args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "bnlint",
        "run",
        *bnlint_run_args,
    ]


def by_line(report: list[dict[str, Any]], code: str) -> dict[int, dict[str, Any]]:
    return {item["location"]["row"]: item for item in report if item["code"] == code}


def test_nproc_per_node_writes_one_report_naming_the_ranks(tmp_path: Path) -> None:
    write_script(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bnlint", "run", "--nproc-per-node", "2", *REPORT, "train.py", "ok"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    found = by_line(report, "BN002")
    assert set(found) == {EVERY_RANK_LINE, RANK_ONE_LINE}
    assert "seen on ranks 0, 1 of 2" in found[EVERY_RANK_LINE]["notes"]
    assert found[EVERY_RANK_LINE]["count"] == 2
    assert "seen on rank 1 of 2" in found[RANK_ONE_LINE]["notes"]
    assert not [item for item in report if item["code"] == "BN998"]
    assert not list(tmp_path.glob("rank-*.json"))


def test_crashed_rank_still_gets_a_merged_report(tmp_path: Path) -> None:
    write_script(tmp_path)
    done = subprocess.run(
        torchrun(*REPORT, "--rank-timeout", "20", "train.py", "crash"),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "rank 1 lost its data shard" in done.stderr
    found = by_line(json.loads((tmp_path / "report.json").read_text()), "BN002")
    assert "seen on ranks 0, 1 of 2" in found[EVERY_RANK_LINE]["notes"]
    assert "seen on rank 1 of 2" in found[RANK_ONE_LINE]["notes"]


def test_killed_rank_is_named_in_the_report_without_waiting_for_it(tmp_path: Path) -> None:
    write_script(tmp_path)
    done = subprocess.run(
        torchrun(*REPORT, "--rank-timeout", "600", "train.py", "killed"),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    report = json.loads((tmp_path / "report.json").read_text())
    (partial,) = [item for item in report if item["code"] == "BN998"]
    # Not the 600 s timeout: rank 0 saw that rank 1's process had ended.
    assert "rank 1: its process ended without a report" in partial["message"]
    assert "seen on rank 0 of 2" in by_line(report, "BN002")[EVERY_RANK_LINE]["notes"]


def test_hung_rank_does_not_block_a_partial_report(tmp_path: Path) -> None:
    write_script(tmp_path)
    release = tmp_path / "release"
    env = dict(environment(), BNLINT_RANK_DIR=str(tmp_path / "ranks"))
    process = subprocess.Popen(
        torchrun(*REPORT, "--rank-timeout", "2", "train.py", "hang", str(release)),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        report_file = tmp_path / "report.json"
        deadline = time.monotonic() + 120
        while not report_file.exists() and time.monotonic() < deadline:
            assert process.poll() is None, "torchrun ended before rank 0 reported"
            time.sleep(0.2)
        report = json.loads(report_file.read_text())
        assert process.poll() is None  # rank 1 is still hanging: it did not block rank 0
    finally:
        release.touch()
        process.wait(timeout=120)
    (partial,) = [item for item in report if item["code"] == "BN998"]
    assert "rank 1 of 2 sent no report" in partial["message"]
    found = by_line(report, "BN002")
    assert set(found) == {EVERY_RANK_LINE}
    assert "seen on rank 0 of 2" in found[EVERY_RANK_LINE]["notes"]
