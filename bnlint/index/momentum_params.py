"""Which constructor parameters of a class set a BatchNorm's `momentum`, across files.

A ported model passes the momentum down: `TabularNet(bn_momentum=0.9)` hands it to
`GhostNorm(momentum=bn_momentum)`, defined in another file, which hands it to
`nn.BatchNorm1d(momentum=momentum)`. Each class's summary keeps, under "momentum":

- "direct": the `__init__` parameters that reach a BatchNorm's `momentum` in the class
  (as the argument, or through `self.attr = param`);
- "forwards": `[param, callee, keyword]` for each `__init__` parameter passed by
  keyword to another callable, when the parameter's or the keyword's name says
  momentum; whether that keyword sets a BatchNorm momentum is resolved through the
  project index (`is_momentum_parameter`).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.index.project import ProjectIndex
    from bnlint.index.summary import Names

_CONSTRUCTOR_POSITION = 2  # BatchNorm*d(num_features, eps, momentum)
_DEPTH = 4


def momentum_facts(node: ast.ClassDef, names: Names) -> dict[str, Any] | None:
    """The class's "momentum" facts, or None when it passes no momentum on."""
    from bnlint.index.ast_names import is_batchnorm_class

    init = next(
        (
            s
            for s in node.body
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == "__init__"
        ),
        None,
    )
    if init is None:
        return None
    params = {arg.arg for arg in [*init.args.posonlyargs, *init.args.args, *init.args.kwonlyargs]}
    params.discard("self")
    stored = _stored_parameters(init, params)

    def parameter_of(value: ast.expr, method: ast.AST) -> str | None:
        if isinstance(value, ast.Name) and method is init and value.id in params:
            return value.id
        if (
            isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id == "self"
        ):
            return stored.get(value.attr)
        return None

    direct: set[str] = set()
    forwards: list[list[str]] = []
    for method in node.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for call in ast.walk(method):
            if not isinstance(call, ast.Call):
                continue
            callee = names.qualify(call.func)
            target = callee
            if callee in ("functools.partial", "partial") and call.args:
                target = names.qualify(call.args[0])
            if is_batchnorm_class(target):
                value = _momentum_argument(call, positional=target == callee)
                parameter = None if value is None else parameter_of(value, method)
                if parameter is not None:
                    direct.add(parameter)
                continue
            if callee is None or method is not init:
                continue
            for keyword in call.keywords:
                parameter = parameter_of(keyword.value, method)
                if (
                    parameter is not None
                    and keyword.arg is not None
                    and ("momentum" in keyword.arg.lower() or "momentum" in parameter.lower())
                ):
                    forwards.append([parameter, callee, keyword.arg])
    if not direct and not forwards:
        return None
    return {"direct": sorted(direct), "forwards": forwards}


def _momentum_argument(call: ast.Call, positional: bool) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "momentum":
            return keyword.value
    leading = call.args[: _CONSTRUCTOR_POSITION + 1]
    if (
        positional
        and len(call.args) > _CONSTRUCTOR_POSITION
        and not any(isinstance(arg, ast.Starred) for arg in leading)
    ):
        return call.args[_CONSTRUCTOR_POSITION]
    return None


def _stored_parameters(
    init: ast.FunctionDef | ast.AsyncFunctionDef, params: set[str]
) -> dict[str, str]:
    """`self.attr = param` in `__init__`: attr → param (attributes set once only)."""
    counts: dict[str, int] = {}
    stored: dict[str, str] = {}
    for node in ast.walk(init):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                counts[target.attr] = counts.get(target.attr, 0) + 1
                if isinstance(node.value, ast.Name) and node.value.id in params:
                    stored[target.attr] = node.value.id
    return {attr: param for attr, param in stored.items() if counts[attr] == 1}


def is_momentum_parameter(
    index: ProjectIndex, path: str, callee: str | None, keyword: str, depth: int = 0
) -> bool:
    """Whether `callee` (a summary name in `path`) is a project class whose constructor
    keyword `keyword` ends up as a BatchNorm's momentum."""
    if depth > _DEPTH:
        return False
    found = index.lookup(path, callee)
    if found is None or found[1] != "class":
        return False
    target_path, _, name = found
    facts = index.summaries[target_path].classes[name].get("momentum")
    if not facts:
        return False
    if keyword in facts["direct"]:
        return True
    return any(
        parameter == keyword
        and is_momentum_parameter(index, target_path, inner, inner_keyword, depth + 1)
        for parameter, inner, inner_keyword in facts["forwards"]
    )
