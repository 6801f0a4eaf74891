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

from bnlint.finding import Severity
from bnlint.index.names import (
    argument,
    batchnorm_constructing_classes,
    dotted_name,
    import_aliases,
    is_local_bn_model,
    resolve,
)
from bnlint.rule import Invalid, Rule, RuleContext, cst

OPTIMIZERS = frozenset(
    {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"}
)
# (params, lr, <optimizer-specific>...): weight_decay's position differs per class, so
# only the keyword is read.


def _positive_literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Float | cst.Integer):
        return float(node.value.replace("_", "")) > 0
    return False


class WeightDecayOnBatchnorm(Rule):
    code = "BN030"
    name = "weight-decay-on-batchnorm"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("weight_decay",)

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
        self.aliases: dict[str, str] = {}
        self.bn_classes: set[str] = set()
        self.bn_names: list[set[str]] = [set()]

    def visit_Module(self, node: cst.Module) -> None:
        self.aliases = import_aliases(node)
        self.bn_classes = batchnorm_constructing_classes(node, self.aliases)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.bn_names.append(set())

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.bn_names.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        holds_bn = is_local_bn_model(node.value, self.aliases, self.bn_classes, self.bn_names[-1])
        for target in node.targets:
            name = dotted_name(target.target)
            if name is not None:
                (self.bn_names[-1].add if holds_bn else self.bn_names[-1].discard)(name)

    def visit_Call(self, node: cst.Call) -> None:
        qualified = resolve(node.func, self.aliases) or ""
        if not (
            qualified.startswith("torch.optim.") and qualified.rsplit(".", 1)[-1] in OPTIMIZERS
        ):
            return
        params = argument(node, "params", 0)
        decay = argument(node, "weight_decay", None)
        if params is None or decay is None or not _positive_literal(decay.value):
            return
        call = params.value
        if not (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value == "parameters"
            and is_local_bn_model(call.func.value, self.aliases, self.bn_classes, self.bn_names[-1])
        ):
            return
        model = cst.Module(body=[]).code_for_node(call.func.value)
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
