"""The flake8 plugin (`flake8 --select BN`) run by the real flake8: the same findings
as `bnlint check`, line for line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bnlint.flake8_plugin import BatchNormChecker

pytestmark = pytest.mark.slow

MODEL = '''\
"""Réseau: a small classifier."""
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.bn = nn.BatchNorm2d(16, momentum=0.9)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))
'''

TRAIN = """\
import torch
import torch.nn.functional as F

from model import Net


def evaluate(model, loader):
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
    return correct


def main(loader):
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        print("précision:", evaluate(model, loader)); model.eval
        model.eval  # noqa: BN007
"""

FUNCTIONAL = """\
import torch.nn.functional as F


class AlwaysTraining:
    def forward(self, x):
        return F.batch_norm(x, self.rm, self.rv, training=True)
"""

BNLINT_LINE = re.compile(r"^(.+):(\d+):(\d+): (BN\d{3}) \[\w+\] (.*)$")
FLAKE8_LINE = re.compile(r"^(.+):(\d+):(\d+): (BN\d{3}) (.*)$")


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'sample'\n")
    (tmp_path / "model.py").write_text(MODEL, encoding="utf-8")
    (tmp_path / "train.py").write_text(TRAIN, encoding="utf-8")
    (tmp_path / "functional.py").write_text(FUNCTIONAL, encoding="utf-8")
    (tmp_path / "plain.py").write_text("def add(a, b):\n    return a + b\n")
    return tmp_path


def _flake8(cwd: Path, *args: str) -> list[tuple[str, ...]]:
    done = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    rows = _parse(done.stdout, FLAKE8_LINE)
    assert done.returncode == (1 if rows else 0), done.stdout + done.stderr
    return rows


def _bnlint(cwd: Path, *args: str) -> list[tuple[str, ...]]:
    done = subprocess.run(
        [sys.executable, "-m", "bnlint", "check", "--no-cache", "--color", "never", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    rows = _parse(done.stdout, BNLINT_LINE)
    # 1 means findings were printed; anything else (a crash is also 1) is not a report.
    assert done.returncode == (1 if rows else 0), done.stdout + done.stderr
    return rows


def _parse(output: str, pattern: re.Pattern[str]) -> list[tuple[str, ...]]:
    rows = [match.groups() for line in output.splitlines() if (match := pattern.match(line))]
    return sorted(rows, key=lambda row: (row[0], int(row[1]), int(row[2]), row[3]))


def test_flake8_reports_what_bnlint_check_reports(sample: Path) -> None:
    files = ["model.py", "train.py", "functional.py", "plain.py"]
    from_flake8 = _flake8(sample, "--select", "BN", *files)
    from_bnlint = _bnlint(sample, *files)
    assert from_flake8 == from_bnlint
    # The comparison means something: the project index (BN002 across files), a
    # column after non-ASCII text, and noqa all take part.
    assert {row[3] for row in from_flake8} == {"BN002", "BN004", "BN007", "BN010"}
    assert ("train.py", "24", "55", "BN007") in [row[:4] for row in from_flake8]
    assert not any(row[0] == "train.py" and row[1] == "25" for row in from_flake8)


def test_default_off_rule_appears_only_when_configured(sample: Path) -> None:
    assert _flake8(sample, "--select", "BN", "functional.py") == []
    (sample / "pyproject.toml").write_text(
        "[project]\nname = 'sample'\n\n[tool.bnlint]\nextend-select = ['BN012']\n"
    )
    from_flake8 = _flake8(sample, "--select", "BN", "functional.py")
    assert [row[3] for row in from_flake8] == ["BN012"]
    assert from_flake8 == _bnlint(sample, "functional.py")
    # Plain flake8 keeps a default-off rule in its default ignore list.
    assert _flake8(sample, "functional.py") == []


def test_flake8_noqa_and_ignore_apply_on_top(sample: Path) -> None:
    rows = _flake8(sample, "--select", "BN", "--extend-ignore", "BN004", "model.py")
    assert [row[3] for row in rows] == ["BN010"]


def test_file_without_trigger_word_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    import bnlint.engine.lint

    parsed: list[str] = []

    def counting_lint_text(path: str, text: str, *args: object) -> list[object]:
        parsed.append(path)
        return []

    monkeypatch.setattr(bnlint.engine.lint, "lint_text", counting_lint_text)
    plain = ["def add(a, b):\n", "    return a + b\n"]
    assert list(BatchNormChecker(None, plain, "plain.py").run()) == []  # type: ignore[arg-type]
    assert parsed == []
    triggered = ["model.eval\n"]
    list(BatchNormChecker(None, triggered, "bad.py").run())  # type: ignore[arg-type]
    assert parsed == ["bad.py"]
