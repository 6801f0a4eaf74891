"""Project batch generators: Keras-style classes whose generator method yields batches.

Older training scripts (and ports of Keras code) do not use a DataLoader. They build
`Generator(lines, shape, batch_size=1)` and iterate `Generator(...).generate()`, a
generator method that collects samples and yields when the count reaches
`self.batch_size`. Such a method yields batches of the constructor's batch size only
because of how it uses the attribute, so it is read from the method's code, never from
names alone: the method holds a `yield` inside an `if` that compares
`self.<attr>` (an attribute named for the batch size) with a counter or with `len(...)`
of a list, and the constructor keeps a parameter as that attribute. The batch size of a
call is then what it passes for that parameter, or the parameter's default
(bnlint.index.loaders.generator_batch).
"""

from __future__ import annotations

import ast
from typing import Any

Json = dict[str, Any]

_COUNTING = (ast.Eq, ast.GtE, ast.LtE)


def batch_generators(node: ast.ClassDef, init_attrs: dict[str, str]) -> Json:
    """method → {"param": the constructor parameter of its batch size, "default": its
    literal default when it has one}, for each batching generator method of a class."""
    init = next(
        (s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None
    )
    if init is None or not init_attrs:
        return {}
    by_attr = {attr: param for param, attr in init_attrs.items() if "batch" in attr.lower()}
    if not by_attr:
        return {}
    defaults = _literal_defaults(init)
    found: Json = {}
    for method in node.body:
        if not isinstance(method, ast.FunctionDef) or method.name == "__init__":
            continue
        attr = _batching_attr(method, frozenset(by_attr))
        if attr is None:
            continue
        param = by_attr[attr]
        entry: Json = {"param": param}
        if param in defaults:
            entry["default"] = defaults[param]
        found[method.name] = entry
    return found


def _batching_attr(method: ast.FunctionDef, attrs: frozenset[str]) -> str | None:
    """The batch-size attribute `method` yields by: a `yield` in the body of an `if`
    whose test counts against `self.<attr>` (`if self.batch_size == b:`,
    `if len(images) >= self.batch_size:`). None when there is no such `yield`."""
    for node in ast.walk(method):
        if isinstance(node, ast.FunctionDef | ast.Lambda) and node is not method:
            continue
        if not isinstance(node, ast.If):
            continue
        attr = _counted_attr(node.test, attrs)
        if attr is not None and any(_yields(statement) for statement in node.body):
            return attr
    return None


def _counted_attr(test: ast.expr, attrs: frozenset[str]) -> str | None:
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    if not isinstance(test.ops[0], _COUNTING):
        return None
    sides = (test.left, test.comparators[0])
    for side, other in (sides, sides[::-1]):
        if (
            isinstance(side, ast.Attribute)
            and isinstance(side.value, ast.Name)
            and side.value.id == "self"
            and side.attr in attrs
            and _is_count(other)
        ):
            return side.attr
    return None


def _is_count(node: ast.expr) -> bool:
    """A counter name (`b`, `count`) or `len(<name>)`."""
    if isinstance(node, ast.Name):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "len"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
    )


def _yields(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Yield)


def _literal_defaults(function: ast.FunctionDef) -> dict[str, Any]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    pairs = [
        *zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=False),
        *zip(args.kwonlyargs, args.kw_defaults, strict=False),
    ]
    return {
        arg.arg: default.value
        for arg, default in pairs
        if isinstance(default, ast.Constant) and isinstance(default.value, int | str)
    }
