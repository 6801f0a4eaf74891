"""Every rule bnlint knows, found by scanning the `bnlint.rules` package.

There is no hand-kept list: a new file in `rules/` with one `Rule` subclass is a new
rule. Selectors (`--select`, `noqa`, config) accept a code, a code prefix, a rule
name or `ALL`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

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
        for value in vars(module).values():
            # Modules are skipped first: touching the lazily loaded libcst (even
            # through isinstance's __class__ lookup) would import it.
            if isinstance(value, ModuleType):
                continue
            if (
                isinstance(value, type)
                and issubclass(value, Rule)
                and value is not Rule
                and value.__module__ == module.__name__
            ):
                if value.code in found:
                    raise RuntimeError(f"rule code {value.code} is declared twice")
                found[value.code] = value
    return dict(sorted(found.items()))


@functools.cache
def _names() -> dict[str, str]:
    return {rule.name: code for code, rule in all_rules().items()}


def rule_for(code_or_name: str) -> type[Rule] | None:
    rules = all_rules()
    key = code_or_name.strip()
    if key.upper() in rules:
        return rules[key.upper()]
    code = _names().get(key.lower())
    return rules[code] if code else None


def resolve_selector(selector: str) -> frozenset[str]:
    """The codes a selector names. Raises UnknownSelectorError when it names none."""
    key = selector.strip()
    if key.upper() == "ALL":
        return frozenset(all_rules())
    code = _names().get(key.lower())
    if code is not None:
        return frozenset({code})
    matches = frozenset(code for code in all_rules() if code.startswith(key.upper()))
    if not matches or not key[:1].isalpha():
        raise UnknownSelectorError(
            f"unknown rule selector {selector!r}: not a code, code prefix or rule name "
            "(run `bnlint rules` to list them)"
        )
    return matches


def default_codes() -> frozenset[str]:
    return frozenset(code for code, rule in all_rules().items() if rule.default_enabled)


DOCS_URL = "https://github.com/bnlint/bnlint/blob/main/README.md#rules"


def rule_infos() -> tuple[RuleInfo, ...]:
    """What reporters may know about the rules (they never import rules themselves)."""
    return tuple(
        RuleInfo(
            code=code,
            name=rule.name,
            severity=rule.severity,
            default_enabled=rule.default_enabled,
            summary=rule.summary(),
            documentation=rule.documentation(),
            url=f"{DOCS_URL}-{code.lower()}",
        )
        for code, rule in all_rules().items()
    )


def run_summary(files_checked: int, cwd: Path, fixed: int = 0) -> RunSummary:
    from bnlint import __version__

    return RunSummary(
        files_checked=files_checked,
        rules=rule_infos(),
        tool_version=__version__,
        working_directory=str(cwd),
        fixed=fixed,
    )
