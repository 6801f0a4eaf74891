"""Suppression comments, as flake8 and ruff read them.

- `# noqa` on the reported line suppresses every finding on it;
- `# noqa: BN004` or `# noqa: BN004, BN011` (codes or rule names) only those;
- `# bnlint: noqa` on a line of its own suppresses the whole file, and
  `# bnlint: noqa: BN007` only those codes in the file.
A malformed list (`# noqa:` followed by nothing) acts as a bare `# noqa`, as in ruff.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bnlint.finding import Finding

_LINE_NOQA = re.compile(
    r"#\s*noqa(?::[\s]*(?P<codes>[A-Za-z][\w-]*(?:[\s,]+[A-Za-z][\w-]*)*))?",
    re.IGNORECASE,
)
_FILE_NOQA = re.compile(
    r"^\s*#\s*bnlint\s*:\s*noqa(?::\s*(?P<codes>[A-Za-z][\w-]*(?:[\s,]+[A-Za-z][\w-]*)*))?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_SEPARATOR = re.compile(r"[\s,]+")

ALL = None  # a suppression that covers every code


@dataclass(frozen=True)
class Suppressions:
    file_codes: frozenset[str] | bool | None  # False: no file-level comment
    lines: Sequence[str]

    def suppresses(self, finding: Finding, names: dict[str, str]) -> bool:
        if self.file_codes is not False and _covers(self.file_codes, finding, names):
            return True
        index = finding.start.line - 1
        if not 0 <= index < len(self.lines):
            return False
        line = self.lines[index]
        if "#" not in line:
            return False
        for match in _LINE_NOQA.finditer(line):
            if _covers(_codes(match.group("codes")), finding, names):
                return True
        return False


def parse(text: str, lines: Sequence[str]) -> Suppressions:
    file_codes: frozenset[str] | bool | None = False
    if "bnlint" in text:
        collected: set[str] = set()
        for match in _FILE_NOQA.finditer(text):
            codes = _codes(match.group("codes"))
            if codes is ALL:
                return Suppressions(ALL, lines)
            collected |= codes
        if collected:
            file_codes = frozenset(collected)
    return Suppressions(file_codes, lines)


def filter_findings(
    findings: Iterable[Finding], text: str, lines: Sequence[str], names: dict[str, str]
) -> list[Finding]:
    """Drop the findings a comment suppresses. `names` maps rule names to codes."""
    findings = list(findings)
    if not findings or "noqa" not in text.lower():
        return findings
    suppressions = parse(text, lines)
    return [f for f in findings if not suppressions.suppresses(f, names)]


def _codes(raw: str | None) -> frozenset[str] | None:
    if not raw:
        return ALL
    return frozenset(token.upper() for token in _SEPARATOR.split(raw.strip()) if token)


def _covers(codes: frozenset[str] | bool | None, finding: Finding, names: dict[str, str]) -> bool:
    if codes is ALL:
        return True
    assert isinstance(codes, frozenset)
    for code in codes:
        resolved = names.get(code.lower(), code)
        if finding.code == resolved or finding.code.startswith(resolved):
            return True
    return False
