"""A whole run: paths → files → (cache | pre-filter | parse in a pool) → findings.

libcst is imported only when some file passes the trigger-word pre-filter and is not
answered by the cache, so a run over files that cannot hold a misuse stays cheap.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnlint.config import Settings
from bnlint.engine.cache import DigestCache
from bnlint.engine.discovery import SourcePath, discover
from bnlint.engine.pool import parallel_map
from bnlint.engine.source import SourceText, decode, read_file
from bnlint.finding import Finding, Position, Severity
from bnlint.index import ProjectIndex
from bnlint.registry import all_rules
from bnlint.rule import Rule

# Deep but legal nesting (an expression 1,000 levels deep) must not stop the visitor.
RECURSION_LIMIT = 20_000


@dataclass
class RunResult:
    findings: list[Finding]
    files_checked: int
    parsed: int  # files that were parsed (not answered by the cache or the pre-filter)

    @property
    def internal_error(self) -> bool:
        return any(f.code == "BN999" for f in self.findings)


@dataclass(frozen=True)
class _Job:
    display: str
    text: str
    codes: tuple[str, ...]


def check_paths(
    paths: Sequence[Path],
    settings: Settings,
    enabled: frozenset[str],
    *,
    cwd: Path,
    use_cache: bool = True,
) -> RunResult:
    sources = list(discover(paths, settings, cwd))
    texts: list[tuple[SourcePath, SourceText]] = []
    findings: list[Finding] = []
    for source in sources:
        read = read_file(source.path, source.display)
        if isinstance(read, Finding):
            findings.append(read)
        else:
            texts.append((source, read))
    return _check_texts(texts, settings, enabled, findings, len(sources), use_cache)


def check_stdin(
    data: bytes, display: str, settings: Settings, enabled: frozenset[str], cwd: Path
) -> RunResult:
    read = decode(data, display)
    if isinstance(read, Finding):
        return RunResult([read], 1, 0)
    source = SourcePath(Path(os.path.abspath(display)), display)
    return _check_texts([(source, read)], settings, enabled, [], 1, use_cache=False)


def _check_texts(
    texts: list[tuple[SourcePath, SourceText]],
    settings: Settings,
    enabled: frozenset[str],
    findings: list[Finding],
    files_checked: int,
    use_cache: bool,
) -> RunResult:
    index = ProjectIndex.empty(str(settings.project_root))
    if any(_static_rules()[code].needs_index for code in enabled if code in _static_rules()):
        from bnlint.engine.project import build_index

        index = build_index(settings, texts, use_cache=use_cache)
    cache = None
    if use_cache:
        key = settings.fingerprint(enabled) + index.fingerprint()
        cache = DigestCache(settings.project_root, f"findings-{key}")
    jobs: list[tuple[_Job, str]] = []
    for source, text in texts:
        codes = _codes_for(source, text.text, settings, enabled)
        if not codes:
            continue
        cached = _cached_findings(cache, source.display, text.digest)
        if cached is not None:
            findings.extend(cached)
            continue
        jobs.append((_Job(source.display, text.text, codes), text.digest))

    results = _run_jobs([job for job, _ in jobs], index, settings.options)
    for (job, digest), job_findings in zip(jobs, results, strict=True):
        findings.extend(job_findings)
        if cache is not None and not any(f.code == "BN999" for f in job_findings):
            cache.put(job.display, digest, [f.to_json() for f in job_findings])
    if cache is not None:
        cache.save()
    findings.sort(key=Finding.sort_key)
    return RunResult(findings, files_checked, parsed=len(jobs))


def _cached_findings(cache: DigestCache | None, path: str, digest: str) -> list[Finding] | None:
    stored = cache.get(path, digest) if cache is not None else None
    if not isinstance(stored, list):
        return None
    try:
        return [Finding.from_json(item) for item in stored]
    except (KeyError, TypeError, ValueError):
        return None


def _codes_for(
    source: SourcePath, text: str, settings: Settings, enabled: frozenset[str]
) -> tuple[str, ...]:
    """The enabled rules that could fire on this text: the per-file ignores removed,
    and only rules whose trigger words (and trigger pattern) occur in it."""
    try:
        relative = source.path.relative_to(settings.project_root).as_posix()
    except ValueError:
        relative = source.display
    codes = enabled - settings.ignored_for(relative)
    rules = _static_rules()
    return tuple(code for code in sorted(codes) if code in rules and _triggered(rules[code], text))


def _triggered(rule: type[Rule], text: str) -> bool:
    if rule.triggers and not any(word in text for word in rule.triggers):
        return False
    return rule.trigger_pattern is None or _pattern(rule.trigger_pattern).search(text) is not None


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source, re.MULTILINE)


@functools.cache
def _static_rules() -> dict[str, type[Rule]]:
    """Rules with a static check (BN000/BN999 are emitted by the engine itself)."""
    return {
        code: rule
        for code, rule in all_rules().items()
        if any(a.startswith(("visit_", "leave_")) for a in dir(rule))
    }


def _run_jobs(jobs: Sequence[_Job], index: ProjectIndex, options: Any) -> list[list[Finding]]:
    if not jobs:
        return []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    import bnlint.engine.lint  # noqa: F401  (import once, before forking)

    return parallel_map(_lint_job, jobs, size=lambda job: len(job.text), shared=(index, options))


def _lint_job(job: _Job, index: ProjectIndex, options: Any) -> list[Finding]:
    from bnlint.engine.lint import lint_text

    rules = [_static_rules()[code] for code in job.codes]
    try:
        return lint_text(job.display, job.text, rules, index, options)
    except Exception as error:  # the engine's own bug: report it, keep going
        start = Position(1, 1)
        return [
            Finding(
                code="BN999",
                name="internal-error",
                severity=Severity.ERROR,
                path=job.display,
                start=start,
                end=start,
                message=f"bnlint failed on this file: {type(error).__name__}: {error}",
                suggestion="report this bnlint bug with the file; the other files were checked",
            )
        ]


def files_with_findings(findings: Iterable[Finding]) -> int:
    return len({f.path for f in findings})
