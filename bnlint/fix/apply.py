"""Findings' fixes → fixed text, in passes, never worse than the original.

Fixes of one file are applied together when their edits do not overlap; on a
conflict the first fix (in report order) wins and the others wait for the next pass.
After each pass the file is linted again, so waiting fixes are recomputed against the
new text and a fix that makes another finding appear (BN036's `shuffle=True` makes
the loader a shuffled training loader, which BN032 asks to `drop_last`) is applied
too: one `--fix` leaves nothing that a second one would change.
The result must parse: if it does not, nothing is applied and the caller reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bnlint.finding import INTERNAL_ERROR, Applicability, Finding, Fix, Position, file_problem
from bnlint.fix.edits import apply_edits

MAX_PASSES = 10


@dataclass(frozen=True)
class FixResult:
    text: str
    applied: int  # how many findings' fixes went in
    broken: Finding | None = None  # set when the fixed text would not parse


def applicable(finding: Finding, unsafe: bool) -> bool:
    fix = finding.fix
    return fix is not None and (unsafe or fix.applicability is Applicability.SAFE)


def fix_text(
    text: str,
    findings: Sequence[Finding],
    *,
    unsafe: bool,
    relint: Callable[[str], list[Finding]],
    parses: Callable[[str], bool],
) -> FixResult:
    """Apply the applicable fixes among `findings` (which were reported on `text`)."""
    current, applied = text, 0
    for _ in range(MAX_PASSES):
        chosen = _without_conflicts([f for f in findings if applicable(f, unsafe)])
        if not chosen:
            break
        candidate = apply_edits(current, [edit for fix in chosen for edit in fix.edits])
        if not parses(candidate):
            return FixResult(text, 0, _broken(findings[0], chosen))
        current, applied = candidate, applied + len(chosen)
        findings = relint(current)
    return FixResult(current, applied)


def _without_conflicts(findings: Sequence[Finding]) -> list[Fix]:
    """The fixes that can go in together; the others wait for the next pass."""
    chosen: list[Fix] = []
    taken: list[tuple[Position, Position]] = []
    for finding in sorted(findings, key=Finding.sort_key):
        assert finding.fix is not None
        spans = [(edit.start, edit.end) for edit in finding.fix.edits]
        if any(_overlap(span, other) for span in spans for other in taken):
            continue
        if finding.fix in chosen:
            continue  # two findings offering the very same fix
        chosen.append(finding.fix)
        taken.extend(spans)
    return chosen


def _overlap(a: tuple[Position, Position], b: tuple[Position, Position]) -> bool:
    # Touching insertions at one point conflict too: their order would be arbitrary.
    return a[0] <= b[1] and b[0] <= a[1]


def _broken(example: Finding, fixes: Sequence[Fix]) -> Finding:
    return file_problem(
        INTERNAL_ERROR,
        example.path,
        "applying the fixes would leave code that does not parse "
        f"({'; '.join(fix.message for fix in fixes)}); nothing was written",
        "apply the suggestions by hand and report this bnlint bug",
    )
