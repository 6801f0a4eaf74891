"""Nothing is lost, nothing crashes: every bad input is one clear per-file finding
(BN000) and the run goes on to the next file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bnlint.engine.source import MAX_FILE_BYTES
from tests.conftest import lint, run_cli

BAD = "model.eval\n"


def _check_json(*paths: str) -> tuple[int, list[dict[str, object]]]:
    result = run_cli("check", "--no-cache", "--format", "json", *paths)
    return result.exit_code, json.loads(result.output)


def _codes_by_file(findings: list[dict[str, object]]) -> dict[str, list[str]]:
    by_file: dict[str, list[str]] = {}
    for finding in findings:
        by_file.setdefault(str(finding["filename"]), []).append(str(finding["code"]))
    return by_file


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("syntax.py", b"def validate(model:\n    model.eval\n", "syntax error"),
        ("latin1.py", b"x = '\xe9t\xe9'\nmodel.eval\n", "not valid utf-8"),
        ("binary.py", b"\x7fELF\x00\x01\x02model.eval", "NUL bytes"),
    ],
)
def test_unreadable_file_is_one_finding_and_the_run_goes_on(
    project: Path, name: str, content: bytes, reason: str
) -> None:
    (project / name).write_bytes(content)
    (project / "other.py").write_text(BAD)
    exit_code, findings = _check_json()
    assert exit_code == 1
    by_file = _codes_by_file(findings)
    assert by_file[name] == ["BN000"]
    assert by_file["other.py"] == ["BN007"]
    message = next(str(f["message"]) for f in findings if f["filename"] == name)
    assert reason.lower() in message.lower()


def test_syntax_error_is_reported_at_its_position(project: Path) -> None:
    (project / "syntax.py").write_text("import torch\n\ndef broken(:\n    model.train\n")
    _, findings = _check_json()
    assert findings[0]["location"] == {"row": 3, "column": 12}


def test_file_no_rule_would_read_is_not_parsed_so_no_syntax_error(project: Path) -> None:
    # bnlint is not a syntax checker: a file without any enabled rule's trigger word is
    # skipped before parsing (documented in the README and in BN000's docs).
    (project / "notes.py").write_text("def broken(:\n    pass\n")
    assert _check_json() == (0, [])


def test_invalid_utf8_is_reported_at_the_bad_byte(project: Path) -> None:
    (project / "latin1.py").write_bytes(b"x = 1\ny = '\xe9'\n")
    _, findings = _check_json()
    assert findings[0]["location"] == {"row": 2, "column": 6}


def test_declared_encoding_is_honoured(project: Path) -> None:
    (project / "latin1.py").write_bytes(b"# -*- coding: latin-1 -*-\nx = '\xe9'\nmodel.eval\n")
    _, findings = _check_json()
    assert [(f["code"], f["location"]) for f in findings] == [("BN007", {"row": 3, "column": 1})]


def test_empty_file_is_valid(project: Path) -> None:
    (project / "empty.py").write_bytes(b"")
    assert _check_json() == (0, [])


def test_bom_and_crlf_are_valid_with_correct_columns(project: Path) -> None:
    (project / "bom.py").write_bytes(
        b"\xef\xbb\xbfimport torch\r\n\r\n  # c\r\nif 1:\r\n    net.eval\r\n"
    )
    exit_code, findings = _check_json()
    assert exit_code == 1
    assert [(f["code"], f["location"]) for f in findings] == [("BN007", {"row": 5, "column": 5})]


def test_huge_file_is_skipped_with_a_finding(project: Path) -> None:
    line = b"x = model.eval  # padding to make a big generated file\n"
    (project / "huge.py").write_bytes(line * (MAX_FILE_BYTES // len(line) + 10))
    (project / "other.py").write_text(BAD)
    _, findings = _check_json()
    by_file = _codes_by_file(findings)
    assert by_file == {"huge.py": ["BN000"], "other.py": ["BN007"]}


def test_five_megabyte_file_does_not_stop_the_run(project: Path) -> None:
    (project / "five_mb.py").write_bytes(b"# " + b"x" * 78 + b"\n" * 1)
    with (project / "five_mb.py").open("ab") as stream:
        stream.write((b"value = 1  # .train\n") * (5 * 2**20 // 20))
    (project / "other.py").write_text(BAD)
    exit_code, findings = _check_json()
    assert exit_code == 1
    assert _codes_by_file(findings)["other.py"] == ["BN007"]


def test_deeply_nested_expression_does_not_crash(project: Path) -> None:
    (project / "deep.py").write_text("x = " + "(" * 1000 + "1" + ")" * 1000 + "\nmodel.eval\n")
    (project / "minus.py").write_text("y = " + "-" * 1000 + "1\nnet.train\n")
    exit_code, findings = _check_json()
    assert exit_code == 1
    for finding in findings:
        assert finding["code"] in ("BN000", "BN007")
    assert "BN007" in _codes_by_file(findings).get("minus.py", []) + _codes_by_file(findings).get(
        "deep.py", []
    )


def test_unreadable_file_is_one_finding(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "secret.py").write_text(BAD)
    (project / "other.py").write_text(BAD)
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "secret.py":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    exit_code, findings = _check_json()
    assert exit_code == 1
    assert _codes_by_file(findings) == {"other.py": ["BN007"], "secret.py": ["BN000"]}
    assert "Permission denied" in str(findings[1]["message"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission_is_one_finding(project: Path) -> None:
    secret = project / "secret.py"
    secret.write_text(BAD)
    secret.chmod(0)
    _, findings = _check_json()
    assert _codes_by_file(findings) == {"secret.py": ["BN000"]}


def test_symlink_loop_is_one_finding(project: Path) -> None:
    (project / "loop_a.py").symlink_to(project / "loop_b.py")
    (project / "loop_b.py").symlink_to(project / "loop_a.py")
    (project / "other.py").write_text(BAD)
    exit_code, findings = _check_json("loop_a.py", "other.py")
    assert exit_code == 1
    assert _codes_by_file(findings) == {"loop_a.py": ["BN000"], "other.py": ["BN007"]}


def test_symlink_loop_of_directories_is_walked_once(project: Path) -> None:
    (project / "pkg").mkdir()
    (project / "pkg" / "bad.py").write_text(BAD)
    (project / "pkg" / "again").symlink_to(project / "pkg")
    _, findings = _check_json()
    assert _codes_by_file(findings) == {"pkg/bad.py": ["BN007"]}


def test_a_rule_that_raises_is_reported_and_others_still_run(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bnlint.registry import all_rules

    rule = all_rules()["BN007"]

    def explode(self: object, node: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(rule, "visit_Expr", explode)
    (project / "bad.py").write_text(BAD)
    result = run_cli("check", "--no-cache", "--format", "json")
    assert result.exit_code == 2
    findings = json.loads(result.output)
    assert [f["code"] for f in findings] == ["BN999"]
    assert "BN007" in findings[0]["message"] and "KeyError" in findings[0]["message"]


def test_rule_failure_is_isolated_within_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    findings = lint("model.eval\n", ["BN007"])
    assert [f.code for f in findings] == ["BN007"]
