"""Every rule bnlint knows, found by scanning the `bnlint.rules` package.

There is no hand-kept list: a new file in `rules/` with one `Rule` subclass is a new
rule. Selectors (`--select`, `noqa`, config) accept a code, a code prefix, a rule
name or `ALL`.

Importing every rule module (and what they import: the index, the tracer's event
types) costs about 0.1 s, more than the rest of a run on a file no rule cares about.
So what the engine needs before parsing (codes, names, defaults, trigger words) is
kept in a catalog beside the rules' bytecode (`rules/__pycache__/`), checked against
the rule files' sizes and modification times as Python checks its `.pyc` files, and
a rule module is imported only when a file needs its check.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import pkgutil
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bnlint.finding import RuleInfo, RunSummary
from bnlint.rule import Rule


class UnknownSelectorError(ValueError):
    """A selector that names no rule: a usage error, never silently ignored."""


@functools.cache
def all_rules() -> dict[str, type[Rule]]:
    # Imported by name: setuptools maps the top-level rules/ folder onto bnlint.rules.
    package = importlib.import_module("bnlint.rules")
    found: dict[str, type[Rule]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for rule in _rules_in(module):
            if rule.code in found:
                raise RuntimeError(f"rule code {rule.code} is declared twice")
            found[rule.code] = rule
    return dict(sorted(found.items()))


def _rules_in(module: ModuleType) -> list[type[Rule]]:
    """The Rule subclasses a rule module defines (not those it imports)."""
    rules = []
    for value in vars(module).values():
        # Modules are skipped first: touching the lazily loaded libcst (even through
        # isinstance's __class__ lookup) would import it.
        if isinstance(value, ModuleType):
            continue
        if (
            isinstance(value, type)
            and issubclass(value, Rule)
            and value is not Rule
            and value.__module__ == module.__name__
        ):
            rules.append(value)
    return rules


@dataclass(frozen=True)
class RuleMeta:
    """What is known of a rule without importing its module (attribute names as on
    `Rule`, so the pre-filter reads either)."""

    code: str
    name: str
    module: str
    severity: str
    summary: str
    default_enabled: bool
    triggers: tuple[str, ...]
    trigger_pattern: str | None
    options_widening_triggers: tuple[str, ...]
    needs_index: bool
    static: bool  # has a static check (BN000/BN999 are emitted by the engine itself)
    # walks the libcst tree: the engine then imports libcst once before forking workers
    walks_libcst: bool = False


_CATALOG_VERSION = 2


@functools.cache
def catalog() -> dict[str, RuleMeta]:
    package = importlib.import_module("bnlint.rules")
    directory = Path(package.__path__[0])
    key = _catalog_key(directory)
    store = directory / "__pycache__" / "bnlint-catalog.json"
    try:
        data = json.loads(store.read_text(encoding="utf-8"))
        if data["key"] == key:
            return {meta["code"]: _meta_from_json(meta) for meta in data["rules"]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    metas = {code: _meta(rule) for code, rule in all_rules().items()}
    _write_catalog(store, key, metas)
    return metas


def _meta_from_json(data: dict[str, Any]) -> RuleMeta:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return RuleMeta(**values)


def _meta(rule: type[Rule]) -> RuleMeta:
    return RuleMeta(
        code=rule.code,
        name=rule.name,
        module=rule.__module__,
        severity=rule.severity.value,
        summary=rule.summary(),
        default_enabled=rule.default_enabled,
        triggers=tuple(rule.triggers),
        trigger_pattern=rule.trigger_pattern,
        options_widening_triggers=tuple(rule.options_widening_triggers),
        needs_index=rule.needs_index,
        static=any(
            attribute.startswith(("visit_", "leave_", "check_module")) for attribute in dir(rule)
        ),
        walks_libcst=rule.syntax == "libcst"
        and any(attribute.startswith(("visit_", "leave_")) for attribute in dir(rule)),
    )


def _catalog_key(directory: Path) -> str:
    from bnlint import __version__

    stamps = [f"{__version__}/{_CATALOG_VERSION}"]
    for source in (Path(__file__).with_name("rule.py"), *directory.iterdir()):
        if source.suffix == ".py":
            stat = source.stat()
            stamps.append(f"{source.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(sorted(stamps))


def _write_catalog(store: Path, key: str, metas: dict[str, RuleMeta]) -> None:
    """Best effort, atomic: a read-only install just imports the rules every time."""
    import tempfile

    try:
        store.parent.mkdir(exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=store.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump({"key": key, "rules": [asdict(m) for m in metas.values()]}, stream)
        os.replace(temporary, store)
    except OSError:
        pass


@functools.cache
def rule_class(code: str) -> type[Rule]:
    """The rule class for a code, importing only its module."""
    module = importlib.import_module(catalog()[code].module)
    for rule in _rules_in(module):
        if rule.code == code:
            return rule
    raise LookupError(f"rule {code} is not in {module.__name__}")


@functools.cache
def _names() -> dict[str, str]:
    return {meta.name: code for code, meta in catalog().items()}


def rule_for(code_or_name: str) -> type[Rule] | None:
    key = code_or_name.strip()
    code = key.upper() if key.upper() in catalog() else _names().get(key.lower())
    return rule_class(code) if code else None


def resolve_selector(selector: str) -> frozenset[str]:
    """The codes a selector names. Raises UnknownSelectorError when it names none."""
    key = selector.strip()
    if key.upper() == "ALL":
        return frozenset(catalog())
    code = _names().get(key.lower())
    if code is not None:
        return frozenset({code})
    matches = frozenset(code for code in catalog() if code.startswith(key.upper()))
    if not matches or not key[:1].isalpha():
        raise UnknownSelectorError(
            f"unknown rule selector {selector!r}: not a code, code prefix or rule name "
            "(run `bnlint rules` to list them)"
        )
    return matches


def default_codes() -> frozenset[str]:
    return frozenset(code for code, meta in catalog().items() if meta.default_enabled)


DOCS_URL = "https://github.com/bnlint/bnlint/blob/main/README.md#rules"


def rule_infos(documentation: bool = True) -> tuple[RuleInfo, ...]:
    """What reporters may know about the rules (they never import rules themselves).
    Only SARIF carries each rule's full documentation; without `documentation` the
    rule modules are not imported and the summary stands in for it."""
    from bnlint.finding import Severity

    if documentation:
        rules = all_rules()
    return tuple(
        RuleInfo(
            code=code,
            name=meta.name,
            severity=Severity(meta.severity),
            default_enabled=meta.default_enabled,
            summary=meta.summary,
            documentation=rules[code].documentation() if documentation else meta.summary,
            url=f"{DOCS_URL}-{code.lower()}",
        )
        for code, meta in catalog().items()
    )


def run_summary(
    files_checked: int, cwd: Path, fixed: int = 0, documentation: bool = True
) -> RunSummary:
    from bnlint import __version__

    return RunSummary(
        files_checked=files_checked,
        rules=rule_infos(documentation),
        tool_version=__version__,
        working_directory=str(cwd),
        fixed=fixed,
    )
