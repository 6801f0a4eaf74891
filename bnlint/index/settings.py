"""Numeric settings defined as configuration, by key: what a training project's
`args.bn_momentum` or `cfg.MODEL.BN_MOMENTUM` is by default, wherever it is defined.

A file's summary keeps, under `settings`, the momentum-named keys it defines with a
number, each with the number and its position:

- `parser.add_argument("--bn-momentum", type=float, default=0.9)` (key `bn_momentum`,
  or its `dest=`);
- `_C.MODEL.BN_MOMENTUM = 0.9` (yacs and attribute-style configs: the last attribute);
- a class-level field `bn_momentum: float = 0.9`, or `= field(default=0.9)` (dataclasses,
  config classes, schemas);
- `{"bn_momentum": 0.9}` and `dict(bn_momentum=0.9)`.

Only keys whose name says momentum are kept: the summaries stay small, and BN010 is the
reader. A key defined with different numbers in different places is ambiguous and
callers treat it as unknown; definitions in test files are not the project's defaults.
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.index.project import ProjectIndex
    from bnlint.index.summary import Positions

_WORD = "momentum"


def _number(node: ast.AST | None) -> float | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        assert isinstance(node.value, int | float)
        return float(node.value)
    return None


def settings_of(tree: ast.Module, positions: Positions) -> dict[str, list[Any]]:
    """key → [[number, position], ...] for the momentum-named settings of a file."""
    found: dict[str, list[Any]] = {}
    lines = [n for n, line in enumerate(positions.lines, start=1) if "omentum" in line.lower()]
    for key, value in _definitions(tree, lines):
        if _WORD in key.lower():
            number = _number(value)
            if number is not None:
                found.setdefault(key, []).append([number, positions.of(value)])
    return found


def _near(tree: ast.Module, lines: list[int]) -> Iterator[ast.AST]:
    """The nodes of `tree` whose lines include one of `lines` (sorted): subtrees
    elsewhere are not walked."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        first = getattr(node, "lineno", None)
        if first is not None:
            last = getattr(node, "end_lineno", None) or first
            at = bisect.bisect_left(lines, first)
            if at == len(lines) or lines[at] > last:
                continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _definitions(tree: ast.Module, lines: list[int]) -> Iterator[tuple[str, ast.expr]]:
    for node in _near(tree, lines):
        if isinstance(node, ast.Call):
            yield from _call_definitions(node)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute):
                    yield target.attr, node.value
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value, value
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and statement.value is not None:
                    if isinstance(statement.target, ast.Name):
                        yield statement.target.id, _field_default(statement.value)
                elif isinstance(statement, ast.Assign):
                    for target in statement.targets:
                        if isinstance(target, ast.Name):
                            yield target.id, _field_default(statement.value)


def _field_default(value: ast.expr) -> ast.expr:
    """A config field's default: the number, or `default=` of a field declaration
    (`field(default=0.9)`, `Field(default=0.9)`, a schema's `FloatRange(default=0.9)`)."""
    if isinstance(value, ast.Call):
        for keyword in value.keywords:
            if keyword.arg == "default":
                return keyword.value
    return value


def _call_definitions(call: ast.Call) -> Iterator[tuple[str, ast.expr]]:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name == "add_argument":
        default = next((k.value for k in call.keywords if k.arg == "default"), None)
        dest = next((k.value for k in call.keywords if k.arg == "dest"), None)
        if default is None:
            return
        if isinstance(dest, ast.Constant) and isinstance(dest.value, str):
            yield dest.value, default
            return
        options = [
            arg.value
            for arg in call.args
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
        ]
        long = [option for option in options if option.startswith("--")]
        chosen = long[0] if long else (options[0] if options else None)
        if chosen is not None:
            yield chosen.lstrip("-").replace("-", "_"), default
    elif name == "dict":
        for keyword in call.keywords:
            if keyword.arg is not None:
                yield keyword.arg, keyword.value


def _is_test(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    name = parts[-1]
    return (
        any(part in ("test", "tests", "testing") for part in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


def setting_key(node: ast.expr) -> str | None:
    """The key a configuration read names: `args.bn_momentum`, `cfg.MODEL.BN_MOMENTUM`,
    `self.cfg.bn_momentum`, `config["bn_momentum"]`; None for a plain `self.attr` or a
    name (other lookups follow those) and for keys that do not say momentum."""
    key: str | None = None
    if isinstance(node, ast.Attribute):
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id == "self":
            return None
        key = node.attr
    elif isinstance(node, ast.Subscript):
        index = node.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, str):
            key = index.value
    return key if key is not None and _WORD in key.lower() else None


def project_setting(index: ProjectIndex, key: str) -> tuple[float, str, list[int]] | None:
    """The one number `key` is set to across the project, with where (path, position);
    None when no file defines it or files disagree."""
    memo = ("momentum-settings",)
    table: dict[str, list[tuple[float, str, list[int]]]] | None = index._memo.get(memo)
    if table is None:
        table = {}
        for path, summary in index.summaries.items():
            if _is_test(path):
                continue  # a test sets whatever its case needs, not the defaults
            for name, definitions in summary.settings.items():
                for number, position in definitions:
                    table.setdefault(name, []).append((number, path, position))
        index._memo[memo] = table
    definitions = table.get(key, [])
    if not definitions or len({number for number, _, _ in definitions}) != 1:
        return None
    return definitions[0]
