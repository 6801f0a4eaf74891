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
import functools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bnlint.index.lines import on_lines, parser_lines

if TYPE_CHECKING:
    from bnlint.index.summary import Names

# Parameter names that carry a normalisation class.
NORM_PARAMETER = re.compile(r"(?i)norm|^bn$|^bn_|_bn$|batchnorm")
# Text a file must contain to hold such an argument: cheap pre-filter.
_TEXT = re.compile(r"(?i)(?:norm|bn)\w*\s*=")
UNKNOWN = "?"


@functools.lru_cache(maxsize=4096)
def is_norm_parameter(name: str) -> bool:
    return NORM_PARAMETER.search(name) is not None


def norm_arguments(tree: ast.Module, text: str, names: Names) -> dict[str, list[str]]:
    """parameter name → the classes (summary names, or "?" for a value that cannot be
    read) that this file passes to or defaults for it.

    Cost: one walk of the tree that enters only the nodes whose lines hold "norm" or
    "bn" (every norm-like keyword and parameter is on such a line), so O(nodes on those
    lines); a scope's local names (its statements) are read only for the scopes that
    hold such an argument or default."""
    found: dict[str, list[str]] = {}
    if not _TEXT.search(text):
        return found
    functions, calls = _functions_and_norm_calls(tree, _norm_lines(text))
    for scope in (tree, *functions):
        function = scope if not isinstance(scope, ast.Module) else None
        params = _parameters(function) if function is not None else set()
        local: _LocalNames | None = None
        if function is not None:
            for name, default in _defaults(function):
                # `None` means "the default below"; other constants are flags (`bn=True`).
                if is_norm_parameter(name) and not isinstance(default, ast.Constant):
                    local = local or _LocalNames(scope, names)
                    _add(found, name, local.values(default, params))
        for node in calls.get(scope, ()):
            for keyword in node.keywords:
                if keyword.arg is None or not is_norm_parameter(keyword.arg):
                    continue
                value = keyword.value
                if _is_none(value) or isinstance(value, ast.Constant):
                    continue  # the callee's default, or a flag (`bn=True`)
                if isinstance(value, ast.Name) and value.id in params:
                    continue  # passed through: recorded where its values come from
                local = local or _LocalNames(scope, names)
                _add(found, keyword.arg, local.values(value, params))
    return found


def _norm_lines(text: str) -> list[int] | None:
    """The sorted numbers (1-based) of the lines that hold "norm" or "bn" in any case:
    every norm-like name (a keyword, a parameter) is on one. None when the text has
    carriage returns (its line numbers may not be the parser's: keep every line)."""
    lines = parser_lines(text.lower())
    if lines is None:
        return None
    return [number for number, line in enumerate(lines, 1) if "norm" in line or "bn" in line]


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def _functions_and_norm_calls(
    tree: ast.Module, lines: list[int] | None
) -> tuple[list[Function], dict[Scope, list[ast.Call]]]:
    """Every function (a scope of its own) and, per scope, the calls with a norm-like
    keyword among its own nodes (not those of nested functions or class bodies; a
    function's decorators and defaults belong to no scope), in one walk. Nodes whose
    lines are not in `lines` are skipped: they hold no such keyword, nor a function with
    a norm-like parameter (only such functions are needed)."""
    functions: list[Function] = []
    calls: dict[Scope, list[ast.Call]] = {}
    todo: list[tuple[ast.AST, Scope | None]] = [(node, tree) for node in tree.body]
    while todo:
        node, owner = todo.pop()
        if not on_lines(node, lines):
            continue
        if isinstance(node, _FUNCTIONS):
            functions.append(node)
            body = node.body if isinstance(node.body, list) else [node.body]
            own = {id(child) for child in body}
            todo.extend(
                (child, node if id(child) in own else None) for child in ast.iter_child_nodes(node)
            )
            continue
        if isinstance(node, ast.ClassDef):
            owner = None
        elif (
            owner is not None
            and isinstance(node, ast.Call)
            and any(k.arg is not None and is_norm_parameter(k.arg) for k in node.keywords)
        ):
            calls.setdefault(owner, []).append(node)
        todo.extend((child, owner) for child in ast.iter_child_nodes(node))
    return functions, calls


def _add(found: dict[str, list[str]], name: str, values: list[str]) -> None:
    bucket = found.setdefault(name, [])
    for value in values:
        if value not in bucket:
            bucket.append(value)


def _is_none(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


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


Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def _own_statements(scope: Scope) -> Iterator[ast.AST]:
    """The statements of a scope, not those of the functions and classes nested in it
    (expressions hold none: they are not entered)."""
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    blocks = (ast.stmt, ast.excepthandler, ast.match_case)
    body: list[ast.AST] = list(scope.body) if not isinstance(scope, ast.Lambda) else []
    todo = [node for node in body if not isinstance(node, nested)]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(
            c
            for c in ast.iter_child_nodes(node)
            if isinstance(c, blocks) and not isinstance(c, nested)
        )


class _LocalNames:
    """Names bound in one scope: its own imports and `X = <class>` assignments."""

    def __init__(self, scope: Scope, names: Names) -> None:
        self.names = names
        self.imports: dict[str, str] = {}
        self.assigned: dict[str, list[ast.expr]] = {}
        if isinstance(scope, ast.Module):
            return  # module names are the file's own (`names`)
        for node in _own_statements(scope):
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

    def values(self, node: ast.expr, params: set[str], depth: int = 0) -> list[str]:
        """The classes an expression may name, "?" where it cannot be read."""
        if isinstance(node, ast.Call):
            callee = self.qualify(node.func)
            if callee is not None and callee.rsplit(".", 1)[-1] == "partial" and node.args:
                return self.values(node.args[0], params, depth)
            return [UNKNOWN]
        if isinstance(node, ast.Name) and node.id in self.assigned and depth < 3:
            found: list[str] = []
            for value in self.assigned[node.id]:
                found.extend(self.values(value, params, depth + 1))
            return found
        if isinstance(node, ast.Name) and node.id in params:
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
