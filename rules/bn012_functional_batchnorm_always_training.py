"""`F.batch_norm(..., training=True)` in a module's `forward`: `eval()` cannot switch it.

## What it does
Checks for a call of `torch.nn.functional.batch_norm` or `torch.batch_norm` inside
the `forward` method of a class, with the literal `training=True` (by keyword or by
position) and running buffers that are not `None`.

Default off: meta-learning code (MAML-style learners with fast weights) and
micro-batch pipelines (torchgpipe's `DeferredBatchNorm`) pass `training=True` on
purpose, and the rule cannot tell them apart from a mistake. The project option
`transductive-batchnorm = true` also silences it.

## Why is this bad?
A BatchNorm module reads `self.training` to choose between batch statistics and the
running statistics. A hand-written forward that hard-codes `training=True` keeps
normalising with each batch's statistics and keeps overwriting the running buffers
after `model.eval()`: P01's symptoms (results depend on the eval batch, validation
data leaks into the buffers), except that calling `eval()` cannot fix them
(`hyseob/Batch-Instance-Normalization#4`).

## Example
```python
class MetaBatchNorm(nn.BatchNorm2d):
    def forward(self, x, params=None):
        return F.batch_norm(
            x, self.running_mean, self.running_var, params["weight"], params["bias"],
            training=True, momentum=self.momentum, eps=self.eps,
        )
```

## Use instead
```python
class MetaBatchNorm(nn.BatchNorm2d):
    def forward(self, x, params=None):
        return F.batch_norm(
            x, self.running_mean, self.running_var, params["weight"], params["bias"],
            training=self.training, momentum=self.momentum, eps=self.eps,
        )
```

## Fix safety
The fix replaces `True` with `self.training` and is unsafe: it makes the layer follow
`train()`/`eval()`, which is the point, but transductive code that wanted batch
statistics at test time would change behaviour.
"""

from __future__ import annotations

import ast

from bnlint.finding import Applicability, Severity
from bnlint.index.ast_names import argument, resolve
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuleContext

TRANSDUCTIVE_OPTION = "transductive-batchnorm"
# Positions of (running_mean, running_var) and `training` per functional signature.
SIGNATURES = {
    "torch.nn.functional.batch_norm": ((1, 2), 5),
    "torch.functional.batch_norm": ((1, 2), 5),
    "torch.batch_norm": ((3, 4), 5),
}


def _is_none(value: ast.expr | None) -> bool:
    return value is None or (isinstance(value, ast.Constant) and value.value is None)


class FunctionalBatchNormAlwaysTraining(Rule):
    code = "BN012"
    name = "functional-batchnorm-always-training"
    severity = Severity.WARNING
    default_enabled = False
    triggers = ("batch_norm",)
    syntax = "ast"
    autofix = "unsafe"

    VALID = (
        "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
        "        return F.batch_norm(x, self.rm, self.rv, training=self.training)\n",
        "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
        "        return F.batch_norm(x, None, None, training=True)\n",
        "import torch.nn.functional as F\ndef stats(x, rm, rv):\n"
        "    return F.batch_norm(x, rm, rv, training=True)\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
            "        return F.batch_norm(x, self.rm, self.rv, training=True)\n",
            fixed="import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
            "        return F.batch_norm(x, self.rm, self.rv, training=self.training)\n",
        ),
        Invalid(
            "import torch\nclass B:\n    def forward(self, x):\n"
            "        return torch.batch_norm(x, w, b, self.rm, self.rv, True, 0.1, 1e-5, True)\n",
            fixed="import torch\nclass B:\n    def forward(self, x):\n"
            "        return torch.batch_norm(x, w, b, self.rm, self.rv, self.training, 0.1, "
            "1e-5, True)\n",
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.enabled = not context.options.get(TRANSDUCTIVE_OPTION, False)
        # For each enclosing def: is it a method named `forward`?
        self.in_forward: list[bool] = []
        self.class_body: list[bool] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.class_body.append(True)

    def leave_ClassDef(self, original_node: ast.ClassDef) -> None:
        self.class_body.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        method = bool(self.class_body) and self.class_body[-1]
        self.in_forward.append(method and node.name == "forward")
        self.class_body.append(False)

    def leave_FunctionDef(self, original_node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.in_forward.pop()
        self.class_body.pop()

    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if not (self.enabled and self.in_forward and self.in_forward[-1]):
            return
        signature = SIGNATURES.get(resolve(node.func, self.aliases) or "")
        if signature is None:
            return
        (mean_at, var_at), training_at = signature
        training = argument(node, "training", training_at)
        if not (isinstance(training, ast.Constant) and training.value is True):
            return
        running_mean = argument(node, "running_mean", mean_at)
        running_var = argument(node, "running_var", var_at)
        if _is_none(running_mean) or _is_none(running_var):
            return  # no buffers: batch statistics are the only statistics there are
        self.report(
            training,
            message=(
                "`batch_norm` is called with training=True in `forward`: it normalises with "
                "batch statistics and updates the running buffers even after `model.eval()`"
            ),
            suggestion="pass `training=self.training` so the layer follows train()/eval()",
            fix=PendingFix(
                Applicability.UNSAFE,
                "Pass `self.training`",
                (NodeEdit(training, "replace", "self.training"),),
            ),
        )
