"""bnlint's static rules inside flake8: `flake8 --select BN`.

Registered as the `flake8.extension` entry point `BN`. Each file goes through the same
engine, configuration (`[tool.bnlint]` found from the file's path) and project index
as `bnlint check`, so codes, lines, columns and messages are the same; flake8 then
applies its own `--select`/`--ignore`/`# noqa` on top. Rules that are off by default
in bnlint are added to flake8's default ignore list, so they appear only when a
flake8 selection names them and the bnlint configuration enables them.

flake8 has already parsed the file with `ast`; bnlint needs libcst, so the plugin
parses a second time, but only files that contain one of the enabled rules' trigger
words (the others cost a substring search).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bnlint import __version__
from bnlint.config import Selection, Settings
from bnlint.engine.buffer import check_buffer, settings_for
from bnlint.registry import all_rules

# flake8 names the buffer "stdin" (or "-") when it reads standard input without
# `--stdin-display-name`.
_STDIN_NAMES = ("stdin", "-")


@functools.cache
def _settings(directory: Path, cwd: Path) -> tuple[Settings, frozenset[str]]:
    settings = settings_for(directory, cwd)
    return settings, settings.enabled_codes(Selection())


class BatchNormChecker:
    """The flake8 checker: `run()` yields `(line, column, "BNxxx message", type)` with a
    1-based line and a 0-based column (flake8 adds 1 when it prints)."""

    name = "bnlint"
    version = __version__

    def __init__(self, tree: ast.AST, lines: Sequence[str], filename: str) -> None:
        # `tree` is requested only so flake8 runs this as a per-file (AST) plugin.
        self.lines = lines
        self.filename = filename

    @classmethod
    def add_options(cls, manager: Any) -> None:
        manager.extend_default_ignore(
            sorted(code for code, rule in all_rules().items() if not rule.default_enabled)
        )

    def run(self) -> Iterator[tuple[int, int, str, type[BatchNormChecker]]]:
        cwd = Path.cwd()
        name = self.filename if self.filename not in _STDIN_NAMES else "stdin.py"
        path = cwd / name
        settings, enabled = _settings(path.parent, cwd)
        findings = check_buffer(
            path, "".join(self.lines), cwd=cwd, settings=settings, enabled=enabled
        )
        for finding in findings:
            yield (
                finding.start.line,
                finding.start.column - 1,
                f"{finding.code} {finding.message}",
                type(self),
            )
