"""`--format github`: GitHub Actions workflow commands, one annotation per finding.

`::error file=…,line=…,endLine=…,col=…,endColumn=…,title=bnlint (BN001)::message`,
with `warning` and `notice` for the lower severities and the suggestion on a second
annotation line. Escaping follows actions/toolkit `command.ts`: the runner would
otherwise cut a message at its first newline and split properties at `,` or `:`.
GitHub shows at most 10 annotations of each kind per step; the rest stay in the log.
"""

from __future__ import annotations

from collections.abc import Sequence

from bnlint.finding import Finding, RunSummary, Severity

_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    """Escape a command's message (toolkit `escapeData`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a command property value (toolkit `escapeProperty`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding) -> str:
    """The workflow command for one finding."""
    properties = {
        "file": finding.path,
        "line": str(finding.start.line),
        "endLine": str(finding.end.line),
        "col": str(finding.start.column),
        "endColumn": str(finding.end.column),
        "title": f"bnlint ({finding.code})",
    }
    message = f"{finding.message}\n  help: {finding.suggestion}"
    if finding.cell is not None:
        # Lines in a notebook's JSON are not the cell's lines: like ruff, annotate the
        # file's first line and name the cell and line in the message.
        properties.update(line="1", endLine="1", col="1", endColumn="1")
        where = f"cell {finding.cell}, line {finding.start.line}, column {finding.start.column}"
        message = f"{where}: {message}"
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{_COMMAND[finding.severity]} {joined}::{escape_data(message)}"


def render_github(findings: Sequence[Finding], summary: RunSummary) -> str:
    """One command per line; nothing else, since any other line is log noise."""
    return "".join(f"{annotation(finding)}\n" for finding in findings)
