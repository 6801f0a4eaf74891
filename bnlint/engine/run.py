"""A whole run: paths → files → (cache | pre-filter | parse in a pool) → findings.

libcst is imported only when some file passes the trigger-word pre-filter and is not
answered by the cache, so a run over files that cannot hold a misuse stays cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnlint.config import Settings
from bnlint.engine.budget import file_time_budget
from bnlint.engine.cache import DigestCache
from bnlint.engine.discovery import SourcePath, discover
from bnlint.engine.pool import parallel_map
from bnlint.engine.source import SourceText, decode, decode_notebook, read_file
from bnlint.engine.trigger_search import pattern_found
from bnlint.finding import INTERNAL_ERROR, Finding, Position, file_problem
from bnlint.notebook import NotebookProgram
from bnlint.registry import RuleMeta, catalog, rule_class
from bnlint.rule import Rule

if TYPE_CHECKING:
    from bnlint.index import ProjectIndex

# Deep but legal nesting (an expression 1,000 levels deep) must not stop the visitor.
RECURSION_LIMIT = 20_000


@dataclass(frozen=True)
class FixMode:
    """`--fix` (write), `--diff` (write nothing, report the change); `--unsafe-fixes`."""

    unsafe: bool = False
    write: bool = True


@dataclass
class RunResult:
    findings: list[Finding]
    files_checked: int
    parsed: int  # files that were parsed (not answered by the cache or the pre-filter)
    fixed: int = 0  # findings whose fix was applied (or, with --diff, would be)
    diffs: list[str] = field(default_factory=list)
    fixed_text: str | None = None  # stdin with --fix: the fixed buffer

    @property
    def internal_error(self) -> bool:
        return any(f.code == INTERNAL_ERROR[0] for f in self.findings)


@dataclass(frozen=True)
class LintJob:
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
    fix: FixMode | None = None,
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
    return _check_texts(texts, settings, enabled, findings, len(sources), use_cache, fix)


def check_stdin(
    data: bytes,
    display: str,
    settings: Settings,
    enabled: frozenset[str],
    cwd: Path,
    fix: FixMode | None = None,
) -> RunResult:
    read = decode_notebook(data, display) if display.endswith(".ipynb") else decode(data, display)
    if isinstance(read, Finding):
        return RunResult([read], 1, 0)
    source = SourcePath(Path(os.path.abspath(display)), display, stdin=True)
    return _check_texts([(source, read)], settings, enabled, [], 1, False, fix)


def _check_texts(
    texts: list[tuple[SourcePath, SourceText]],
    settings: Settings,
    enabled: frozenset[str],
    findings: list[Finding],
    files_checked: int,
    use_cache: bool,
    fix: FixMode | None = None,
) -> RunResult:
    prefiltered = _PrefilterCache(settings, enabled) if use_cache else None
    wanted = [
        (source, text, _cached_codes(prefiltered, source, text, settings, enabled))
        for source, text in texts
    ]
    wanted = [(source, text, codes) for source, text, codes in wanted if codes]
    if prefiltered is not None:
        prefiltered.save()
    if not wanted:  # nothing passed the pre-filter: no index, no libcst
        findings.sort(key=Finding.sort_key)
        return RunResult(findings, files_checked, parsed=0)
    from bnlint.index import ProjectIndex

    index = ProjectIndex.empty(str(settings.project_root))
    rules = static_rules()
    if any(rules[code].needs_index for _, _, codes in wanted for code in codes):
        from bnlint.engine.project import build_index

        index = build_index(settings, texts, use_cache=use_cache)
    cache = None
    if use_cache:
        key = settings.fingerprint(enabled) + index.fingerprint()
        cache = DigestCache(settings.project_root, f"findings-{key}")
    per_file: dict[str, list[Finding]] = {}
    jobs: list[tuple[LintJob, str]] = []
    for source, text, codes in wanted:
        cached = _cached_findings(cache, source.display, text.digest)
        if cached is not None:
            per_file[source.display] = cached
            continue
        jobs.append((LintJob(source.display, text.text, codes), text.digest))

    results = _run_jobs([job for job, _ in jobs], index, settings.options)
    for (job, digest), job_findings in zip(jobs, results, strict=True):
        per_file[job.display] = job_findings
        if cache is not None and not any(f.code == INTERNAL_ERROR[0] for f in job_findings):
            cache.put(job.display, digest, [f.to_json() for f in job_findings])
    result = RunResult(findings, files_checked, parsed=len(jobs))
    if fix is not None:
        _fix_files(texts, settings, enabled, per_file, index, fix, result)
    if cache is not None:
        cache.save()
    notebooks = {source.display: text.notebook for source, text in texts if text.notebook}
    for display, file_findings in per_file.items():
        notebook = notebooks.get(display)
        findings.extend(in_cells(file_findings, notebook) if notebook else file_findings)
    findings.sort(key=Finding.sort_key)
    return result


def in_cells(findings: list[Finding], notebook: NotebookProgram) -> list[Finding]:
    """Notebook findings located by cell, lines relative to the cell (fix edits too)."""
    mapped = []
    for finding in findings:
        cell, line = notebook.locate(finding.start.line)
        end_cell, end_line = notebook.locate(finding.end.line)
        end = Position(end_line, finding.end.column) if end_cell == cell else Position(line, 1)
        fix = finding.fix
        if fix is not None:
            fix = dataclasses.replace(
                fix,
                edits=tuple(
                    dataclasses.replace(
                        edit,
                        start=Position(notebook.locate(edit.start.line)[1], edit.start.column),
                        end=Position(notebook.locate(edit.end.line)[1], edit.end.column),
                    )
                    for edit in fix.edits
                ),
            )
        mapped.append(
            dataclasses.replace(
                finding, cell=cell, start=Position(line, finding.start.column), end=end, fix=fix
            )
        )
    return mapped


def _fix_files(
    texts: list[tuple[SourcePath, SourceText]],
    settings: Settings,
    enabled: frozenset[str],
    per_file: dict[str, list[Finding]],
    index: ProjectIndex,
    mode: FixMode,
    result: RunResult,
) -> None:
    """Apply fixes file by file; `per_file` is updated to what remains."""
    from bnlint.fix.apply import applicable, fix_text

    for source, text in texts:
        found = per_file.get(source.display, [])
        if not any(applicable(f, mode.unsafe) for f in found):
            continue

        def relint(new_text: str, source: SourcePath = source) -> list[Finding]:
            # The fixed text may hold findings the original did not (BN036's fix makes a
            # training loader BN032 speaks about): its own pre-filter and summary.
            codes = codes_for(source, new_text, settings, enabled)
            fresh, _ = index.with_file(source.display, new_text)
            return lint_job(LintJob(source.display, new_text, codes), fresh, settings.options)

        outcome = fix_text(text.text, found, unsafe=mode.unsafe, relint=relint, parses=_parses)
        if outcome.broken is not None:
            per_file[source.display] = [*found, outcome.broken]
            continue
        if outcome.text == text.text:
            continue
        problem = _deliver(source, text, outcome.text, mode, result)
        if problem is not None:
            per_file[source.display] = [*found, problem]
            continue
        result.fixed += outcome.applied
        per_file[source.display] = relint(outcome.text)


def _deliver(
    source: SourcePath, text: SourceText, fixed: str, mode: FixMode, result: RunResult
) -> Finding | None:
    """Write the fixed text (or record its diff); a Finding says why it could not be."""
    if not mode.write:
        import difflib

        result.diffs.append(
            "".join(
                difflib.unified_diff(
                    text.text.splitlines(keepends=True),
                    fixed.splitlines(keepends=True),
                    fromfile=f"a/{source.display}",
                    tofile=f"b/{source.display}",
                )
            )
        )
        return None
    if source.stdin:
        result.fixed_text = fixed
        return None
    from bnlint import notebook
    from bnlint.engine.source import unreadable
    from bnlint.fix.write import encode_like, write_atomically

    try:
        original = source.path.read_bytes()
        if text.notebook is not None:
            current = decode_notebook(original, source.display)
            if current != text:
                return unreadable(source.display, "the file changed while it was being fixed")
            raw = decode(original, source.display)
            assert isinstance(raw, SourceText)
            document, program = notebook.load(raw.text)
            fixed = notebook.with_program(document, program, fixed, notebook.indent_of(raw.text))
        elif decode(original, source.display) != text:
            return unreadable(source.display, "the file changed while it was being fixed")
        write_atomically(source.path, encode_like(fixed, original))
    except (OSError, UnicodeError, notebook.NotebookError) as error:
        return unreadable(source.display, f"cannot write the fixed file: {error}")
    return None


def _parses(text: str) -> bool:
    import libcst

    try:
        libcst.parse_module(text)
    except Exception:
        return False
    return True


class _PrefilterCache(DigestCache):
    """Which rules' triggers each file passed, so a warm run searches no text: keyed by
    the configuration and the enabled rules' trigger words and patterns."""

    def __init__(self, settings: Settings, enabled: frozenset[str]) -> None:
        import hashlib
        import json

        rules = static_rules()
        triggers = [
            (code, rules[code].triggers, rules[code].trigger_pattern)
            for code in sorted(enabled)
            if code in rules
        ]
        stamp = hashlib.blake2b(json.dumps(triggers).encode(), digest_size=8).hexdigest()
        super().__init__(settings.project_root, f"prefilter-{settings.fingerprint(enabled)}{stamp}")


def _cached_codes(
    cache: _PrefilterCache | None,
    source: SourcePath,
    text: SourceText,
    settings: Settings,
    enabled: frozenset[str],
) -> tuple[str, ...]:
    stored = cache.get(source.display, text.digest) if cache is not None else None
    if isinstance(stored, list):
        return tuple(stored)
    codes = codes_for(source, text.text, settings, enabled)
    if cache is not None:
        cache.put(source.display, text.digest, list(codes))
    return codes


def _cached_findings(cache: DigestCache | None, path: str, digest: str) -> list[Finding] | None:
    stored = cache.get(path, digest) if cache is not None else None
    if not isinstance(stored, list):
        return None
    try:
        return [Finding.from_json(item) for item in stored]
    except (KeyError, TypeError, ValueError):
        return None


def codes_for(
    source: SourcePath, text: str, settings: Settings, enabled: frozenset[str]
) -> tuple[str, ...]:
    """The enabled rules that could fire on this text: the per-file ignores removed,
    and only rules whose trigger words (and trigger pattern) occur in it."""
    try:
        relative = source.path.relative_to(settings.project_root).as_posix()
    except ValueError:
        relative = source.display
    codes = enabled - settings.ignored_for(relative)
    rules = static_rules()
    return tuple(
        code
        for code in sorted(codes)
        if code in rules and triggered(rules[code], text, settings.options)
    )


def triggered(
    rule: RuleMeta | type[Rule], text: str, options: Mapping[str, Any] | None = None
) -> bool:
    if options and any(options.get(name) for name in rule.options_widening_triggers):
        return True  # the user's own names can make any file relevant
    if rule.triggers and not any(word in text for word in rule.triggers):
        return False
    return rule.trigger_pattern is None or pattern_found(rule.trigger_pattern, text)


@functools.cache
def static_rules() -> dict[str, RuleMeta]:
    """Rules with a static check (BN000/BN999 are emitted by the engine itself), as the
    catalog knows them: their modules are imported only for files that need them."""
    return {code: meta for code, meta in catalog().items() if meta.static}


def _run_jobs(jobs: Sequence[LintJob], index: ProjectIndex, options: Any) -> list[list[Finding]]:
    if not jobs:
        return []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    import bnlint.engine.lint  # noqa: F401  (import once, before forking)

    rules = static_rules()
    codes = {code for job in jobs for code in job.codes}
    walks_libcst = any(rules[code].walks_libcst for code in codes)

    def before_fork() -> None:
        # Import what every worker needs once here rather than in each worker: the
        # rules the jobs run, and libcst when one of them walks it (rules on the
        # `ast` need it only to place a rare finding).
        for code in sorted(codes):
            rule_class(code)
        if walks_libcst:
            importlib.import_module("libcst")

    return parallel_map(
        lint_job,
        jobs,
        size=lambda job: len(job.text),
        shared=(index, options),
        before_fork=before_fork,
        budget=file_time_budget(options),
        over_budget=over_budget,
    )


def over_budget(job: LintJob, seconds: float) -> list[Finding]:
    """The finding that stands for a file skipped because it used up its budget."""
    return [
        file_problem(
            INTERNAL_ERROR,
            job.display,
            f"bnlint spent more than {seconds:g} s of CPU time on this file and skipped it",
            "report this bnlint bug with the file; the other files were checked "
            "(`file-time-budget` in [tool.bnlint] sets the limit)",
        )
    ]


def lint_job(job: LintJob, index: ProjectIndex, options: Any) -> list[Finding]:
    from bnlint.engine.lint import lint_text

    rules = [rule_class(code) for code in job.codes]
    try:
        return lint_text(job.display, job.text, rules, index, options)
    except Exception as error:  # the engine's own bug: report it, keep going
        return [
            file_problem(
                INTERNAL_ERROR,
                job.display,
                f"bnlint failed on this file: {type(error).__name__}: {error}",
                "report this bnlint bug with the file; the other files were checked",
            )
        ]
