"""`bnlint run`: the script runs as with `python`, and the report is written however
it ends."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

from bnlint.trace.run import run

SCRIPT = """\
import sys
import torch
from torch import nn

print("argv:", sys.argv[1:])
model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
with torch.no_grad():
    model(torch.randn(3, 4))
{ending}
"""


def script(tmp_path: Path, ending: str = "") -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.format(ending=textwrap.dedent(ending)), encoding="utf-8")
    return path


def bnlint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnlint", "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_script_keeps_its_argv_output_and_exit_code(tmp_path: Path) -> None:
    path = script(tmp_path, "sys.exit(3)")
    done = bnlint("--format", "json", str(path), "--epochs", "2", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout == "argv: ['--epochs', '2']\n"
    (finding,) = json.loads(done.stderr)
    assert finding["code"] == "BN002"
    assert finding["location"]["row"] == 8
    assert finding["source"] == "runtime"


def test_report_is_written_when_the_script_crashes_on_a_batch_of_one(tmp_path: Path) -> None:
    path = script(tmp_path, "model(torch.randn(1, 4))")
    report = tmp_path / "report.json"
    done = bnlint("--format", "json", "-o", str(report), str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert "ValueError: Expected more than 1 value per channel" in done.stderr
    assert "bnlint" not in done.stderr.split("Traceback")[1].splitlines()[1]
    codes = sorted(finding["code"] for finding in json.loads(report.read_text()))
    assert codes == ["BN002", "BN003"]


def test_fail_on_findings_sets_the_exit_code_only_when_asked(tmp_path: Path) -> None:
    path = script(tmp_path)
    assert bnlint(str(path), cwd=tmp_path).returncode == 0
    done = bnlint("--fail-on-findings", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert "train.py:8:1: BN002" in done.stderr


def test_module_runs_with_dash_m(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "trainer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(SCRIPT.format(ending="sys.exit(0)"))
    monkeypatch.chdir(tmp_path)
    result = run("trainer.main", ["x"], module=True, select=["BN002"])
    assert result.exit_code == 0
    assert [finding.code for finding in result.findings] == ["BN002"]
    assert "trainer.main" not in sys.modules or sys.modules["__main__"].__name__ == "__main__"


def test_interrupt_still_reports(tmp_path: Path) -> None:
    path = script(tmp_path, "raise KeyboardInterrupt")
    result = run(str(path), [])
    assert result.exit_code == 130
    assert [finding.code for finding in result.findings] == ["BN002"]


def test_unknown_rule_selector_is_a_usage_error(tmp_path: Path) -> None:
    done = bnlint("--select", "BN9x", str(script(tmp_path)), cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown rule selector" in done.stderr


def test_transductive_batchnorm_in_the_project_config_silences_bn002(tmp_path: Path) -> None:
    path = script(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        "[tool.bnlint]\ntransductive-batchnorm = true\n", encoding="utf-8"
    )
    done = bnlint("--format", "json", str(path), cwd=tmp_path)
    assert done.returncode == 0
    assert json.loads(done.stderr) == []


def test_transductive_option_disables_bn002_bn005_bn012_in_the_tracer() -> None:
    from bnlint.trace import trace

    tracer = trace(options={"transductive-batchnorm": True})
    assert not {"BN002", "BN005", "BN012"} & set(tracer._rule_names)
    assert {"BN002", "BN005"} <= set(trace()._rule_names)
