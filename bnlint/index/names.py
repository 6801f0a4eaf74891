"""What a name in a file refers to: import aliases resolved to dotted paths, and
whether a callee is a BatchNorm class. Pure functions over libcst trees.

`nn.BatchNorm2d`, `torch.nn.BatchNorm2d`, `from torch.nn import BatchNorm2d as BN` and
`from torch.nn.modules.batchnorm import SyncBatchNorm` all resolve to the class they
name. Imports are read from the module level (including `if`/`try`/`with` blocks
there), not from inside functions; a name that no import binds stays as written, so
an unresolved `nn.BatchNorm2d` is *not* taken for torch's (callers must treat
"unknown" as "do not report").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from bnlint.index.ast_names import (  # noqa: F401  (re-exported for the libcst rules)
    BATCHNORM_CLASSES,
    FROZEN_BATCHNORM_CLASSES,
    FUNCTIONAL_BATCHNORM,
    KNOWN_BATCHNORM_SUBCLASSES,
    SEQUENTIAL,
    TORCH_BATCHNORM_CLASSES,
)
from bnlint.lazy import cst


def import_aliases(module: cst.Module) -> dict[str, str]:
    """Local name → the dotted path it was imported as, for module-level imports.

    `import torch.nn as nn` → {"nn": "torch.nn"}; `import torch.nn` → {"torch": "torch"};
    `from torch import nn` → {"nn": "torch.nn"}; `from torch.nn import *` →
    {"*torch.nn": "torch.nn"} (star imports are kept under a `*` key, see `resolve`).
    Relative imports are skipped: they name project modules, not libraries.
    """
    aliases: dict[str, str] = {}
    for statement in _module_level_statements(module.body):
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    dotted = dotted_name(alias.name)
                    if dotted is None:
                        continue
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        aliases[alias.asname.name.value] = dotted
                    else:
                        root = dotted.split(".")[0]
                        aliases[root] = root
            elif isinstance(small, cst.ImportFrom) and not small.relative:
                source = dotted_name(small.module) if small.module is not None else None
                if source is None:
                    continue
                if isinstance(small.names, cst.ImportStar):
                    aliases[f"*{source}"] = source
                    continue
                for alias in small.names:
                    imported = dotted_name(alias.name)
                    if imported is None:
                        continue
                    local = imported
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        local = alias.asname.name.value
                    aliases[local] = f"{source}.{imported}"
    return aliases


def _module_level_statements(body: Sequence[cst.CSTNode]) -> Iterator[cst.CSTNode]:
    for statement in body:
        yield statement
        if isinstance(statement, cst.If | cst.Try | cst.With):
            yield from _module_level_statements(statement.body.body)
            if isinstance(statement, cst.Try):
                for handler in statement.handlers:
                    yield from _module_level_statements(handler.body.body)
            orelse = getattr(statement, "orelse", None)
            if isinstance(orelse, cst.Else):
                yield from _module_level_statements(orelse.body.body)
            elif isinstance(orelse, cst.If):
                yield from _module_level_statements([orelse])


def dotted_name(node: cst.BaseExpression | cst.CSTNode | None) -> str | None:
    """`a.b.c` for a Name/Attribute chain, None for anything else (calls, subscripts)."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def resolve(node: cst.BaseExpression, aliases: Mapping[str, str]) -> str | None:
    """The dotted path an expression names once imports are applied, or None when its
    first name is not bound by an import (a local variable, a parameter, ...).

    A bare name not bound by any import resolves through a star import of a module
    known to export it (`from torch.nn import *` then `BatchNorm2d`).
    """
    dotted = dotted_name(node)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    if head in aliases:
        target = aliases[head]
        return f"{target}.{rest}" if rest else target
    if not rest:
        for key, source in aliases.items():
            if key.startswith("*") and f"{source}.{head}" in _STAR_EXPORTS:
                return f"{source}.{head}"
    return None


_STAR_EXPORTS = BATCHNORM_CLASSES | FUNCTIONAL_BATCHNORM


def is_batchnorm_class(qualified: str | None) -> bool:
    """A class that is (or subclasses) torch's `_BatchNorm` and trains its statistics."""
    return qualified in BATCHNORM_CLASSES


def callee_is_batchnorm(call: cst.Call, aliases: Mapping[str, str]) -> bool:
    """`call` constructs a BatchNorm module (directly, not through a factory)."""
    return is_batchnorm_class(resolve(call.func, aliases))


def partial_target(call: cst.Call, aliases: Mapping[str, str]) -> cst.BaseExpression | None:
    """The wrapped callable of `functools.partial(f, ...)`, else None."""
    if resolve(call.func, aliases) != "functools.partial" or not call.args:
        return None
    first = call.args[0]
    return first.value if first.keyword is None and not first.star else None


def keyword_argument(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def argument(call: cst.Call, name: str, position: int | None) -> cst.Arg | None:
    """The argument bound to parameter `name` (keyword, or positional at `position`);
    None when absent or when a `*args` makes positions unknowable."""
    found = keyword_argument(call, name)
    if found is not None or position is None:
        return found
    positional = []
    for arg in call.args:
        if arg.keyword is not None:
            break
        if arg.star:
            return None
        positional.append(arg)
    return positional[position] if position < len(positional) else None


class LocalBatchNormClasses:
    """Which module-level classes of this file hold a BatchNorm: a BN constructor call
    (or `partial(BN, ...)`) in their body, a BN base class, or a base or a constructed
    class that is itself one of these (to a fixed point). A file-local approximation of
    the project index's "BN model".

    It is filled during the rule's own walk (no second walk of the tree): the rule
    calls `enter_class`/`leave_class` from `visit_ClassDef`/`leave_ClassDef` and
    `saw_call` from `visit_Call`, and reads `classes()` once the walk is over
    (`leave_Module`)."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        self.aliases = aliases
        self._depth = 0
        self._current: str | None = None
        self._holds_bn: set[str] = set()
        self._uses: dict[str, set[str]] = {}

    def enter_class(self, node: cst.ClassDef) -> None:
        self._depth += 1
        if self._depth != 1:
            return
        name = node.name.value
        self._current = name
        uses = self._uses.setdefault(name, set())
        for base in node.bases:
            if is_batchnorm_class(resolve(base.value, self.aliases)):
                self._holds_bn.add(name)
            written = dotted_name(base.value)
            if written is not None:
                uses.add(written)

    def leave_class(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._current = None

    def saw_call(self, node: cst.Call) -> None:
        if self._current is None:
            return
        target = partial_target(node, self.aliases)
        if callee_is_batchnorm(node, self.aliases) or (
            target is not None and is_batchnorm_class(resolve(target, self.aliases))
        ):
            self._holds_bn.add(self._current)
        elif isinstance(node.func, cst.Name):
            self._uses[self._current].add(node.func.value)

    def classes(self) -> set[str]:
        found = set(self._holds_bn)
        changed = True
        while changed:
            changed = False
            for name, uses in self._uses.items():
                if name not in found and uses & found:
                    found.add(name)
                    changed = True
        return found


# Methods that return the module they are called on: `Net().cuda().half()` is a Net.
from bnlint.index.ast_names import SAME_MODULE_METHODS  # noqa: E402


def module_chain(node: cst.BaseExpression) -> tuple[cst.BaseExpression, set[str]]:
    """`Net().cuda().half()` → (`Net()`, {"cuda", "half"}): strip same-module calls."""
    methods: set[str] = set()
    while (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in SAME_MODULE_METHODS
    ):
        methods.add(node.func.attr.value)
        node = node.func.value
    return node, methods


def is_local_bn_model(
    node: cst.BaseExpression,
    aliases: Mapping[str, str],
    bn_classes: set[str],
    bn_names: set[str] | frozenset[str] = frozenset(),
) -> bool:
    """`node` evaluates to a module known, from this file alone, to hold a BatchNorm: an
    instance of one of `bn_classes` (see `LocalBatchNormClasses`), a BN layer,
    an `nn.Sequential` holding one, or a name in `bn_names` (bound to one of these),
    possibly through `.cuda()`/`.to(...)`/`.half()`... Anything else is unknown."""
    base, _ = module_chain(node)
    if isinstance(base, cst.Name) and base.value in bn_names:
        return True
    if not isinstance(base, cst.Call):
        return False
    callee = base.func
    if isinstance(callee, cst.Name) and callee.value in bn_classes:
        return True
    qualified = resolve(callee, aliases)
    if is_batchnorm_class(qualified):
        return True
    if qualified in SEQUENTIAL:
        return any(is_local_bn_model(arg.value, aliases, bn_classes, bn_names) for arg in base.args)
    return False
