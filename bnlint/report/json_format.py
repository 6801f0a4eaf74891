"""`--format json`: a JSON array with one object per finding.

The object is `Finding.to_json` (ruff's keys where ruff has the field, bnlint's own
otherwise), plus the rule's documentation `url` from the run's `RuleInfo`. The schema
is kept as a machine-checkable file beside this module, `findings.schema.json`
(JSON Schema draft 2020-12), and the tests validate real output against it, so the
documentation cannot drift from the code. In short, each object has:

- `code` (`"BN001"`), `name` (`"bias-before-batchnorm"`), `severity`
  (`"error" | "warning" | "info"`), `message`, `suggestion`;
- `filename` (the path as given, relative to the working directory), `location` and
  `end_location`: `{"row": int >= 1, "column": int >= 1}`, columns counted in code
  points, end exclusive;
- `fix`: `null` or `{"applicability": "safe" | "unsafe", "message": str, "edits":
  [{"content": str, "location": {...}, "end_location": {...}}]}`;
- `source` (`"static" | "runtime"`), `count` (times a runtime event was seen, >= 1),
  `notes` (list of str), `confirmed_at_runtime` (bool);
- `url`: the rule's documentation page, or `null` when the run has no such rule.

`Finding.from_json` reads an object back, which the cache and `bnlint merge` rely on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bnlint.finding import Finding, RunSummary

SCHEMA_FILE = "findings.schema.json"


def findings_schema() -> dict[str, Any]:
    """The JSON Schema for `--format json` output, as shipped with the package."""
    from importlib import resources  # 25 ms: only when the schema is asked for

    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def render_json(findings: Sequence[Finding], summary: RunSummary) -> str:
    """A pretty-printed array (indent 2, trailing newline); `[]` when nothing was found,
    so consumers never special-case an empty run."""
    urls = {rule.code: rule.url for rule in summary.rules}
    payload = [finding.to_json(url=urls.get(finding.code)) for finding in findings]
    return json.dumps(payload, indent=2) + "\n"
