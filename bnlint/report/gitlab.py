"""GitLab Code Quality report (`--format gitlab`): the JSON array GitLab shows in merge
requests, one issue per finding with GitLab's severities and a stable fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from bnlint.finding import Finding, RunSummary, Severity

# GitLab's scale: info, minor, major, critical, blocker.
_SEVERITY = {Severity.ERROR: "critical", Severity.WARNING: "major", Severity.INFO: "info"}


def fingerprint(finding: Finding, occurrence: int) -> str:
    """Stable across edits above the finding (no line numbers), unique per occurrence."""
    key = "\0".join((finding.code, finding.path, finding.message, str(occurrence)))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def render_gitlab(findings: Sequence[Finding], summary: RunSummary) -> str:
    seen: dict[tuple[str, str, str], int] = {}
    issues: list[dict[str, Any]] = []
    for finding in findings:
        key = (finding.code, finding.path, finding.message)
        seen[key] = seen.get(key, 0) + 1
        where = f"cell {finding.cell}, line {finding.start.line}: " if finding.cell else ""
        issues.append(
            {
                "type": "issue",
                "check_name": f"{finding.code} {finding.name}",
                "description": f"{where}{finding.code} {finding.message}",
                "content": {"body": f"Fix: {finding.suggestion}"},
                "categories": ["Bug Risk"],
                "severity": _SEVERITY[finding.severity],
                "fingerprint": fingerprint(finding, seen[key]),
                "location": {
                    "path": finding.path,
                    "lines": {"begin": 1 if finding.cell else finding.start.line},
                },
            }
        )
    return json.dumps(issues, indent=2) + "\n"
