"""The default, human and editor format: `path:line:col: CODE [severity] message`.

The first line of each finding keeps the GNU `file:line:column: message` shape that
Vim's errorformat, Emacs compilation-mode, VS Code and GitHub problem matchers parse
(`^(.+):(\\d+):(\\d+): ([A-Z]+\\d+) (.*)$`), so everything a person needs beyond it
(the suggestion, whether a fix exists, runtime notes) goes on indented lines below,
which those matchers skip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bnlint.finding import Finding, RunSummary, Severity

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_CYAN = "\x1b[36m"
_SEVERITY_COLOR = {
    Severity.ERROR: "\x1b[31m",
    Severity.WARNING: "\x1b[33m",
    Severity.INFO: "\x1b[34m",
}


def _style(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def finding_lines(finding: Finding, *, color: bool = False) -> list[str]:
    """The lines for one finding: the matcher line, the help line, one line per note."""
    cell = f"cell {finding.cell}:" if finding.cell is not None else ""  # ruff's notebook form
    location = f"{finding.path}:{cell}{finding.start.line}:{finding.start.column}:"
    severity = _style(f"[{finding.severity.value}]", _SEVERITY_COLOR[finding.severity], color)
    head = (
        f"{_style(location, _BOLD, color)} {_style(finding.code, _BOLD, color)} "
        f"{severity} {finding.message}"
    )
    if finding.count > 1:
        head += f" (seen {finding.count} times)"
    if finding.confirmed_at_runtime:
        head += " [confirmed at runtime]"
    help_line = f"    {_style('help:', _CYAN, color)} {finding.suggestion}"
    if finding.fix is not None:
        help_line += f" (fix available: {finding.fix.applicability.value})"
    notes = [f"    {_style('note:', _BOLD, color)} {note}" for note in finding.notes]
    return [head, help_line, *notes]


def statistics_lines(findings: Sequence[Finding]) -> list[str]:
    """A per-code table, most frequent first, so a first run on a big codebase shows
    which misuse to tackle (and which one `--fix` clears) before the long list."""
    counts = Counter(finding.code for finding in findings)
    fixable = Counter(finding.code for finding in findings if finding.fixable)
    names = {finding.code: finding.name for finding in findings}
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    count_width = max([len("count"), *(len(str(count)) for _, count in rows)])
    code_width = max([len("code"), *(len(code) for code, _ in rows)])
    name_width = max([len("name"), *(len(names[code]) for code, _ in rows)])
    lines = [f"{'count':>{count_width}}  {'code':<{code_width}}  {'name':<{name_width}}  fixable"]
    for code, count in rows:
        lines.append(
            f"{count:>{count_width}}  {code:<{code_width}}  "
            f"{names[code]:<{name_width}}  {fixable[code]:>7}"
        )
    return lines


def summary_line(findings: Sequence[Finding], summary: RunSummary) -> str:
    """`N findings (M fixable) in K files`, with singular nouns where they belong; after
    `--fix`, how many were fixed and that the N remain."""
    fixable = sum(1 for finding in findings if finding.fixable)
    line = (
        f"{_plural(len(findings), 'finding')} ({fixable} fixable) "
        f"in {_plural(summary.files_checked, 'file')}"
    )
    if summary.fixed:
        line = f"Fixed {_plural(summary.fixed, 'finding')}; {line} remain"
    return line


def render_text(
    findings: Sequence[Finding],
    summary: RunSummary,
    *,
    color: bool = False,
    quiet: bool = False,
    statistics: bool = False,
) -> str:
    """Findings in the given order; then, unless `quiet`, a blank line and the summary.

    `statistics` adds the per-code table before the summary (it is printed even when
    `quiet`, because asking for it is asking to see it). With `color=False` the output
    holds no escape codes, so it is safe to pipe into files and matchers.
    """
    lines: list[str] = []
    for finding in findings:
        lines.extend(finding_lines(finding, color=color))
    if statistics and findings:
        if lines:
            lines.append("")
        lines.extend(statistics_lines(findings))
    if not quiet:
        if lines:
            lines.append("")
        lines.append(summary_line(findings, summary))
    return "".join(f"{line}\n" for line in lines)
