"""A file that exceeds its time budget is reported (BN999, naming it) and skipped; the
other files' findings are those of a run without it. The slow rule is injected: one
rule spins forever on one file, in one process and in the worker pool."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import bnlint.engine.pool
from bnlint.config import Selection, load_settings
from bnlint.engine.run import check_paths
from bnlint.finding import Finding
from bnlint.registry import rule_class
from bnlint.rule import Rule
from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def _check(project: Path) -> list[Finding]:
    settings = load_settings(project)
    enabled = settings.enabled_codes(Selection())
    return check_paths([project], settings, enabled, cwd=project, use_cache=False).findings


def _spin_on_slow_file(self: Rule) -> None:
    """A rule that spins for a minute on `slow.py` (and is silent elsewhere): without
    the budget the test fails, slowly, rather than hanging."""
    if self.context.path.endswith("slow.py"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pass


@pytest.fixture
def training_project(project: Path) -> Path:
    """The bundled example (a model and its training script, four findings) and a copy
    of the training script as `slow.py`; a budget of one second per file."""
    (project / "pyproject.toml").write_text("[tool.bnlint]\nfile-time-budget = 1\n")
    shutil.copy(EXAMPLES / "model.py", project / "model.py")
    shutil.copy(EXAMPLES / "train.py", project / "train.py")
    shutil.copy(EXAMPLES / "train.py", project / "slow.py")
    return project


@pytest.mark.parametrize("pool", [False, True], ids=["one-process", "worker-pool"])
def test_file_over_its_budget_is_reported_and_the_other_findings_are_intact(
    training_project: Path, monkeypatch: pytest.MonkeyPatch, pool: bool
) -> None:
    untouched = _check(training_project)
    assert any(f.path == "slow.py" for f in untouched)
    if pool:
        monkeypatch.setattr(bnlint.engine.pool, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(rule_class("BN007"), "check_module", _spin_on_slow_file, raising=False)

    findings = _check(training_project)

    skipped = [f for f in findings if f.path == "slow.py"]
    assert [(f.code, f.message) for f in skipped] == [
        ("BN999", "bnlint spent more than 1 s of CPU time on this file and skipped it")
    ]
    assert [f for f in findings if f.path != "slow.py"] == [
        f for f in untouched if f.path != "slow.py"
    ]


def test_budget_of_zero_means_no_limit(training_project: Path) -> None:
    (training_project / "pyproject.toml").write_text("[tool.bnlint]\nfile-time-budget = 0\n")
    assert not any(f.code == "BN999" for f in _check(training_project))
