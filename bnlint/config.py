"""`[tool.bnlint]` → a frozen `Settings` object.

The configuration is the nearest `pyproject.toml` with a `[tool.bnlint]` table, walking
up from the checked path (ruff and black do the same), or the file given with
`--config`. Anything the file says that bnlint does not understand (an unknown key, an
unknown rule code, a value of the wrong type, TOML that does not parse) is a
`ConfigError`: the CLI exits 2 rather than silently ignoring it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnlint.registry import UnknownSelectorError, default_codes, resolve_selector

if TYPE_CHECKING:
    import pathspec

SELECTION_KEYS = ("select", "extend-select", "ignore")
PATTERN_KEYS = ("exclude", "extend-exclude")
RULE_OPTIONS: dict[str, Any] = {
    "small-batch-threshold": 8,
    "transductive-batchnorm": False,
    "eval-function-names": [],
    "running-stats-constructor": False,
    # Not a rule's: seconds one file may take before it is skipped with a BN999 finding.
    "file-time-budget": 20,
}
KNOWN_KEYS = frozenset({*SELECTION_KEYS, *PATTERN_KEYS, "per-file-ignores", *RULE_OPTIONS})
# Directories never worth walking into (hidden directories are skipped too).
DEFAULT_EXCLUDES = (
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "__pycache__",
    "node_modules",
    ".bnlint_cache",
)
PROJECT_MARKERS = ("pyproject.toml", ".git")


class ConfigError(Exception):
    """A configuration problem the user must fix; the message names the file and key."""


@dataclass(frozen=True)
class Selection:
    """One layer of rule selection (the config file, then the command line)."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def apply(self, codes: frozenset[str]) -> frozenset[str]:
        if self.select is not None:
            codes = _resolve_all(self.select)
        return (codes | _resolve_all(self.extend_select)) - _resolve_all(self.ignore)


@dataclass(frozen=True)
class Settings:
    project_root: Path
    config_path: Path | None = None
    selection: Selection = Selection()
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    extend_exclude: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: dict(RULE_OPTIONS))
    # Apply the excludes to files named on the command line too (`--force-exclude`).
    force_exclude: bool = False
    # Whether a pyproject.toml or .git marks the project root (else: the working dir).
    project_marked: bool = True

    def enabled_codes(self, cli: Selection) -> frozenset[str]:
        return cli.apply(self.selection.apply(default_codes()))

    def ignored_for(self, relative_path: str) -> frozenset[str]:
        """Codes `per-file-ignores` switches off for a path relative to the project root."""
        ignored: set[str] = set()
        for spec, codes in self._per_file_specs:
            if spec.match_file(relative_path):
                ignored |= codes
        return frozenset(ignored)

    @functools.cached_property
    def _per_file_specs(self) -> list[tuple[pathspec.GitIgnoreSpec, frozenset[str]]]:
        if not self.per_file_ignores:
            return []
        import pathspec

        return [
            (pathspec.GitIgnoreSpec.from_lines([pattern]), codes)
            for pattern, codes in self.per_file_ignores
        ]

    def fingerprint(self, enabled: Iterable[str]) -> str:
        """Part of the cache key: anything here may change a file's findings."""
        payload = json.dumps(
            {
                "enabled": sorted(enabled),
                "per-file-ignores": [[p, sorted(c)] for p, c in self.per_file_ignores],
                "options": dict(self.options),
            },
            sort_keys=True,
        )
        return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


def find_project_root(start: Path) -> Path | None:
    """The nearest ancestor holding `pyproject.toml` or `.git`, if any."""
    start = start if start.is_dir() else start.parent
    for directory in (start, *start.parents):
        if any((directory / marker).exists() for marker in PROJECT_MARKERS):
            return directory
    return None


def find_config(start: Path) -> Path | None:
    """The nearest `pyproject.toml` with a `[tool.bnlint]` table."""
    start = start if start.is_dir() else start.parent
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and _has_bnlint_table(candidate):
            return candidate
    return None


def load_settings(start: Path, config_path: Path | None = None) -> Settings:
    start = start.resolve()
    if config_path is None:
        config_path = find_config(start)
        if config_path is None:
            root = find_project_root(start)
            # Without a marked project, the working directory holds the cache, as in
            # ruff, and stands in for the project (engine/project.py bounds that walk).
            if root is None:
                return Settings(project_root=Path.cwd(), project_marked=False)
            return Settings(project_root=root)
    config_path = config_path.resolve()
    table = _read_table(config_path, required=True)
    return _settings_from_table(table, config_path)


def _has_bnlint_table(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if "bnlint" not in text:
        return False
    return bool(_read_table(path, required=False))


def _read_table(path: Path, *, required: bool) -> dict[str, Any]:
    import tomllib  # only when a configuration is actually read

    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error
    table = document.get("tool", {}).get("bnlint")
    if table is None:
        if required and path.name == "pyproject.toml":
            raise ConfigError(f"{path} has no [tool.bnlint] table")
        # A standalone bnlint.toml-style file may hold the keys at the top level.
        return document if required else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.bnlint] must be a table")
    return table


def _settings_from_table(table: Mapping[str, Any], path: Path) -> Settings:
    unknown = sorted(set(table) - KNOWN_KEYS - {"runtime"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown key{'s' if len(unknown) > 1 else ''} in [tool.bnlint]: "
            f"{', '.join(unknown)} (known keys: {', '.join(sorted(KNOWN_KEYS))})"
        )
    selection = Selection(
        select=_selectors(table, "select", path) if "select" in table else None,
        extend_select=_selectors(table, "extend-select", path) or (),
        ignore=_selectors(table, "ignore", path) or (),
    )
    per_file: list[tuple[str, frozenset[str]]] = []
    raw_per_file = table.get("per-file-ignores", {})
    if not isinstance(raw_per_file, dict):
        raise ConfigError(f"{path}: per-file-ignores must be a table of pattern = [codes]")
    for pattern, codes in raw_per_file.items():
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ConfigError(f"{path}: per-file-ignores.{pattern!r} must be a list of codes")
        per_file.append((pattern, _resolve_all(codes, where=f"{path}: per-file-ignores")))
    options = dict(RULE_OPTIONS)
    for key, default in RULE_OPTIONS.items():
        if key in table:
            value = table[key]
            if type(value) is not type(default) or (
                isinstance(value, list) and not all(isinstance(v, str) for v in value)
            ):
                raise ConfigError(f"{path}: {key} must be {_type_name(default)}, not {value!r}")
            options[key] = value
    return Settings(
        project_root=path.parent,
        config_path=path,
        selection=selection,
        per_file_ignores=tuple(per_file),
        exclude=_patterns(table, "exclude", path) or DEFAULT_EXCLUDES,
        extend_exclude=_patterns(table, "extend-exclude", path) or (),
        options=options,
    )


def _selectors(table: Mapping[str, Any], key: str, path: Path) -> tuple[str, ...] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of rule codes or names")
    _resolve_all(value, where=f"{path}: {key}")
    return tuple(value)


def _patterns(table: Mapping[str, Any], key: str, path: Path) -> tuple[str, ...] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of path patterns")
    return tuple(value)


def _resolve_all(selectors: Sequence[str], where: str = "") -> frozenset[str]:
    codes: set[str] = set()
    for selector in selectors:
        try:
            codes |= resolve_selector(selector)
        except UnknownSelectorError as error:
            raise ConfigError(f"{where}: {error}" if where else str(error)) from error
    return frozenset(codes)


def _type_name(value: Any) -> str:
    return {bool: "true or false", int: "an integer", list: "a list of strings"}.get(
        type(value), type(value).__name__
    )
