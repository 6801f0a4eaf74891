"""Normalisation classes passed as arguments: `norm_layer=nn.BatchNorm2d`.

Model code often builds its norms from a parameter (`self.bn1 = norm_layer(planes)`,
torchvision style) and passes the class down through several constructors
(`norm_layer=norm_layer`) from a default or a training script. A layer built by calling
such a parameter is named `$<parameter>` in the summary; this module records, per file,
every class that a parameter of a norm-like name can receive there: parameter defaults
(`def __init__(self, norm_layer=nn.BatchNorm2d)`) and keyword arguments
(`Net(norm_layer=SyncBatchNorm)`, also through a local variable or a `partial`). A
pass-through (`norm_layer=norm_layer`) and `None` (take the default) add nothing.
`ProjectIndex` combines the values of every file: the parameter builds BatchNorm only
when every value it can receive in the project is a BatchNorm; any other or unknown
value makes it unknown.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bnlint.index.summary import Names

# Text a file must contain to hold such an argument: cheap pre-filter.
_TEXT = re.compile(r"(?:[Nn]orm|NORM|[Bb][Nn])\w*\s*[=:,)]")
UNKNOWN = "?"
POSITIONAL = "#positional"
_TYPE_CHECKS = frozenset(
    {"isinstance", "issubclass", "type", "super", "print", "getattr", "hasattr", "setattr"}
)
# The written name of a norm class: `nn.GroupNorm`, `SyncBatchNorm`, `FrozenBN`.
_NORM_CLASS = re.compile(r"(?:Norm(?:\d[dD])?|BN(?:\d[dD])?)$")
Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def is_norm_parameter(name: str) -> bool:
    """A parameter that carries a normalisation class: `norm_layer`, `norm`, `bn`,
    `BatchNorm`, `bn_layer`, `conv_bn`."""
    lower = name.lower()
    return "norm" in lower or lower == "bn" or lower.startswith("bn_") or lower.endswith("_bn")


def norm_arguments(tree: ast.Module, text: str, names: Names) -> dict[str, list[str]]:
    """parameter name → the classes (summary names, or "?" for a value that cannot be
    read) that this file passes to or defaults for it. One walk over the tree; the
    names local to a function are read only for the functions that pass a norm."""
    found: dict[str, list[str]] = {}
    if not _TEXT.search(text):
        return found
    scopes: dict[int, _LocalNames] = {}

    def scope_of(function: Function | None) -> _LocalNames:
        key = id(function)
        if key not in scopes:
            scopes[key] = _LocalNames(function, names)
        return scopes[key]

    # Lines where a mention starts, as a running count: a node whose lines hold none
    # cannot pass or default a norm, so neither it nor anything inside it is entered
    # (most of a model file: forward, helpers, training loops).
    starts = [0] * (text.count("\n") + 2)
    line, position = 1, 0
    for match in _TEXT.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        starts[line] += 1
    before = list(accumulate(starts))

    def mentions_norm(node: ast.AST) -> bool:
        first: int | None = getattr(node, "lineno", None)
        if first is None:
            return True  # `arguments`, operators: entered, their parts are checked
        last: int = getattr(node, "end_lineno", None) or first
        return before[min(last, len(before) - 1)] > before[first - 1]

    def visit(node: ast.AST, function: Function | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for name, default in _defaults(node):
                # `None` means "the default below"; other constants are flags (`bn=True`).
                if is_norm_parameter(name) and not isinstance(default, ast.Constant):
                    _add(found, name, scope_of(function).values(default))
            function = node
        elif isinstance(node, ast.Call):
            # `Block(c, nn.GroupNorm)`: a norm class passed by position may fill any
            # norm parameter (recorded under POSITIONAL); `isinstance(m, nn.GroupNorm)`
            # passes nothing.
            checks_type = isinstance(node.func, ast.Name) and node.func.id in _TYPE_CHECKS
            for arg in [] if checks_type else node.args:
                written = _dotted(arg)
                if written is not None and _NORM_CLASS.search(written.rsplit(".", 1)[-1]):
                    _add(found, POSITIONAL, scope_of(function).values(arg))
            for keyword in node.keywords:
                if keyword.arg is None or not is_norm_parameter(keyword.arg):
                    continue
                value = keyword.value
                if isinstance(value, ast.Constant):
                    continue  # `None`: the callee's default; `bn=True`: a flag
                local = scope_of(function)
                if isinstance(value, ast.Name) and value.id in local.params:
                    continue  # passed through: recorded where its values come from
                _add(found, keyword.arg, local.values(value))
        for child in ast.iter_child_nodes(node):
            if mentions_norm(child):
                visit(child, function)

    for statement in tree.body:
        if mentions_norm(statement):
            visit(statement, None)
    return found


def _add(found: dict[str, list[str]], name: str, values: list[str]) -> None:
    bucket = found.setdefault(name, [])
    for value in values:
        if value not in bucket:
            bucket.append(value)


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    args = function.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    for extra in (args.vararg, args.kwarg):
        if extra is not None:
            names.add(extra.arg)
    return names


def _defaults(
    function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
) -> Iterator[tuple[str, ast.expr]]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    for arg, default in zip(
        positional[len(positional) - len(args.defaults) :], args.defaults, strict=True
    ):
        yield arg.arg, default
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if kw_default is not None:
            yield arg.arg, kw_default


def _own_statements(function: Function) -> Iterator[ast.AST]:
    """The statements of a function (imports and assignments are nothing else), not
    those of the functions and classes nested in it: `_own_nodes` without entering
    expressions, which hold no statements, in the same order."""
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    holds = (ast.stmt, ast.excepthandler, ast.match_case)
    if isinstance(function, ast.Lambda):
        return
    todo: list[ast.AST] = [node for node in function.body if not isinstance(node, nested)]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(
            c
            for c in ast.iter_child_nodes(node)
            if isinstance(c, holds) and not isinstance(c, nested)
        )


class _LocalNames:
    """Names bound in one scope: its own imports and `X = <class>` assignments."""

    def __init__(self, function: Function | None, names: Names) -> None:
        self.names = names
        self.imports: dict[str, str] = {}
        self.assigned: dict[str, list[ast.expr]] = {}
        self.params: set[str] = set()
        if function is None:
            return  # module names are the file's own (`names`)
        self.params = _parameters(function)
        for node in _own_statements(function):
            if isinstance(node, ast.ImportFrom):
                source = "." * node.level + (node.module or "")
                for alias in node.names:
                    joined = (
                        f"{source}.{alias.name}"
                        if source and not source.endswith(".")
                        else source + alias.name
                    )
                    self.imports[alias.asname or alias.name] = joined
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    self.assigned.setdefault(target.id, []).append(node.value)

    def values(self, node: ast.expr, depth: int = 0) -> list[str]:
        """The classes an expression may name, "?" where it cannot be read."""
        if isinstance(node, ast.Call):
            callee = self.qualify(node.func)
            if callee is not None and callee.rsplit(".", 1)[-1] == "partial" and node.args:
                return self.values(node.args[0], depth)
            return [UNKNOWN]
        if isinstance(node, ast.Name) and node.id in self.assigned and depth < 3:
            found: list[str] = []
            for value in self.assigned[node.id]:
                found.extend(self.values(value, depth + 1))
            return found
        if isinstance(node, ast.Name) and node.id in self.params:
            return []
        qualified = self.qualify(node)
        return [qualified] if qualified is not None else [UNKNOWN]

    def qualify(self, node: ast.expr) -> str | None:
        dotted = _dotted(node)
        if dotted is not None:
            first, _, tail = dotted.partition(".")
            if first in self.imports:
                return f"{self.imports[first]}.{tail}" if tail else self.imports[first]
        return self.names.qualify(node)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None
