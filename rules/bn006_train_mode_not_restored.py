"""Training continues in eval mode after a validation pass.

## What it does
Checks for a `backward()` that differentiates through BatchNorm layers that trained
earlier and have since run forward in eval mode: the `model.eval()` of a validation
pass (or of an "evaluate every N steps" block) reached the next training step because
no `model.train()` came in between.

The runtime check remembers which BatchNorm layers ran a training forward with grad
enabled; when such a layer later runs in eval mode with grad enabled and a
`backward()` follows, it reports that `backward()` call. BatchNorm layers that were in
eval mode from the start (a frozen backbone) are not reported.

## Why is this bad?
From the second epoch on, BatchNorm normalises with the running statistics instead
of the batch's, the running statistics stop updating, and Dropout is off. The loss
still goes down, so nothing looks wrong, but the model trains differently from the
first epoch and usually ends worse.

## Example
```python
for epoch in range(epochs):
    for x, y in train_loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    validate(model, val_loader)
```

## Use instead
```python
for epoch in range(epochs):
    model.train()
    for x, y in train_loader:
        ...
    model.eval()
    validate(model, val_loader)
```

## Fix safety
The suggested `model.train()` at the start of the epoch is unsafe as an automatic fix:
it would also undo a deliberate `eval()` of a frozen part of the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import Backward, BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport


class TrainModeNotRestored(Rule):
    code = "BN006"
    name = "train-mode-not-restored"
    severity = Severity.WARNING
    autofix = "none"  # RULES.md plans an unsafe fix; none is offered yet
    engines = ("runtime",)
    runtime_events = (BatchNormCall, Backward)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        # Per module, idempotent (the tracer delivers a repeated identical call once):
        # which BNs trained, and which of those last ran in eval with grad enabled.
        trained: set[str] = memory.setdefault("trained", set())
        in_eval: dict[str, None] = memory.setdefault("eval_with_grad", {})
        if isinstance(event, BatchNormCall):
            if not event.grad_enabled:
                return
            path = event.module.path
            if event.training:
                trained.add(path)
                in_eval.pop(path, None)
            elif path in trained:
                in_eval[path] = None
            return
        if isinstance(event, Backward) and in_eval:
            names = list(in_eval)
            shown = ", ".join(f"`{name}`" for name in names[:3])
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            yield RuntimeReport(
                message=f"`backward()` through BatchNorm layers {shown}{more} that trained "
                "earlier but now run in eval mode: a `model.eval()` was not undone by "
                "`model.train()`",
                suggestion="call `model.train()` at the start of each epoch or training step",
                subject="backward",
            )
