"""No worker outlives `bnlint check`: SIGTERM, SIGINT or SIGKILL of the bnlint process
alone (as `timeout`, pre-commit, CI cancellation and editors send) leaves no process
behind. A real subprocess, real signals; the workers are made to spin forever so that
only their death with the parent can stop them (issue 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process table in /proc"
)

# Runs `bnlint check` with every file's lint spinning forever in the workers; each
# worker writes its pid to the marker folder when it starts spinning.
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import bnlint.engine.lint

    markers = Path(sys.argv[2])

    def spin(*args, **kwargs):
        (markers / str(os.getpid())).touch()
        while True:
            pass

    bnlint.engine.lint.lint_text = spin
    # Python ignores SIGINT in a process started with it ignored: restore the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from bnlint.cli import main

    sys.argv = ["bnlint", "check", "--no-cache", sys.argv[1]]
    main()
    """
)

MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
            self.bn = nn.BatchNorm2d(channels)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))


    def evaluate(model, loader):
        with torch.no_grad():
            return [model(x) for x in loader]
    """
)


def _alive(pid: int) -> bool:
    """Running, or stopped: anything but gone or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def big_project(tmp_path: Path) -> Path:
    """Enough source (600 kB over four files) for bnlint to start its worker pool."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.bnlint]\nfile-time-budget = 0\n")
    padding = "# " + "x" * 78 + "\n"
    for number in range(4):
        (project / f"model{number}.py").write_text(MODEL + padding * 1900)
    return project


@pytest.mark.parametrize(
    "sent", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda sent: sent.name
)
def test_workers_die_when_the_bnlint_process_is_signalled(
    big_project: Path, tmp_path: Path, sent: signal.Signals
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    parent = subprocess.Popen(
        [sys.executable, str(driver), str(big_project), str(markers)],
        cwd=big_project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # only the bnlint process is signalled, as editors do
    )
    try:
        assert _wait_for(lambda: len(list(markers.iterdir())) >= 2, 60), "no worker spun"
        workers = [int(marker.name) for marker in markers.iterdir()]
        assert all(_alive(pid) for pid in workers)

        os.kill(parent.pid, sent)
        status = parent.wait(timeout=30)
        if sent == signal.SIGINT:
            assert status == 130, "an interrupted check exits 130, not 1 (findings)"

        assert _wait_for(lambda: not any(_alive(pid) for pid in workers), 10), (
            f"workers left behind after {sent.name}: {[pid for pid in workers if _alive(pid)]}"
        )
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if _group_alive(parent.pid):  # a failed run: leave nothing spinning
            os.killpg(parent.pid, signal.SIGKILL)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
