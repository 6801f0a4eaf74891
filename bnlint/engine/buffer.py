"""One source buffer → its findings, the way `bnlint check` would report the file.

The front ends that hand bnlint one file at a time (the flake8 plugin, the language
server) share this: the configuration is found from the buffer's path, the enabled
rules, per-file ignores and trigger-word pre-filter are the engine's, and the rules
that need the project index see the project as it is on disk with this buffer's text
in place of the file's. The index of the files on disk is built once per process and
project root (from the summary cache), not once per buffer, so a long-lived process
that sees many files pays for the project walk once; `forget_project` drops it when
files on disk change (the language server calls it on save).
"""

from __future__ import annotations

import os
from pathlib import Path

from bnlint.config import Selection, Settings, load_settings
from bnlint.engine.discovery import SourcePath, display_path
from bnlint.engine.run import LintJob, codes_for, lint_job, static_rules
from bnlint.finding import Finding
from bnlint.index import ProjectIndex

_DISK_INDEXES: dict[Path, ProjectIndex] = {}


def settings_for(path: Path, cwd: Path) -> Settings:
    """The configuration `bnlint check <path>` would use (raises `ConfigError`)."""
    start = path if path.exists() else path.parent
    return load_settings(start if start.exists() else cwd)


def check_buffer(
    path: Path,
    text: str,
    *,
    cwd: Path,
    settings: Settings | None = None,
    enabled: frozenset[str] | None = None,
) -> list[Finding]:
    """Findings for `text` as the content of `path`, reported under the path relative
    to `cwd` (as `bnlint check` reports it), sorted. Files that contain none of the
    enabled rules' trigger words are not parsed."""
    if settings is None:
        settings = settings_for(path, cwd)
    if enabled is None:
        enabled = settings.enabled_codes(Selection())
    absolute = Path(os.path.abspath(path))
    source = SourcePath(absolute, display_path(absolute, cwd))
    if text.startswith("\ufeff"):
        text = text[1:]
    codes = codes_for(source, text, settings, enabled)
    if not codes:
        return []
    rules = static_rules()
    index = ProjectIndex.empty(str(settings.project_root))
    if any(rules[code].needs_index for code in codes):
        index = _index_with(settings, source.display, text)
    findings = lint_job(LintJob(source.display, text, codes), index, settings.options)
    return sorted(findings, key=Finding.sort_key)


def forget_project(project_root: Path | None = None) -> None:
    """Drop the cached on-disk index of one project (all projects when None)."""
    if project_root is None:
        _DISK_INDEXES.clear()
    else:
        _DISK_INDEXES.pop(project_root, None)


def _index_with(settings: Settings, display: str, text: str) -> ProjectIndex:
    from bnlint.engine.project import build_index
    from bnlint.index import summarize_file

    root = settings.project_root
    disk = _DISK_INDEXES.get(root)
    if disk is None:
        disk = _DISK_INDEXES[root] = build_index(settings, [], use_cache=True)
    summaries = dict(disk.summaries)
    summaries[display] = summarize_file(display, text)
    return ProjectIndex.from_summaries(str(root), summaries)
