"""The project-wide model index, built from one summary per Python file of the project.

The project is the checked paths' root (the directory of the configuration, or the
nearest `pyproject.toml` / `.git`), walked with the same excludes as a check, even when
only some files are checked (as pre-commit does), so a model defined in one module is
known where another module trains it. Without such a marker (a downloaded folder of
scripts) the working directory stands in for the project when every checked file lies
below it, so `bnlint check train.py` there still sees its sibling modules; a home
directory, the filesystem root, or a folder holding more than `UNMARKED_PROJECT_LIMIT`
source files is not walked (only the checked files are indexed then). Summaries are
cached by content hash, so a warm run reads the files but summarises only those that
changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bnlint.config import Settings
from bnlint.engine.budget import file_time_budget
from bnlint.engine.cache import DigestCache
from bnlint.engine.discovery import SourcePath, discover
from bnlint.engine.pool import parallel_map
from bnlint.engine.source import SourceText, read_file
from bnlint.finding import Finding
from bnlint.index import FileSummary, ProjectIndex, summarize_file

# An unmarked working directory with more source files than this is not a project of
# scripts but something larger (a home or data folder): it is not walked.
UNMARKED_PROJECT_LIMIT = 5000


def build_index(
    settings: Settings,
    checked: Sequence[tuple[SourcePath, SourceText]],
    *,
    use_cache: bool,
) -> ProjectIndex:
    cwd = Path.cwd()
    # The checked texts win over the disk: stdin buffers are summarised as edited.
    texts: dict[str, SourceText] = {source.display: text for source, text in checked}
    paths = [source.display for source, _ in checked]
    for source in _project_sources(settings, cwd, checked):
        if source.display not in texts:
            read = read_file(source.path, source.display)
            if isinstance(read, Finding):
                continue  # reported only if the file itself is checked
            texts[source.display] = read
            paths.append(source.display)
    cache = DigestCache(settings.project_root, "summaries") if use_cache else None
    summaries: dict[str, FileSummary] = {}
    missing: list[tuple[str, str]] = []
    for path in paths:
        text = texts[path]
        summary = _from_json(cache.get(path, text.digest)) if cache is not None else None
        if summary is None:
            missing.append((path, text.text))
        else:
            summaries[path] = summary
    fresh = parallel_map(
        _summarize,
        missing,
        size=lambda item: len(item[1]),
        budget=file_time_budget(settings.options),
        over_budget=_left_out,
    )
    for (path, _), summary in zip(missing, fresh, strict=True):
        if summary is None:
            continue  # over its budget: left out of the index, and not cached
        summaries[path] = summary
        if cache is not None:
            cache.put(path, texts[path].digest, summary.to_json())
    if cache is not None:
        cache.save()
    return ProjectIndex.from_summaries(str(settings.project_root), summaries)


def _project_sources(
    settings: Settings, cwd: Path, checked: Sequence[tuple[SourcePath, SourceText]]
) -> list[SourcePath]:
    """The files of the project around the checked ones (see the module docstring)."""
    if settings.project_marked:
        return list(discover([settings.project_root], settings, cwd))
    root = settings.project_root
    if root in (Path.home(), Path(root.anchor)) or not checked:
        return []
    if not all(source.path.is_relative_to(root) for source, _ in checked):
        return []
    found: list[SourcePath] = []
    for source in discover([root], settings, cwd):
        found.append(source)
        if len(found) > UNMARKED_PROJECT_LIMIT:
            return []
    return found


def _summarize(item: tuple[str, str]) -> FileSummary | None:
    return summarize_file(*item)


def _left_out(item: tuple[str, str], seconds: float) -> FileSummary | None:
    """A file whose summary took longer than its budget is left out of the index (its
    own check, under the same budget, reports it if it is slow there too)."""
    return None


def _from_json(stored: object) -> FileSummary | None:
    if stored is None:
        return None
    try:
        return FileSummary.from_json(stored)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return None
