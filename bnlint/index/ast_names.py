"""What a name in a file refers to, for rules that walk the standard library's `ast`:
import aliases resolved to dotted paths, and whether a callee is a BatchNorm class.

`nn.BatchNorm2d`, `torch.nn.BatchNorm2d`, `from torch.nn import BatchNorm2d as BN` and
`from torch.nn.modules.batchnorm import SyncBatchNorm` all resolve to the class they
name. Imports are read from the module level (including `if`/`try`/`with` blocks
there), not from inside functions; a name that no import binds stays unresolved, so
an unknown `nn.BatchNorm2d` is *not* taken for torch's (callers must treat "unknown"
as "do not report").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence

from bnlint.index.kinds import BN_CLASS_NAMES
from bnlint.index.summary import dotted_name

# torch.nn's BatchNorm classes, by the public and the defining module path.
_TORCH_BATCHNORM_NAMES = BN_CLASS_NAMES - {"_BatchNorm", "_NormBase"}
TORCH_BATCHNORM_CLASSES = frozenset(
    f"{prefix}.{name}"
    for prefix in ("torch.nn", "torch.nn.modules", "torch.nn.modules.batchnorm")
    for name in _TORCH_BATCHNORM_NAMES
)
# Third-party `_BatchNorm` subclasses with the same constructor keywords.
KNOWN_BATCHNORM_SUBCLASSES = frozenset(
    {
        "timm.layers.BatchNormAct2d",
        "timm.layers.norm_act.BatchNormAct2d",
        "timm.layers.SyncBatchNormAct",
        "timm.layers.norm_act.SyncBatchNormAct",
        "timm.models.layers.BatchNormAct2d",
    }
)
BATCHNORM_CLASSES = TORCH_BATCHNORM_CLASSES | KNOWN_BATCHNORM_SUBCLASSES
# Frozen BN keeps only buffers: it never trains its statistics (not a `_BatchNorm`).
FROZEN_BATCHNORM_CLASSES = frozenset(
    {"torchvision.ops.FrozenBatchNorm2d", "torchvision.ops.misc.FrozenBatchNorm2d"}
)
FUNCTIONAL_BATCHNORM = frozenset(
    {"torch.nn.functional.batch_norm", "torch.batch_norm", "torch.functional.batch_norm"}
)


SEQUENTIAL = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential"})

__all__ = [
    "LocalBatchNormClasses",
    "argument",
    "callee_is_batchnorm",
    "dotted_name",
    "import_aliases",
    "is_batchnorm_class",
    "is_local_bn_model",
    "keyword_argument",
    "module_chain",
    "partial_target",
    "resolve",
]


def import_aliases(module: ast.Module) -> dict[str, str]:
    """Local name → the dotted path it was imported as, for module-level imports.

    `import torch.nn as nn` → {"nn": "torch.nn"}; `import torch.nn` → {"torch": "torch"};
    `from torch import nn` → {"nn": "torch.nn"}; `from torch.nn import *` →
    {"*torch.nn": "torch.nn"} (star imports are kept under a `*` key, see `resolve`).
    Relative imports are skipped: they name project modules, not libraries.
    """
    aliases: dict[str, str] = {}
    for statement in _module_level_statements(module.body):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(statement, ast.ImportFrom) and not statement.level and statement.module:
            source = statement.module
            for alias in statement.names:
                if alias.name == "*":
                    aliases[f"*{source}"] = source
                else:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    return aliases


def _module_level_statements(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    for statement in body:
        yield statement
        if isinstance(statement, ast.If | ast.Try | ast.With):
            yield from _module_level_statements(statement.body)
            if isinstance(statement, ast.Try):
                for handler in statement.handlers:
                    yield from _module_level_statements(handler.body)
                yield from _module_level_statements(statement.finalbody)
            if isinstance(statement, ast.If | ast.Try):
                yield from _module_level_statements(statement.orelse)


def resolve(node: ast.AST | None, aliases: Mapping[str, str]) -> str | None:
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


def callee_is_batchnorm(call: ast.Call, aliases: Mapping[str, str]) -> bool:
    """`call` constructs a BatchNorm module (directly, not through a factory)."""
    return is_batchnorm_class(resolve(call.func, aliases))


def partial_target(call: ast.Call, aliases: Mapping[str, str]) -> ast.expr | None:
    """The wrapped callable of `functools.partial(f, ...)`, else None."""
    if resolve(call.func, aliases) != "functools.partial" or not call.args:
        return None
    first = call.args[0]
    return None if isinstance(first, ast.Starred) else first


def keyword_argument(call: ast.Call, name: str) -> ast.keyword | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword
    return None


def argument(call: ast.Call, name: str, position: int | None) -> ast.expr | None:
    """The value bound to parameter `name` (keyword, or positional at `position`);
    None when absent or when a `*args` makes positions unknowable."""
    found = keyword_argument(call, name)
    if found is not None:
        return found.value
    if position is None:
        return None
    if any(isinstance(arg, ast.Starred) for arg in call.args[: position + 1]):
        return None
    return call.args[position] if position < len(call.args) else None


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

    def enter_class(self, node: ast.ClassDef) -> None:
        self._depth += 1
        if self._depth != 1:
            return
        self._current = node.name
        uses = self._uses.setdefault(node.name, set())
        for base in node.bases:
            if is_batchnorm_class(resolve(base, self.aliases)):
                self._holds_bn.add(node.name)
            written = dotted_name(base)
            if written is not None:
                uses.add(written)

    def leave_class(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._current = None

    def saw_call(self, node: ast.Call) -> None:
        if self._current is None:
            return
        target = partial_target(node, self.aliases)
        if callee_is_batchnorm(node, self.aliases) or (
            target is not None and is_batchnorm_class(resolve(target, self.aliases))
        ):
            self._holds_bn.add(self._current)
        elif isinstance(node.func, ast.Name):
            self._uses[self._current].add(node.func.id)

    def defined(self) -> set[str]:
        """Every module-level class of the file, BatchNorm or not."""
        return set(self._uses)

    def classes(self) -> set[str]:
        found = set(self._holds_bn)
        # A fixed point that only grows: at most one round per class, then it stops.
        for _ in range(len(self._uses) + 1):
            changed = False
            for name, uses in self._uses.items():
                if name not in found and uses & found:
                    found.add(name)
                    changed = True
            if not changed:
                break
        return found


# Methods that return the module they are called on: `Net().cuda().half()` is a Net.
SAME_MODULE_METHODS = frozenset({"cuda", "cpu", "to", "train", "eval", "half", "float"})


def module_chain(node: ast.expr) -> tuple[ast.expr, set[str]]:
    """`Net().cuda().half()` → (`Net()`, {"cuda", "half"}): strip same-module calls."""
    methods: set[str] = set()
    while (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SAME_MODULE_METHODS
    ):
        methods.add(node.func.attr)
        node = node.func.value
    return node, methods


def is_local_bn_model(
    node: ast.expr,
    aliases: Mapping[str, str],
    bn_classes: set[str],
    bn_names: set[str] | frozenset[str] = frozenset(),
) -> bool:
    """`node` evaluates to a module known, from this file alone, to hold a BatchNorm: an
    instance of one of `bn_classes` (see `LocalBatchNormClasses`), a BN layer,
    an `nn.Sequential` holding one, or a name in `bn_names` (bound to one of these),
    possibly through `.cuda()`/`.to(...)`/`.half()`... Anything else is unknown."""
    base, _ = module_chain(node)
    if isinstance(base, ast.Name) and base.id in bn_names:
        return True
    if not isinstance(base, ast.Call):
        return False
    callee = base.func
    if isinstance(callee, ast.Name) and callee.id in bn_classes:
        return True
    qualified = resolve(callee, aliases)
    if is_batchnorm_class(qualified):
        return True
    if qualified in SEQUENTIAL:
        return any(is_local_bn_model(arg, aliases, bn_classes, bn_names) for arg in base.args)
    return False
