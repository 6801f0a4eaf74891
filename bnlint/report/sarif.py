"""`--format sarif`: SARIF 2.1.0 as GitHub code scanning reads it.

GitHub uses only part of SARIF (see shared/reference/ecosystem.md 1.2), so this writes
that part fully and nothing else: the driver with one reportingDescriptor per rule of
the run, and per finding a result with ruleId/ruleIndex, level, message, one physical
location and a `primaryLocationLineHash` fingerprint.

Choices worth knowing:
- Columns are bnlint's (Unicode code points, end exclusive), declared with
  `columnKind: "unicodeCodePoints"` instead of converting to SARIF's default UTF-16
  code units: a reporter has no source text to convert with.
- The fingerprint hashes the rule id, the path and the message plus an occurrence
  index among identical (rule, path, message) findings, never the line number, so an
  alert keeps its identity when lines are added above it. Without one, uploads through
  the REST API open duplicate alerts on every push.
- URIs are relative, forward-slashed and anchored at `%SRCROOT%`, the working
  directory, which `originalUriBaseIds` and `invocations[0].workingDirectory` spell out.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from bnlint.finding import Finding, RuleInfo, RunSummary, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "bnlint"
INFORMATION_URI = "https://pypi.org/project/bnlint/"
SRCROOT = "%SRCROOT%"
# GitHub rejects longer shortDescription/fullDescription texts.
MAX_DESCRIPTION = 1024

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
# GitHub's display severity for non-security alerts (properties.problem.severity).
_PROBLEM_SEVERITY = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "recommendation",
}


def _truncate(text: str, limit: int = MAX_DESCRIPTION) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _directory_uri(directory: str) -> str:
    """`file:///…/` with the trailing slash SARIF wants on a base URI."""
    uri = Path(directory).absolute().as_uri()
    return uri if uri.endswith("/") else uri + "/"


def artifact_location(path: str, working_directory: str) -> dict[str, Any]:
    """A finding's file as SARIF wants it: a relative, forward-slashed, percent-encoded
    URI under `%SRCROOT%`; an absolute path outside the working directory (a runtime
    finding in an installed package) stays an absolute `file://` URI."""
    windows = "\\" in path or PureWindowsPath(path).drive != ""
    pure = PureWindowsPath(path) if windows else PurePosixPath(path)
    if pure.is_absolute():
        base = PureWindowsPath(working_directory) if windows else PurePosixPath(working_directory)
        try:
            pure = pure.relative_to(base)
        except ValueError:
            uri = pure.as_uri()
            return {"uri": uri}
    return {"uri": quote(pure.as_posix(), safe="/"), "uriBaseId": SRCROOT}


def primary_location_line_hash(finding: Finding, occurrence: int) -> str:
    """Stable across edits above the finding: no line or column goes into it."""
    key = "\0".join((finding.code, finding.path, finding.message))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"{digest}:{occurrence}"


def _rule_descriptor(rule: RuleInfo) -> dict[str, Any]:
    documentation = rule.documentation.strip() or rule.summary
    descriptor: dict[str, Any] = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": _truncate(rule.summary)},
        "fullDescription": {"text": _truncate(documentation)},
        "help": {"text": documentation, "markdown": documentation},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "tags": ["batchnorm", "pytorch", "correctness"],
            "problem.severity": _PROBLEM_SEVERITY[rule.severity],
        },
    }
    if rule.url:
        descriptor["helpUri"] = rule.url
    return descriptor


def _result(
    finding: Finding, rule_index: int | None, occurrence: int, working_directory: str
) -> dict[str, Any]:
    result: dict[str, Any] = {"ruleId": finding.code}
    if rule_index is not None:
        result["ruleIndex"] = rule_index
    result.update(
        {
            "level": _LEVEL[finding.severity],
            "message": {"text": f"{finding.message} Fix: {finding.suggestion}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": artifact_location(finding.path, working_directory),
                        "region": {
                            "startLine": finding.start.line,
                            "startColumn": finding.start.column,
                            "endLine": finding.end.line,
                            "endColumn": finding.end.column,
                        },
                    }
                }
            ],
            "partialFingerprints": {
                "primaryLocationLineHash": primary_location_line_hash(finding, occurrence)
            },
            "properties": {
                "source": finding.source.value,
                "count": finding.count,
                "notes": list(finding.notes),
                "confirmedAtRuntime": finding.confirmed_at_runtime,
            },
        }
    )
    if finding.cell is not None:
        # Notebook findings: the region is relative to this cell (as in ruff's JSON).
        result["properties"]["cell"] = finding.cell
        result["message"]["text"] = f"cell {finding.cell}: {result['message']['text']}"
    return result


def sarif_log(findings: Sequence[Finding], summary: RunSummary) -> dict[str, Any]:
    """The SARIF log as a dict; findings are expected in report order (render sorts)."""
    rules = sorted(summary.rules, key=lambda rule: rule.code)
    rule_index = {rule.code: index for index, rule in enumerate(rules)}
    seen: Counter[tuple[str, str, str]] = Counter()
    results = []
    for finding in findings:
        key = (finding.code, finding.path, finding.message)
        results.append(
            _result(finding, rule_index.get(finding.code), seen[key], summary.working_directory)
        )
        seen[key] += 1
    working_directory = _directory_uri(summary.working_directory)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "semanticVersion": summary.tool_version,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule_descriptor(rule) for rule in rules],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "workingDirectory": {"uri": working_directory},
                    }
                ],
                "originalUriBaseIds": {SRCROOT: {"uri": working_directory}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render_sarif(findings: Sequence[Finding], summary: RunSummary) -> str:
    """The SARIF log, pretty-printed with a trailing newline."""
    return json.dumps(sarif_log(findings, summary), indent=2) + "\n"
