from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bnlint.cli import main
from bnlint.engine.lint import lint_text
from bnlint.finding import Finding
from bnlint.index import ProjectIndex
from bnlint.registry import all_rules

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def lint(source: str, codes: Sequence[str], path: str = "sample.py") -> list[Finding]:
    """Findings of the given rules on `source`, as the engine produces them."""
    from bnlint.config import RULE_OPTIONS

    rules = [all_rules()[code] for code in codes]
    return lint_text(path, source, rules, ProjectIndex.empty(), dict(RULE_OPTIONS))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """An empty project directory (marked by pyproject.toml) as the working directory."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'sample'\n")
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def run_cli(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
