"""`model.eval` or `model.train` written without the call.

## What it does
Checks for an expression statement that is only the attribute `.eval` or `.train`,
such as `model.eval` on a line of its own.

## Why is this bad?
Reading a bound method does nothing: the model keeps the mode it had. A validation
loop after `model.eval` still runs BatchNorm on batch statistics (and overwrites the
running statistics with validation data) and keeps Dropout on; an epoch after
`model.train` keeps training in eval mode. Nothing fails, the numbers are just wrong.

## Example
```python
model.eval
with torch.no_grad():
    for images, labels in val_loader:
        logits = model(images)
```

## Use instead
```python
model.eval()
with torch.no_grad():
    for images, labels in val_loader:
        logits = model(images)
```

## Fix safety
The fix adds `()` and is safe: the statement had no effect, and the call does what the
line was written to do.
"""

from __future__ import annotations

from bnlint.finding import Applicability, Severity
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, cst

MODE_METHODS = frozenset({"eval", "train"})


class ModeMethodNotCalled(Rule):
    code = "BN007"
    name = "mode-method-not-called"
    severity = Severity.ERROR
    triggers = (".eval", ".train")
    # The attribute must end the statement: followed by a comment, `;` or the line end.
    trigger_pattern = r"\.(?:eval|train)[ \t]*(?:[#;\r]|$)"
    autofix = "safe"

    VALID = (
        "model.eval()\n",
        "model.train(False)\n",
        "switch = model.train\nswitch(True)\n",
        "print(model.eval)\n",
        "model.evaluate\n",
        "trainer.train_loader\n",
        "callbacks = [model.eval, model.train]\n",
    )
    INVALID = (
        Invalid("model.eval\n", fixed="model.eval()\n"),
        Invalid(
            "self.model.train  # back to training\n",
            fixed="self.model.train()  # back to training\n",
        ),
        Invalid("def validate(net):\n    net.eval\n", fixed="def validate(net):\n    net.eval()\n"),
        Invalid("nets[0].eval\n", fixed="nets[0].eval()\n"),
    )

    def visit_Expr(self, node: cst.Expr) -> None:
        value = node.value
        if not isinstance(value, cst.Attribute) or value.attr.value not in MODE_METHODS:
            return
        method = value.attr.value
        receiver = cst.Module(body=[]).code_for_node(value.value)
        self.report(
            value,
            message=f"`{receiver}.{method}` is not called, so the model's mode does not change",
            suggestion=f"call it: `{receiver}.{method}()`",
            fix=PendingFix(
                Applicability.SAFE,
                f"Call `{receiver}.{method}()`",
                (NodeEdit(value, "after", "()"),),
            ),
        )
