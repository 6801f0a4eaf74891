"""An AveragedModel evaluated with the BatchNorm statistics of the model it copied.

## What it does
The runtime check reports an eval-mode forward of a BatchNorm inside a
`torch.optim.swa_utils.AveragedModel` built without `use_buffers=True` whose running
statistics are still the ones the AveragedModel copied from the source model (at
construction and at every `update_parameters`): no `swa_utils.update_bn` (training
forwards of the averaged model) and no `load_state_dict` since. The check follows
`num_batches_tracked`'s version counter, not its data.

## Why is this bad?
`AveragedModel` averages the *parameters*; without `use_buffers=True` its BatchNorm
buffers are copied from the source model (torch 2.13 copies them at every
`update_parameters`). The averaged weights
produce different activations, so the running statistics no longer match them and
accuracy drops until the statistics are re-estimated (P23: `timgaripov/swa#7`, the
rationale of `update_bn` in PyTorch PR #30559).

## Example
```python
swa_model = AveragedModel(model)
for epoch in range(epochs):
    train_one_epoch(model)
    swa_model.update_parameters(model)
evaluate(swa_model.eval())
```

## Use instead
```python
torch.optim.swa_utils.update_bn(train_loader, swa_model)
evaluate(swa_model.eval())          # or AveragedModel(model, use_buffers=True)
```

## Fix safety
No automatic fix: re-estimation needs the training data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport


class StaleStatsAfterAveraging(Rule):
    code = "BN018"
    name = "stale-stats-after-averaging"
    severity = Severity.WARNING
    engines = ("runtime",)
    runtime_events = (BatchNormCall,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormCall) or not event.averaged_stats_stale:
            return
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) of an AveragedModel "
            "is evaluated with the running statistics copied from the original model: "
            "they do not match the averaged weights",
            suggestion="call `torch.optim.swa_utils.update_bn(train_loader, swa_model)` "
            "before evaluating or saving, or build it with `use_buffers=True`",
            subject=event.module.path,
        )
