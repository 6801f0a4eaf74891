"""`bn.track_running_stats` switched after the BatchNorm was constructed.

## What it does
Checks for an assignment to `<expr>.track_running_stats` (or
`setattr(<expr>, "track_running_stats", ...)`) outside the `__init__` of the class
that owns the attribute, such as a loop that sets `m.track_running_stats = False` on
every BN of a built model.

The constructor literal `nn.BatchNorm2d(c, track_running_stats=False)` is **not**
reported by default. RULES.md marks that variant as advice that is off by default,
and one code has one default: the assignment, which is a bug in nearly every case, is
what BN013 reports. Projects that want the constructor literal reported as well set
the rule option `running-stats-constructor = true` (read by this rule when the
configuration provides it); it is then reported at this rule's severity.

## Why is this bad?
`track_running_stats` is read on every forward, but the buffers were created (or
not) by the constructor. Turning it off afterwards leaves `running_mean`/`running_var`
in place, and what eval mode then does has changed across PyTorch versions
(`pytorch/pytorch#20967`, `#37823`, `#30294`); turning it on for a module built
without it normalises with buffers that do not exist. In both directions eval-mode
predictions start to depend on the composition of the eval batch, and a single-sample
inference with BatchNorm1d raises (`pytorch/pytorch#156051`).

With `track_running_stats=False` from the start (the constructor variant), eval
always uses batch statistics: intended for meta-learning, test-time adaptation and the
`torch.func` vmap workaround, a mistake elsewhere (`TengdaHan/DPC#21`).

## Example
```python
model = torchvision.models.resnet18(weights="DEFAULT")
for m in model.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.track_running_stats = False
```

## Use instead
```python
model = torchvision.models.resnet18(weights="DEFAULT")
# keep track_running_stats=True; for batch statistics at test time build the BNs with
# track_running_stats=False (which drops the buffers) or re-estimate the statistics
```

## Fix safety
There is no autofix: re-creating the modules (and deciding what to do with their
trained statistics) is a design decision.

## Options
- `running-stats-constructor` (default false): also report the constructor literal
  `track_running_stats=False` on a BatchNorm class.
"""

from __future__ import annotations

import ast

from bnlint.finding import Severity
from bnlint.index.ast_names import (
    argument,
    dotted_name,
    is_batchnorm_class,
    partial_target,
    resolve,
)
from bnlint.rule import Invalid, Rule, RuleContext

ATTRIBUTE = "track_running_stats"
CONSTRUCTOR_OPTION = "running-stats-constructor"
# track_running_stats is the fifth constructor parameter (after num_features, eps,
# momentum, affine); Lazy* classes have no num_features.
_POSITION = 4
_LAZY_POSITION = 3


class RunningStatsDisabled(Rule):
    code = "BN013"
    name = "running-stats-disabled"
    severity = Severity.WARNING
    triggers = (ATTRIBUTE,)
    syntax = "ast"

    VALID = (
        "import torch.nn as nn\nbn = nn.BatchNorm2d(8, track_running_stats=True)\n",
        "import torch.nn as nn\nbn = nn.BatchNorm2d(8, track_running_stats=False)\n",
        "import torch.nn as nn\nclass MyBN(nn.Module):\n"
        "    def __init__(self, c, track_running_stats=True):\n"
        "        super().__init__()\n        self.track_running_stats = track_running_stats\n",
        "import torch.nn as nn\nfor m in net.modules():\n"
        "    if isinstance(m, nn.InstanceNorm2d):\n        m.track_running_stats = True\n",
        "print(bn.track_running_stats)\n",
    )
    INVALID = (
        Invalid("bn.track_running_stats = False\n"),
        Invalid(
            "import torch.nn as nn\nfor m in net.modules():\n"
            "    if isinstance(m, nn.BatchNorm2d):\n        m.track_running_stats = False\n"
        ),
        Invalid("setattr(layer, 'track_running_stats', True)\n"),
        Invalid("class Adapt:\n    def reset(self):\n        self.track_running_stats = False\n"),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.functions: list[str] = []
        self.report_constructor = bool(context.options.get(CONSTRUCTOR_OPTION, False))
        # Assignments guarded by `isinstance(x, <InstanceNorm...>)` → x (not a BatchNorm).
        self.instance_norm_assignments: dict[int, str] = {}

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.append(node.name)

    def leave_FunctionDef(self, original_node: ast.FunctionDef) -> None:
        self.functions.pop()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (
            isinstance(test, ast.Call)
            and isinstance(test.func, ast.Name)
            and test.func.id == "isinstance"
            and len(test.args) == 2
        ):
            kinds = test.args[1]
            names = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
            resolved = [resolve(kind, self.aliases) or "" for kind in names]
            subject = dotted_name(test.args[0])
            if subject and resolved and all("InstanceNorm" in kind for kind in resolved):
                for statement in node.body:
                    for inner in ast.walk(statement):
                        if isinstance(inner, ast.Assign):
                            self.instance_norm_assignments[id(inner)] = subject

    def visit_Assign(self, node: ast.Assign) -> None:
        subject = self.instance_norm_assignments.get(id(node), "")
        for target in node.targets:
            if isinstance(target, ast.Attribute) and target.attr == ATTRIBUTE:
                self._check(target.value, target, subject)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "setattr" and len(node.args) >= 2:
            name = node.args[1]
            if isinstance(name, ast.Constant) and name.value == ATTRIBUTE:
                self._check(node.args[0], node, "")
            return
        if self.report_constructor:
            self._check_constructor(node)

    def _check(self, receiver: ast.expr, node: ast.AST, instance_norm: str) -> None:
        written = ast.unparse(receiver)
        if written == "self" and self.functions and self.functions[-1] == "__init__":
            return  # a BatchNorm-like class setting its own option while it is built
        if written == instance_norm:
            return  # InstanceNorm: False is its default, toggling is its own business
        self.report(
            node,
            message=(
                f"`{written}.{ATTRIBUTE}` is switched after construction: the running "
                "buffers stay as the constructor made them, and eval-mode results then "
                "depend on the PyTorch version and on the composition of each batch"
            ),
            suggestion=(
                f"do not assign `{ATTRIBUTE}`; build the BatchNorm with the value you "
                "need (re-create the module), or keep it True and re-estimate statistics"
            ),
        )

    def _check_constructor(self, node: ast.Call) -> None:
        target = partial_target(node, self.aliases)
        qualified = resolve(target if target is not None else node.func, self.aliases)
        if not is_batchnorm_class(qualified):
            return
        assert qualified is not None
        lazy = qualified.rsplit(".", 1)[-1].startswith("Lazy")
        position = None if target is not None else (_LAZY_POSITION if lazy else _POSITION)
        value = argument(node, ATTRIBUTE, position)
        if isinstance(value, ast.Constant) and value.value is False:
            self.report(
                value,
                message=(
                    "this BatchNorm never tracks running statistics: in eval mode it "
                    "normalises with each batch's own statistics, so predictions depend "
                    "on the batch and single-sample inference is unreliable"
                ),
                suggestion=(
                    f"drop `{ATTRIBUTE}=False` unless batch statistics at test time are "
                    "intended (meta-learning, test-time adaptation, vmap)"
                ),
            )
