"""Which files a run checks.

Directories are walked recursively for `.py` files and Jupyter notebooks, skipping the
configured excludes, `.gitignore`d paths (every `.gitignore` from the project root down) and hidden
directories. A file named on the command line is always checked, whatever the
excludes say, as in flake8 and ruff without `--force-exclude`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bnlint.config import Settings

if TYPE_CHECKING:
    import pathspec


SOURCE_SUFFIXES = (".py", ".ipynb")


@dataclass(frozen=True)
class SourcePath:
    path: Path  # absolute
    display: str  # as reported: relative to the working directory when below it
    stdin: bool = False  # the text came from standard input, not from `path`


class _Ignores:
    """The exclude patterns and the `.gitignore` files that apply below the root."""

    def __init__(self, settings: Settings) -> None:
        import pathspec  # 25 ms: only imported when a directory is walked

        self.spec_type = pathspec.GitIgnoreSpec
        self.root = settings.project_root
        self.excludes = pathspec.GitIgnoreSpec.from_lines(
            [*settings.exclude, *settings.extend_exclude]
        )
        self.gitignores: dict[Path, pathspec.GitIgnoreSpec | None] = {}

    def _gitignore(self, directory: Path) -> pathspec.GitIgnoreSpec | None:
        if directory not in self.gitignores:
            spec = None
            candidate = directory / ".gitignore"
            if candidate.is_file():
                try:
                    lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
                    spec = self.spec_type.from_lines(lines)
                except OSError:
                    spec = None
            self.gitignores[directory] = spec
        return self.gitignores[directory]

    def ignored(self, path: Path, is_dir: bool) -> bool:
        name = path.name
        if is_dir and name.startswith(".") and name not in (".", ".."):
            return True
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            relative = None
        suffix = "/" if is_dir else ""
        if relative is not None:
            if self.excludes.match_file(relative.as_posix() + suffix):
                return True
            for ancestor in (self.root, *_between(self.root, path.parent)):
                spec = self._gitignore(ancestor)
                if spec is not None and spec.match_file(
                    path.relative_to(ancestor).as_posix() + suffix
                ):
                    return True
        elif self.excludes.match_file(name + suffix):
            return True
        return False

    def excluded_explicitly(self, path: Path) -> bool:
        """A named file under `--force-exclude`: excluded if it or a directory above it
        (up to the project root) is excluded, as pre-commit expects."""
        if self.ignored(path, is_dir=False):
            return True
        return any(
            self.ignored(directory, is_dir=True) for directory in _between(self.root, path.parent)
        )


def _between(root: Path, directory: Path) -> list[Path]:
    """Directories strictly below `root` down to `directory` included."""
    try:
        parts = directory.relative_to(root).parts
    except ValueError:
        return []
    return [root.joinpath(*parts[: i + 1]) for i in range(len(parts))]


def display_path(path: Path, cwd: Path) -> str:
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


def discover(paths: Sequence[Path], settings: Settings, cwd: Path) -> Iterator[SourcePath]:
    """Yield each file to check once, in a stable order. Paths must exist (the CLI
    checks); a symlink loop or unreadable entry is yielded so the reader reports it."""
    ignores: _Ignores | None = None
    seen: set[Path] = set()
    for given in paths:
        absolute = Path(os.path.abspath(given))
        if not absolute.is_dir():
            if settings.force_exclude:
                ignores = ignores or _Ignores(settings)
                if ignores.excluded_explicitly(absolute):
                    continue
            if absolute not in seen:
                seen.add(absolute)
                yield SourcePath(absolute, display_path(absolute, cwd))
            continue
        ignores = ignores or _Ignores(settings)
        for directory, dirnames, filenames in os.walk(absolute, followlinks=False):
            base = Path(directory)
            dirnames[:] = sorted(d for d in dirnames if not ignores.ignored(base / d, is_dir=True))
            for filename in sorted(filenames):
                if not filename.endswith(SOURCE_SUFFIXES):
                    continue
                file = base / filename
                if file in seen or ignores.ignored(file, is_dir=False):
                    continue
                seen.add(file)
                yield SourcePath(file, display_path(file, cwd))
