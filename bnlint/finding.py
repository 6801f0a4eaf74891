"""The one vocabulary every room speaks: findings, fixes and severities.

Both engines produce `Finding`s, the reporters print them, the fixer applies their
`Fix`es and the cache stores them. Positions are 1-based lines and 1-based columns
counted in Unicode code points; the end column is exclusive, as in ruff and SARIF.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.Enum):
    """How sure and how bad: error = crashes or certainly wrong results; warning = very
    likely wrong; info = advice."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Applicability(enum.Enum):
    """Whether `--fix` may apply a fix on its own (safe) or only with `--unsafe-fixes`."""

    SAFE = "safe"
    UNSAFE = "unsafe"


class Source(enum.Enum):
    """Which engine saw the misuse."""

    STATIC = "static"
    RUNTIME = "runtime"


@dataclass(frozen=True, order=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True)
class Edit:
    """Replace the text between `start` and `end` (exclusive) with `content`."""

    start: Position
    end: Position
    content: str


@dataclass(frozen=True)
class Fix:
    applicability: Applicability
    edits: tuple[Edit, ...]
    message: str


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    path: str
    start: Position
    end: Position
    message: str
    suggestion: str
    fix: Fix | None = None
    source: Source = Source.STATIC
    # Runtime findings: how many times the event was seen, and extra locations
    # (where the module was constructed, ...). Static findings leave them empty.
    count: int = 1
    notes: tuple[str, ...] = field(default=())
    confirmed_at_runtime: bool = False
    # Notebooks: the 1-based cell (markdown cells counted, as in Jupyter and ruff);
    # lines and columns are then relative to the cell.
    cell: int | None = None

    @property
    def fixable(self) -> bool:
        return self.fix is not None

    def sort_key(self) -> tuple[str, int, int, int, str]:
        return (self.path, self.cell or 0, self.start.line, self.start.column, self.code)

    # The JSON form below is the documented `--format json` schema (see README):
    # ruff's keys where ruff has the field, bnlint's own keys otherwise. The cache
    # and the runtime-report merge read it back with `from_json`.
    def to_json(self, url: str | None = None) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "suggestion": self.suggestion,
            "filename": self.path,
            "location": {"row": self.start.line, "column": self.start.column},
            "end_location": {"row": self.end.line, "column": self.end.column},
            "fix": None if self.fix is None else _fix_to_json(self.fix),
            "source": self.source.value,
            "count": self.count,
            "notes": list(self.notes),
            "confirmed_at_runtime": self.confirmed_at_runtime,
            "url": url,
            "cell": self.cell,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        fix = data.get("fix")
        return cls(
            code=data["code"],
            name=data["name"],
            severity=Severity(data["severity"]),
            path=data["filename"],
            start=_position(data["location"]),
            end=_position(data["end_location"]),
            message=data["message"],
            suggestion=data["suggestion"],
            fix=None if fix is None else _fix_from_json(fix),
            source=Source(data.get("source", "static")),
            count=int(data.get("count", 1)),
            notes=tuple(data.get("notes", ())),
            confirmed_at_runtime=bool(data.get("confirmed_at_runtime", False)),
            cell=data.get("cell"),
        )


UNREADABLE = ("BN000", "unreadable-source")
INTERNAL_ERROR = ("BN999", "internal-error")


def file_problem(
    kind: tuple[str, str],
    path: str,
    message: str,
    suggestion: str,
    line: int = 1,
    column: int = 1,
) -> Finding:
    """A finding about a file rather than about code in it: BN000 (it could not be read)
    or BN999 (bnlint failed on it). Both are errors, reported at one point."""
    code, name = kind
    start = Position(line, column)
    return Finding(code, name, Severity.ERROR, path, start, start, message, suggestion)


def _position(data: dict[str, Any]) -> Position:
    return Position(int(data["row"]), int(data["column"]))


def _fix_to_json(fix: Fix) -> dict[str, Any]:
    return {
        "applicability": fix.applicability.value,
        "message": fix.message,
        "edits": [
            {
                "content": edit.content,
                "location": {"row": edit.start.line, "column": edit.start.column},
                "end_location": {"row": edit.end.line, "column": edit.end.column},
            }
            for edit in fix.edits
        ],
    }


def _fix_from_json(data: dict[str, Any]) -> Fix:
    return Fix(
        applicability=Applicability(data["applicability"]),
        message=data["message"],
        edits=tuple(
            Edit(
                start=_position(edit["location"]),
                end=_position(edit["end_location"]),
                content=edit["content"],
            )
            for edit in data["edits"]
        ),
    )


@dataclass(frozen=True)
class RuleInfo:
    """What a reporter may know about a rule (reporters never import rules)."""

    code: str
    name: str
    severity: Severity
    default_enabled: bool
    summary: str
    documentation: str
    url: str


@dataclass(frozen=True)
class RunSummary:
    """What a reporter may know about the run besides the findings."""

    files_checked: int
    rules: tuple[RuleInfo, ...]
    tool_version: str
    working_directory: str
    fixed: int = 0  # findings fixed by `--fix` in this run
