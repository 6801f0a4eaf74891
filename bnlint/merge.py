"""Static findings + a runtime report → one list (`bnlint check --runtime-report`);
the ranks' runtime reports of a multi-process run → one report (`merge_ranks`).

A runtime report is the JSON that `bnlint run --format json --output-file report.json`
writes: the same finding objects as `bnlint check --format json`, read back with
`Finding.from_json`. A static finding and a runtime finding of the same code at the
same location (the same file and line; runtime findings have no column) become one
finding: the static one, with its fix, marked `confirmed_at_runtime`, counting the
runtime occurrences and keeping the runtime notes (module, construction site). Runtime
findings with no static counterpart are listed as they are.

Pure functions over findings; nothing here runs a check.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from bnlint.finding import Finding, Position, Severity, Source

__all__ = ["RuntimeReportError", "merge_ranks", "merge_runtime", "read_runtime_report"]

# Internal errors of the tracer are always shown, whatever the selection.
ALWAYS_SHOWN = frozenset({"BN999"})


class RuntimeReportError(ValueError):
    """The runtime report cannot be read; the message names the file and the problem."""


def read_runtime_report(path: Path) -> list[Finding]:
    """The findings of a `bnlint run --format json` report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RuntimeReportError(f"{path}: cannot read the runtime report ({error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RuntimeReportError(
            f"{path}: not a JSON runtime report ({error}); write one with "
            "`bnlint run --format json --output-file {path} script.py`"
        ) from None
    if not isinstance(data, list):
        raise RuntimeReportError(
            f"{path}: a runtime report is a JSON array of findings "
            "(`bnlint run --format json`), not a JSON " + type(data).__name__
        )
    findings = []
    for position, item in enumerate(data):
        try:
            findings.append(Finding.from_json(item))
        except (KeyError, TypeError, ValueError) as error:
            raise RuntimeReportError(
                f"{path}: finding #{position + 1} is not a bnlint finding "
                f"({type(error).__name__}: {error})"
            ) from None
    return findings


def _location(finding: Finding) -> tuple[str, str, int, int | None]:
    """(code, file, line, cell); files compared as absolute paths from the working
    directory, where both `bnlint check` and `bnlint run` print paths relative to it."""
    path = finding.path
    if not path.startswith("<"):
        path = os.path.normcase(os.path.abspath(path))
    return finding.code, path, finding.start.line, finding.cell


def merge_runtime(
    static: Iterable[Finding],
    runtime: Iterable[Finding],
    codes: Collection[str] | None = None,
) -> list[Finding]:
    """One sorted list: each static finding confirmed by runtime findings at its
    location is marked `confirmed_at_runtime`; the other runtime findings follow as
    they are. `codes`, when given, keeps only runtime findings of these codes (the
    check's selection; tracer internal errors are always kept)."""
    static = list(static)
    by_location: dict[tuple[str, str, int, int | None], list[Finding]] = {}
    for finding in runtime:
        if codes is not None and finding.code not in codes and finding.code not in ALWAYS_SHOWN:
            continue
        by_location.setdefault(_location(finding), []).append(finding)
    merged = []
    for finding in static:
        seen = by_location.pop(_location(finding), None)
        if not seen:
            merged.append(finding)
            continue
        count = sum(runtime_finding.count for runtime_finding in seen)
        notes = list(finding.notes)
        notes.append(f"confirmed at run time ({count} time{'s' if count != 1 else ''})")
        for runtime_finding in seen:
            notes.extend(note for note in runtime_finding.notes if note not in notes)
        merged.append(
            dataclasses.replace(finding, confirmed_at_runtime=True, count=count, notes=tuple(notes))
        )
    for unmatched in by_location.values():
        merged.extend(unmatched)
    return sorted(merged, key=Finding.sort_key)


INCOMPLETE_REPORT = ("BN998", "incomplete-report")


def _ranks_text(ranks: Iterable[int]) -> str:
    ordered = sorted(ranks)
    return ("rank " if len(ordered) == 1 else "ranks ") + ", ".join(map(str, ordered))


def merge_ranks(
    reports: Mapping[int, Iterable[Finding]],
    world_size: int,
    missing: Mapping[int, str] | None = None,
) -> list[Finding]:
    """One report from each rank's findings: the same finding (code, place, message)
    seen on several ranks is one finding counting all of them, with a note naming the
    ranks that saw it. `missing` (rank → why it has no report) adds one BN998 finding
    that marks the report as partial."""
    merged: dict[tuple[str, str, Position, int | None, str], tuple[Finding, set[int]]] = {}
    for rank in sorted(reports):
        for finding in reports[rank]:
            key = (finding.code, finding.path, finding.start, finding.cell, finding.message)
            known = merged.get(key)
            if known is None:
                merged[key] = (finding, {rank})
                continue
            first, ranks = known
            notes = list(first.notes)
            notes.extend(note for note in finding.notes if note not in notes)
            ranks.add(rank)
            merged[key] = (
                dataclasses.replace(first, count=first.count + finding.count, notes=tuple(notes)),
                ranks,
            )
    findings = [
        dataclasses.replace(
            finding, notes=(*finding.notes, f"seen on {_ranks_text(ranks)} of {world_size}")
        )
        for finding, ranks in merged.values()
    ]
    if missing:
        code, name = INCOMPLETE_REPORT
        reasons = "; ".join(f"rank {rank}: {why}" for rank, why in sorted(missing.items()))
        position = Position(1, 1)
        findings.append(
            Finding(
                code=code,
                name=name,
                severity=Severity.ERROR,
                path="<runtime>",
                start=position,
                end=position,
                message=f"partial report: {_ranks_text(missing)} of {world_size} sent no "
                f"report ({reasons})",
                suggestion="look at those ranks' own logs; raise --rank-timeout if they "
                "were only slower than rank 0",
                source=Source.RUNTIME,
            )
        )
    return sorted(findings, key=Finding.sort_key)
