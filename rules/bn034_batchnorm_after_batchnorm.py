"""A BatchNorm applied directly to the output of another BatchNorm.

## What it does
Checks for two BatchNorm layers in a row:

- adjacent BatchNorm constructors in `nn.Sequential(...)`;
- in a module's `forward`, `self.bn2(self.bn1(x))` or `x = self.bn1(x)` directly
  followed by `x = self.bn2(x)`, where both attributes are BatchNorm layers built in
  the same class.

Default off, severity info: there is no report of an accuracy impact, only of wasted
compute (`THUDM/GCC#15`, `pytorch/pytorch#83747`).

## Why is this bad?
The second BatchNorm re-normalises features that are already normalised per channel:
it adds compute, parameters and a second set of running statistics, and its learned
affine transform could be folded into the first one.

## Example
```python
block = nn.Sequential(nn.Linear(128, 64, bias=False), nn.BatchNorm1d(64), nn.BatchNorm1d(64))
```

## Use instead
```python
block = nn.Sequential(nn.Linear(128, 64, bias=False), nn.BatchNorm1d(64))
```

## Fix safety
There is no autofix: removing a layer changes `state_dict` keys (and Sequential
indices), so old checkpoints stop loading.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Sequence

from bnlint.finding import Severity
from bnlint.index.ast_names import SEQUENTIAL, callee_is_batchnorm, resolve
from bnlint.rule import Invalid, Rule, RuleContext


def _self_call(node: ast.expr | None) -> tuple[str, ast.Call] | None:
    """`self.bn(x)` → ("bn", the call)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    ):
        return node.func.attr, node
    return None


def _only_argument(call: ast.Call) -> ast.expr | None:
    """The value of the call's one argument (`f(x)`, `f(input=x)`), else None (no
    argument, several, or an unpacked `*xs`/`**kw`)."""
    if len(call.args) + len(call.keywords) != 1:
        return None
    if call.args:
        only = call.args[0]
        return None if isinstance(only, ast.Starred) else only
    keyword = call.keywords[0]
    return keyword.value if keyword.arg is not None else None


def _single_assignments(body: Sequence[ast.stmt]) -> list[tuple[str, ast.expr] | None]:
    """Per statement of a block: ("x", value) for `x = <value>` alone on its line(s)
    (no `;` neighbour), else None."""
    found: list[tuple[str, ast.expr] | None] = []
    for position, statement in enumerate(body):
        shares_a_line = (
            position > 0 and (body[position - 1].end_lineno or 0) >= statement.lineno
        ) or (
            position + 1 < len(body)
            and body[position + 1].lineno <= (statement.end_lineno or statement.lineno)
        )
        if (
            not shares_a_line
            and isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            found.append((statement.targets[0].id, statement.value))
        else:
            found.append(None)
    return found


# The fields of a node that hold a block of statements.
_BLOCKS = ("body", "orelse", "finalbody")


class BatchnormAfterBatchnorm(Rule):
    code = "BN034"
    name = "batchnorm-after-batchnorm"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("BatchNorm",)
    syntax = "ast"

    VALID = (
        "import torch.nn as nn\n"
        "m = nn.Sequential(nn.BatchNorm1d(4), nn.ReLU(), nn.BatchNorm1d(4))\n",
        "import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))\n",
    )
    INVALID = (
        Invalid("import torch.nn as nn\nm = nn.Sequential(nn.BatchNorm1d(4), nn.BatchNorm1d(4))\n"),
        Invalid(
            "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.a = nn.BatchNorm2d(3)\n"
            "        self.b = nn.BatchNorm2d(3)\n    def forward(self, x):\n"
            "        return self.b(self.a(x))\n"
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.bn_attributes: list[set[str]] = []
        self.in_forward: list[bool] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        attributes: set[str] = set()
        for statement in node.body:
            for current in ast.walk(statement):
                if (
                    isinstance(current, ast.Assign)
                    and isinstance(current.value, ast.Call)
                    and callee_is_batchnorm(current.value, self.aliases)
                ):
                    for target in current.targets:
                        if (
                            isinstance(target, ast.Attribute)
                            and isinstance(target.value, ast.Name)
                            and target.value.id == "self"
                        ):
                            attributes.add(target.attr)
        self.bn_attributes.append(attributes)
        self._check_blocks(node)

    def leave_ClassDef(self, original_node: ast.ClassDef) -> None:
        self.bn_attributes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.in_forward.append(node.name == "forward" and bool(self.bn_attributes))
        self._check_blocks(node)

    def leave_FunctionDef(self, original_node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.in_forward.pop()

    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if resolve(node.func, self.aliases) in SEQUENTIAL:
            # An unpacked `*layers` between two BNs puts unknown layers between them.
            for first, second in itertools.pairwise(node.args):
                if (
                    isinstance(first, ast.Call)
                    and isinstance(second, ast.Call)
                    and callee_is_batchnorm(first, self.aliases)
                    and callee_is_batchnorm(second, self.aliases)
                ):
                    self._report(second)
            return
        if not (self.in_forward and self.in_forward[-1]):
            return
        outer = _self_call(node)
        if outer is None or outer[0] not in self.bn_attributes[-1]:
            return
        inner = _self_call(_only_argument(node))
        if inner is not None and inner[0] in self.bn_attributes[-1]:
            self._report(node)

    def _check_blocks(self, node: ast.AST) -> None:
        """Check the statement blocks of `node` (`body`, `orelse`, ..., `except` and
        `case` bodies are nodes of their own) for `x = self.bn1(x)` directly followed by
        `x = self.bn2(x)`."""
        if not (self.in_forward and self.in_forward[-1]):
            return
        for field in _BLOCKS:
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                self._check_block(body)

    def _check_block(self, body: Sequence[ast.stmt]) -> None:
        for first, second in itertools.pairwise(_single_assignments(body)):
            if first is None or second is None:
                continue
            produced = _self_call(first[1])
            consumer = _self_call(second[1])
            if (
                produced is not None
                and consumer is not None
                and produced[0] in self.bn_attributes[-1]
                and consumer[0] in self.bn_attributes[-1]
            ):
                argument = _only_argument(consumer[1])
                if isinstance(argument, ast.Name) and argument.id == first[0]:
                    self._report(consumer[1])

    visit_If = visit_For = visit_AsyncFor = visit_While = _check_blocks
    visit_With = visit_AsyncWith = visit_Try = visit_TryStar = _check_blocks
    visit_ExceptHandler = visit_match_case = _check_blocks

    def _report(self, node: ast.Call) -> None:
        self.report(
            node,
            message="this BatchNorm normalises the output of another BatchNorm directly",
            suggestion="remove one of the two BatchNorm layers (keep the one after the "
            "Conv/Linear)",
        )
