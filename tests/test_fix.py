"""`--fix`, `--unsafe-fixes` and `--diff`: fixes are exact, atomic, idempotent, never
leave a file unparsable, and keep the file's encoding, BOM, line endings and mode."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_cli

BAD = (
    "import torch\n\n"
    "def validate(model, loader):\n"
    "    model.eval\n"
    "    return [model(x) for x in loader]\n"
)
FIXED = BAD.replace("model.eval\n", "model.eval()\n")
MOMENTUM = "from torch import nn\n\nbn = nn.BatchNorm2d(64, momentum=0.9)\n"


def test_fix_applies_the_safe_fix_exactly(project: Path) -> None:
    (project / "m.py").write_text(BAD)
    result = run_cli("check", "--fix")
    assert (project / "m.py").read_text() == FIXED
    assert result.exit_code == 0
    assert "Fixed 1 finding; 0 findings (0 fixable) in 1 file remain" in result.output


def test_unsafe_fix_needs_unsafe_fixes(project: Path) -> None:
    (project / "m.py").write_text(MOMENTUM)
    assert run_cli("check", "--fix", "--select", "BN010").exit_code == 1
    assert (project / "m.py").read_text() == MOMENTUM
    assert run_cli("check", "--fix", "--unsafe-fixes", "--select", "BN010").exit_code == 0
    assert "momentum=0.1" in (project / "m.py").read_text()


def test_diff_prints_the_change_and_writes_nothing(project: Path) -> None:
    (project / "m.py").write_text(BAD)
    result = run_cli("check", "--diff")
    assert result.exit_code == 1
    assert "-    model.eval\n+    model.eval()\n" in result.output
    assert "--- a/m.py" in result.output
    assert (project / "m.py").read_text() == BAD


def test_diff_with_nothing_to_fix_exits_zero(project: Path) -> None:
    (project / "m.py").write_text(FIXED)
    result = run_cli("check", "--diff")
    assert (result.exit_code, result.stdout) == (0, "")


def test_fix_keeps_crlf_bom_and_declared_encoding(project: Path) -> None:
    original = (
        b"\xef\xbb\xbf# -*- coding: utf-8 -*-\r\n"
        b"import torch\r\nname = 'caf\xc3\xa9'\r\nnet.train\r\n"
    )
    (project / "m.py").write_bytes(original)
    run_cli("check", "--fix")
    assert (project / "m.py").read_bytes() == original.replace(b"net.train", b"net.train()")


def test_fix_keeps_a_latin1_file_latin1(project: Path) -> None:
    original = b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\nnet.eval\n"
    (project / "m.py").write_bytes(original)
    run_cli("check", "--fix")
    assert (project / "m.py").read_bytes() == original.replace(b"net.eval", b"net.eval()")


def test_fix_keeps_the_file_mode(project: Path) -> None:
    (project / "m.py").write_text(BAD)
    os.chmod(project / "m.py", 0o751)
    run_cli("check", "--fix")
    assert stat.S_IMODE((project / "m.py").stat().st_mode) == 0o751


def test_failed_write_leaves_the_original_intact(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "m.py").write_text(BAD)

    def crash(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    result = run_cli("check", "--fix", "--no-cache")
    assert (project / "m.py").read_text() == BAD
    assert sorted(p.name for p in project.iterdir()) == ["m.py", "pyproject.toml"]
    assert "cannot write the fixed file" in result.output


def test_fix_that_would_not_parse_writes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bnlint.registry import all_rules
    from bnlint.rule import NodeEdit, PendingFix

    rule = all_rules()["BN007"]
    original_visit = rule.visit_Expr  # type: ignore[attr-defined]

    def broken_fix(self: object, node: object) -> None:
        original_visit(self, node)
        report = self.reports[-1]  # type: ignore[attr-defined]
        edit = NodeEdit(report.node, "after", "((")
        self.reports[-1] = type(report)(  # type: ignore[attr-defined]
            report.code,
            report.node,
            report.message,
            report.suggestion,
            PendingFix(report.fix.applicability, "break it", (edit,)),
        )

    monkeypatch.setattr(rule, "visit_Expr", broken_fix)
    (project / "m.py").write_text(BAD)
    result = run_cli("check", "--fix", "--no-cache")
    assert (project / "m.py").read_text() == BAD
    assert result.exit_code == 2
    assert "does not parse" in result.output


def test_file_that_does_not_parse_is_never_fixed(project: Path) -> None:
    source = "def broken(:\n    model.eval\n"
    (project / "m.py").write_text(source)
    run_cli("check", "--fix")
    assert (project / "m.py").read_text() == source


def test_stdin_fix_prints_the_fixed_source(project: Path) -> None:
    result = run_cli("check", "--fix", "--stdin-filename", "m.py", "-", input=BAD)
    assert result.stdout == FIXED
    assert result.exit_code == 0


def test_conflicting_fixes_on_one_line_are_applied_in_passes(project: Path) -> None:
    (project / "m.py").write_text("import torch\na.eval; b.train\n")
    run_cli("check", "--fix")
    assert (project / "m.py").read_text() == "import torch\na.eval(); b.train()\n"


def test_fix_is_idempotent_over_all_fixtures(tmp_path: Path) -> None:
    copy = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, copy)
    old = Path.cwd()
    os.chdir(copy)
    try:
        run_cli("check", "--fix", "--unsafe-fixes", "--no-cache", "--select", "ALL", ".")
        after_first = {p: p.read_bytes() for p in sorted(copy.rglob("*.py"))}
        second = run_cli("check", "--diff", "--unsafe-fixes", "--no-cache", "--select", "ALL", ".")
    finally:
        os.chdir(old)
    assert second.stdout == ""
    assert {p: p.read_bytes() for p in sorted(copy.rglob("*.py"))} == after_first
    changed = [
        p for p in after_first if after_first[p] != (FIXTURES / p.relative_to(copy)).read_bytes()
    ]
    assert changed, "the fixtures hold fixable findings, so the first pass must change files"
