"""Findings → text / json / sarif / github / gitlab.

Reporters read `Finding`s and the `RunSummary` and nothing else: they never import
rules, the engine or libcst, so a format can change without touching analysis and
analysis can change without touching a format. `render` sorts the findings once, so
every format prints them in the same deterministic order whatever order the engine
(a process pool, a runtime merge) produced them in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bnlint.finding import Finding, RunSummary
from bnlint.formats import OUTPUT_FORMATS as FORMATS
from bnlint.report import github, gitlab, json_format, sarif, text

# Every format but text ignores the presentation flags: they exist for people
# reading a terminal, and machine formats must not change shape with them.
_MACHINE_FORMATS: dict[str, Callable[[Sequence[Finding], RunSummary], str]] = {
    "json": json_format.render_json,
    "sarif": sarif.render_sarif,
    "github": github.render_github,
    "gitlab": gitlab.render_gitlab,
}


def sorted_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Findings by path, line, column and code; the end position and the message
    break the remaining ties so two runs never print the same findings differently."""
    return sorted(
        findings,
        key=lambda finding: (*finding.sort_key(), finding.end, finding.message),
    )


def render(
    fmt: str,
    findings: Sequence[Finding],
    summary: RunSummary,
    *,
    color: bool = False,
    quiet: bool = False,
    statistics: bool = False,
) -> str:
    """The whole report for `fmt`, ready to write to stdout or a file.

    `color`, `quiet` and `statistics` only affect the text format. Raises ValueError
    for an unknown format so the CLI can name the choices.
    """
    ordered = sorted_findings(findings)
    if fmt == "text":
        return text.render_text(ordered, summary, color=color, quiet=quiet, statistics=statistics)
    machine = _MACHINE_FORMATS.get(fmt)
    if machine is None:
        raise ValueError(f"unknown output format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return machine(ordered, summary)


__all__ = ["FORMATS", "render", "sorted_findings"]
