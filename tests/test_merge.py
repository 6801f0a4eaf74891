"""Merging a runtime report into static findings (`bnlint check --runtime-report`)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bnlint.finding import Applicability, Finding, Fix, Position, Severity, Source
from bnlint.merge import RuntimeReportError, merge_runtime, read_runtime_report


def finding(
    code: str,
    line: int,
    *,
    path: str = "train.py",
    source: Source = Source.STATIC,
    column: int = 5,
    count: int = 1,
    notes: tuple[str, ...] = (),
) -> Finding:
    return Finding(
        code=code,
        name="eval-mode-missing",
        severity=Severity.ERROR,
        path=path,
        start=Position(line, column),
        end=Position(line, column + 10),
        message=f"{code} at {line}",
        suggestion="call `model.eval()`",
        fix=None if source is Source.RUNTIME else Fix(Applicability.UNSAFE, (), "Insert eval()"),
        source=source,
        count=count,
        notes=notes,
    )


def runtime(code: str, line: int, **kwargs: object) -> Finding:
    return finding(code, line, source=Source.RUNTIME, column=1, **kwargs)  # type: ignore[arg-type]


def test_same_code_at_the_same_line_becomes_one_confirmed_finding() -> None:
    static = finding("BN002", 12)
    seen = runtime("BN002", 12, count=40, notes=("module `1` (BatchNorm1d) built at m.py:3",))
    (merged,) = merge_runtime([static], [seen])
    assert merged.confirmed_at_runtime
    assert merged.source is Source.STATIC
    assert merged.fix == static.fix  # the static fix survives
    assert merged.start == static.start  # and its exact column
    assert merged.count == 40
    assert "module `1` (BatchNorm1d) built at m.py:3" in merged.notes


def test_other_code_other_line_or_other_file_stay_separate() -> None:
    static = [finding("BN002", 12)]
    seen = [runtime("BN003", 12), runtime("BN002", 13), runtime("BN002", 12, path="eval.py")]
    merged = merge_runtime(static, seen)
    assert len(merged) == 4
    assert not any(f.confirmed_at_runtime for f in merged)


def test_relative_and_absolute_paths_of_one_file_match() -> None:
    static = finding("BN002", 12, path="src/train.py")
    seen = runtime("BN002", 12, path=str(Path("src/train.py").resolve()))
    (merged,) = merge_runtime([static], [seen])
    assert merged.confirmed_at_runtime


def test_several_runtime_findings_at_one_location_confirm_once() -> None:
    merged = merge_runtime([finding("BN002", 12)], [runtime("BN002", 12, count=2)] * 2)
    (confirmed,) = merged
    assert confirmed.count == 4


def test_runtime_only_findings_are_kept_and_the_list_is_sorted() -> None:
    merged = merge_runtime([finding("BN004", 30)], [runtime("BN014", 3), runtime("BN021", 40)])
    assert [(f.code, f.start.line) for f in merged] == [("BN014", 3), ("BN004", 30), ("BN021", 40)]
    assert [f.source for f in merged] == [Source.RUNTIME, Source.STATIC, Source.RUNTIME]


def test_selection_filters_runtime_findings_but_keeps_internal_errors() -> None:
    seen = [runtime("BN002", 1), runtime("BN021", 2), runtime("BN999", 3)]
    merged = merge_runtime([], seen, codes={"BN002"})
    assert [f.code for f in merged] == ["BN002", "BN999"]


def test_report_round_trips_through_json(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    seen = [runtime("BN002", 12, count=3, notes=("a note",))]
    report.write_text(json.dumps([f.to_json() for f in seen]), encoding="utf-8")
    assert read_runtime_report(report) == seen


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{not json", "not a JSON runtime report"), ('{"a": 1}', "JSON array"), ("[{}]", "#1")],
)
def test_unreadable_report_is_an_error_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    report = tmp_path / "report.json"
    report.write_text(text, encoding="utf-8")
    with pytest.raises(RuntimeReportError, match=problem) as error:
        read_runtime_report(report)
    assert str(report) in str(error.value)


# -- end to end: bnlint run, then bnlint check --runtime-report ---------------------------

SCRIPT = """\
import torch
from torch import nn


def evaluate(model, batches):
    with torch.no_grad():
        return [model(x) for x in batches]


model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
evaluate(model, [torch.randn(3, 4)])
"""


def bnlint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnlint", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_check_with_runtime_report_marks_the_static_finding_confirmed(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "pyproject.toml").write_text("[tool.bnlint]\n", encoding="utf-8")
    (tmp_path / "evaluate.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    ran = bnlint("run", "--format", "json", "-o", "report.json", "evaluate.py", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    runtime_codes = {(f["code"], f["location"]["row"]) for f in report}
    assert ("BN002", 7) in runtime_codes
    checked = bnlint(
        "check", "--format", "json", "--runtime-report", "report.json", "evaluate.py", cwd=tmp_path
    )
    findings = json.loads(checked.stdout)
    bn002 = [f for f in findings if f["code"] == "BN002"]
    assert len(bn002) == 1
    assert bn002[0]["source"] == "static"
    assert bn002[0]["confirmed_at_runtime"] is True
    assert bn002[0]["location"]["row"] == 7


def test_check_with_a_missing_runtime_report_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    done = bnlint("check", "--runtime-report", "missing.json", "a.py", cwd=tmp_path)
    assert done.returncode == 2
    assert "missing.json" in done.stderr


# -- merge_ranks: one report from the ranks of a torchrun run -----------------------------


def test_same_finding_on_several_ranks_is_one_finding_naming_them() -> None:
    from bnlint.merge import merge_ranks

    on_both = finding("BN002", 10, source=Source.RUNTIME, count=3)
    only_two = finding("BN003", 20, source=Source.RUNTIME)
    merged = merge_ranks({0: [on_both], 1: [on_both], 2: [on_both, only_two]}, world_size=3)
    assert [(f.code, f.count) for f in merged] == [("BN002", 9), ("BN003", 1)]
    assert merged[0].notes[-1] == "seen on ranks 0, 1, 2 of 3"
    assert merged[1].notes[-1] == "seen on rank 2 of 3"


def test_missing_ranks_mark_the_report_partial() -> None:
    from bnlint.merge import merge_ranks

    merged = merge_ranks(
        {0: [finding("BN002", 10, source=Source.RUNTIME)]},
        world_size=4,
        missing={3: "no report within 60 s", 1: "no report within 60 s"},
    )
    (partial,) = [f for f in merged if f.code == "BN998"]
    assert partial.message.startswith("partial report: ranks 1, 3 of 4 sent no report")
    assert merge_ranks({0: [], 1: []}, world_size=2) == []
