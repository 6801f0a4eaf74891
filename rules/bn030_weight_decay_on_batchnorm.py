"""Weight decay applied to BatchNorm's weight/bias through a single parameter group.

## What it does
Checks for a `torch.optim` optimizer built from `<model>.parameters()` (one parameter
group) with a literal `weight_decay` above 0, where the model is known from this file
to contain BatchNorm (an instance of a class in this file that builds a BatchNorm, a
BN layer, or an `nn.Sequential` holding one). Models from other files are not judged.

Default off, severity info: excluding norm and bias parameters from weight decay is
common practice, but the evidence of harm is mixed, and some recipes decay everything
on purpose.

## Why is this bad?
L2 regularisation pulls BatchNorm's scale (weight) and shift (bias) towards 0. Since BN makes the
preceding weights scale-invariant, decaying the scale mostly changes the effective learning
rate and can shrink features for no regularisation benefit ("no bias decay";
`ultralytics/yolov3#469`, `vturrisi/solo-learn` PRs #288/#289, torch-audit TA402).

## Example
```python
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
```

## Use instead
```python
decay, no_decay = [], []
for name, p in model.named_parameters():
    (no_decay if p.ndim <= 1 else decay).append(p)  # BN weight/bias and biases are 1-D
optimizer = torch.optim.SGD(
    [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
    lr=0.1, momentum=0.9,
)
```

## Fix safety
There is no autofix: splitting the parameter groups changes the optimizer state layout
and the training recipe.
"""

from __future__ import annotations

import ast
from typing import Any

from bnlint.finding import Severity
from bnlint.index.ast_names import (
    LocalBatchNormClasses,
    argument,
    dotted_name,
    is_local_bn_model,
    keyword_argument,
    resolve,
)
from bnlint.rule import Invalid, Rule, RuleContext

OPTIMIZERS = frozenset(
    {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"}
)
# (params, lr, <optimizer-specific>...): weight_decay's position differs per class, so
# only the keyword is read.


def _positive_literal(node: ast.expr) -> bool:
    """A number literal above 0 (`5e-4`, `1`; not `True`, not `-1e-4`, not a name)."""
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
        and node.value > 0
    )


class WeightDecayOnBatchnorm(Rule):
    code = "BN030"
    name = "weight-decay-on-batchnorm"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("weight_decay",)
    # `weight_decay=` then a number literal (through parentheses, line continuations and
    # comments): only a literal above 0 is judged.
    trigger_pattern = r"weight_decay\s*=[\s\\(]*(?:#[^\n]*\n[\s\\(]*)*\.?\d"
    syntax = "ast"

    VALID = (
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)\n",
        "import torch\nimport torch.nn as nn\nnet = nn.Sequential(nn.Linear(4, 4))\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-4)\n",
        "import torch\nimport torch.nn as nn\nnet = nn.Sequential(nn.BatchNorm1d(4))\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=0)\n",
    )
    INVALID = (
        Invalid(
            "import torch\nimport torch.nn as nn\nnet = nn.Sequential(nn.BatchNorm1d(4))\n"
            "opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-4)\n"
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.local_classes = LocalBatchNormClasses({})
        # Per scope, in source order: ("bind", name, value) and ("optimizer", arg, model).
        self.scopes: list[list[tuple[str, Any, Any]]] = [[]]
        self.finished: list[list[tuple[str, Any, Any]]] = []

    def visit_Module(self, node: ast.Module) -> None:
        self.local_classes = LocalBatchNormClasses(self.aliases)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.local_classes.enter_class(node)

    def leave_ClassDef(self, original_node: ast.ClassDef) -> None:
        self.local_classes.leave_class()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append([])

    def leave_FunctionDef(self, original_node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.finished.append(self.scopes.pop())

    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            name = dotted_name(target)
            if name is not None:
                self.scopes[-1].append(("bind", name, node.value))

    def visit_Call(self, node: ast.Call) -> None:
        self.local_classes.saw_call(node)
        qualified = resolve(node.func, self.aliases) or ""
        if not (
            qualified.startswith("torch.optim.") and qualified.rsplit(".", 1)[-1] in OPTIMIZERS
        ):
            return
        params = argument(node, "params", 0)
        decay = keyword_argument(node, "weight_decay")
        if params is None or decay is None or not _positive_literal(decay.value):
            return
        if (
            isinstance(params, ast.Call)
            and isinstance(params.func, ast.Attribute)
            and params.func.attr == "parameters"
        ):
            self.scopes[-1].append(("optimizer", decay, params.func.value))

    def leave_Module(self, original_node: ast.Module) -> None:
        classes = self.local_classes.classes()
        for events in [*self.finished, *self.scopes]:
            if not any(kind == "optimizer" for kind, _, _ in events):
                continue
            bn_models: set[str] = set()
            for kind, first, second in events:
                if kind == "bind":
                    holds_bn = is_local_bn_model(second, self.aliases, classes, bn_models)
                    (bn_models.add if holds_bn else bn_models.discard)(first)
                elif is_local_bn_model(second, self.aliases, classes, bn_models):
                    self._report(first, second)

    def _report(self, decay: ast.keyword, model_node: ast.expr) -> None:
        model = ast.get_source_segment(self.context.source, model_node) or ast.unparse(model_node)
        self.report(
            decay,
            message=(
                f"weight decay applies to every parameter of `{model}`, including its "
                "BatchNorm weight and bias"
            ),
            suggestion=(
                "use two parameter groups: 1-D parameters (BN weight/bias, biases) with "
                "weight_decay=0, the rest with this weight decay"
            ),
        )
