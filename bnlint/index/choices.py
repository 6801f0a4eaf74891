"""Models chosen by name: `globals()[name]`, `getattr(models, name)`,
`models.__dict__[name]` and `{"a": A, "b": B}[name]`, and the names that choose them.

Real projects pick their network at run time from a string (`--arch resnet50`,
`backbone="vgg"`). The string is often known statically: a literal at the call site, an
argparse default, a module constant, a parameter default, handed down through
constructors (`Net(backbone=args.backbone)` -> `build(backbone)` ->
`globals()[name]`). Where it is known, the model is that candidate, as an argparse
default batch size is the batch size that runs. Where it is not, a table of
candidates gives a kind only when every candidate agrees; a namespace (all of
`globals()`, all of `torchvision.models`) gives none.

Summaries hold *name values*: a string (a literal, or a module constant's value),
`{"param": p}` (a parameter of the function being read), `{"option": o}` (`args.o`,
an argparse option's default), or "?".
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.index.project import Kind, ProjectIndex

Json = dict[str, Any]
# Longer strings are messages or paths, not the names of models.
_LONGEST_NAME = 64


def name_value(
    node: ast.expr, params: Collection[str], constant: Callable[[str], Any] = lambda _: None
) -> Any:
    """The name value an argument holds, or None when it is none of the forms above
    (a computed expression, a local variable). `params`: the parameters that may hold
    a name (not those with a number for default); `constant`: a module-level string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if len(node.value) <= _LONGEST_NAME else None
    if isinstance(node, ast.Name):
        if node.id in params:
            return {"param": node.id}
        found = constant(node.id)
        return found if isinstance(found, str) else None
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id not in ("self", "cls")
    ):
        return {"option": node.attr}
    return None


def chooser(
    node: ast.expr,
    params: Collection[str],
    qualify: Callable[[ast.expr], str | None],
    constant: Callable[[str], Any] = lambda _: None,
) -> Json | None:
    """`{"by": value, "space": "~" | module}` for `globals()[k]`, `getattr(M, k)` and
    `M.__dict__[k]`; `{"by": value, "among": {name: callee}}` for a dict literal of
    constructors indexed by `k`; None for anything else."""
    if isinstance(node, ast.Subscript):
        key = node.slice
        table = node.value
        if (
            isinstance(table, ast.Call)
            and isinstance(table.func, ast.Name)
            and table.func.id == "globals"
            and not table.args
        ):
            return {"by": _by(key, params, constant), "space": "~"}
        if isinstance(table, ast.Attribute) and table.attr == "__dict__":
            module = qualify(table.value)
            return None if module is None else {"by": _by(key, params, constant), "space": module}
        if isinstance(table, ast.Dict) and table.keys:
            among: dict[str, str] = {}
            for label, value in zip(table.keys, table.values, strict=True):
                callee = qualify(value) if isinstance(value, ast.Name | ast.Attribute) else None
                if not isinstance(label, ast.Constant) or not isinstance(label.value, str):
                    return None
                if callee is None:
                    return None  # a candidate we cannot name: no agreement to read
                among[label.value] = callee
            return {"by": _by(key, params, constant), "among": among}
        return None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) == 2
    ):
        module = qualify(node.args[0])
        return (
            None if module is None else {"by": _by(node.args[1], params, constant), "space": module}
        )
    return None


def _by(node: ast.expr, params: Collection[str], constant: Callable[[str], Any]) -> Any:
    value = name_value(node, params, constant)
    return "?" if value is None else value


def params_read(value: Any) -> bool:
    return isinstance(value, dict) and "param" in value


def resolve(index: ProjectIndex, path: str, value: Any, given: Mapping[str, Any] | None) -> Any:
    """The string a name value stands for in `path`, with `given` the values of the
    enclosing scope's parameters (None: unknown scope); "?" when not known."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return "?"
    if "param" in value:
        return "?" if given is None else given.get(value["param"], "?")
    if "option" in value:
        from bnlint.index.loaders import argparse_default  # loaders imports project

        declared = argparse_default(index, path, value["option"])
        found = None if declared is None else declared[0]
        return found if isinstance(found, str) else "?"
    return "?"


def candidate(index: ProjectIndex, path: str, choose: Json, name: str) -> str | None:
    """The callee that `name` picks: a name of the file (`globals()`), an attribute of
    a module, or a table entry. None when the name is not a candidate."""
    if "among" in choose:
        found: str | None = choose["among"].get(name)
        return found
    space = choose.get("space")
    if space == "~":
        summary = index.summaries.get(path)
        if summary is None:
            return None
        if name in summary.imports:
            return summary.imports[name]
        if name in summary.classes or name in summary.functions:
            return "~" + name
        return None
    return f"{space}.{name}" if isinstance(space, str) and name.isidentifier() else None


def candidates(choose: Json) -> list[str] | None:
    """Every callee a table can pick; None for a namespace (its candidates are open).
    The call's keywords do not narrow a namespace soundly: torchvision's
    `ConvNeXt.__init__` takes and ignores `**kwargs`, so
    `getattr(models, arch)(zero_init_residual=True)` may build a ConvNeXt (no BatchNorm)."""
    if "among" in choose:
        return list(choose["among"].values())
    return None


def every(kinds_found: Sequence[Kind]) -> Kind:
    """The kind of a model chosen among candidates by a name not known statically: the
    candidates' kind when they all agree, unknown otherwise."""
    distinct = set(kinds_found)
    return distinct.pop() if len(distinct) == 1 else None


def call_values(
    index: ProjectIndex,
    path: str,
    spec: Json,
    given: Mapping[str, Any] | None,
    params: Sequence[str],
    defaults: Mapping[str, Any],
) -> dict[str, Any]:
    """The name values a call (`spec`) gives the callee's parameters: what it passes,
    resolved in the caller's scope; the callee's string default where it passes
    nothing; "?" where it passes something else, or may through `*args`/`**kwargs`."""
    passed: dict[str, Any] = {}
    keywords = spec.get("kw", {})
    spread = keywords.get("*") or keywords.get("**")
    for slot, value in spec.get("names", {}).items():
        parameter = _parameter(slot, params)
        if parameter is not None:
            passed[parameter] = resolve(index, path, value, given)
    for slot in keywords:
        parameter = _parameter(slot, params) if slot.startswith("#") else None
        if parameter is not None:
            passed.setdefault(parameter, "?")
    values: dict[str, Any] = {}
    for parameter in params:
        if parameter in passed:
            values[parameter] = passed[parameter]
        elif spread:
            values[parameter] = "?"
        elif isinstance(defaults.get(parameter), str):
            values[parameter] = defaults[parameter]
    return values


def _parameter(slot: str, params: Sequence[str]) -> str | None:
    if not slot.startswith("#"):
        return slot if slot in params else None
    position = int(slot[1:])
    return params[position] if position < len(params) else None


def frozen(values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """`values` as a memo key."""
    return tuple(sorted((k, v) for k, v in values.items() if isinstance(v, str)))
