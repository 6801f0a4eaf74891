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

import itertools

from bnlint.finding import Severity
from bnlint.index.names import SEQUENTIAL, callee_is_batchnorm, import_aliases, resolve
from bnlint.rule import Invalid, Rule, RuleContext, cst


def _self_call(node: cst.BaseExpression) -> tuple[str, cst.Call] | None:
    """`self.bn(x)` → ("bn", the call)."""
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and isinstance(node.func.value, cst.Name)
        and node.func.value.value == "self"
    ):
        return node.func.attr.value, node
    return None


def _single_assignment(statement: cst.CSTNode) -> tuple[str, cst.BaseExpression] | None:
    """`x = <value>` on a line of its own → ("x", value)."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if (
        isinstance(small, cst.Assign)
        and len(small.targets) == 1
        and isinstance(small.targets[0].target, cst.Name)
    ):
        return small.targets[0].target.value, small.value
    return None


class BatchnormAfterBatchnorm(Rule):
    code = "BN034"
    name = "batchnorm-after-batchnorm"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("BatchNorm",)

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
        self.aliases: dict[str, str] = {}
        self.bn_attributes: list[set[str]] = []
        self.in_forward: list[bool] = []

    def visit_Module(self, node: cst.Module) -> None:
        self.aliases = import_aliases(node)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        attributes: set[str] = set()
        stack: list[cst.CSTNode] = [node.body]
        while stack:
            current = stack.pop()
            if (
                isinstance(current, cst.Assign)
                and isinstance(current.value, cst.Call)
                and callee_is_batchnorm(current.value, self.aliases)
            ):
                for target in current.targets:
                    attribute = target.target
                    if (
                        isinstance(attribute, cst.Attribute)
                        and isinstance(attribute.value, cst.Name)
                        and attribute.value.value == "self"
                    ):
                        attributes.add(attribute.attr.value)
            stack.extend(current.children)
        self.bn_attributes.append(attributes)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.bn_attributes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.in_forward.append(node.name.value == "forward" and bool(self.bn_attributes))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.in_forward.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if resolve(node.func, self.aliases) in SEQUENTIAL:
            layers = [arg.value for arg in node.args if arg.keyword is None and not arg.star]
            for first, second in itertools.pairwise(layers):
                if (
                    isinstance(first, cst.Call)
                    and isinstance(second, cst.Call)
                    and callee_is_batchnorm(first, self.aliases)
                    and callee_is_batchnorm(second, self.aliases)
                ):
                    self._report(second)
            return
        if not (self.in_forward and self.in_forward[-1]):
            return
        outer = _self_call(node)
        if outer is None or outer[0] not in self.bn_attributes[-1] or len(node.args) != 1:
            return
        inner = _self_call(node.args[0].value)
        if inner is not None and inner[0] in self.bn_attributes[-1]:
            self._report(node)

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        if not (self.in_forward and self.in_forward[-1]):
            return
        statements = list(node.body)
        for previous, current in itertools.pairwise(statements):
            first = _single_assignment(previous)
            second = _single_assignment(current)
            if first is None or second is None:
                continue
            produced = _self_call(first[1])
            consumer = _self_call(second[1])
            if (
                produced is not None
                and consumer is not None
                and produced[0] in self.bn_attributes[-1]
                and consumer[0] in self.bn_attributes[-1]
                and len(consumer[1].args) == 1
                and isinstance(consumer[1].args[0].value, cst.Name)
                and consumer[1].args[0].value.value == first[0]
            ):
                self._report(consumer[1])

    def _report(self, node: cst.Call) -> None:
        self.report(
            node,
            message="this BatchNorm normalises the output of another BatchNorm directly",
            suggestion="remove one of the two BatchNorm layers (keep the one after the "
            "Conv/Linear)",
        )
