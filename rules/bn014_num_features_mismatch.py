"""A BatchNorm's `num_features` differs from the channels it receives.

## What it does
Checks that the channel dimension of a BatchNorm's input (dimension 1: `(N, C)`,
`(N, C, L)`, `(N, C, H, W)` ...) equals the module's `num_features`.

The runtime check compares `input.shape[1]` with `num_features` before the BatchNorm
runs, so the finding is recorded before torch raises, and it names the module that ran
just before the BatchNorm (in a plain pipeline, the producer of its input).
`LazyBatchNorm*` modules that are not yet initialised are skipped.

## Why is this bad?
torch raises `RuntimeError: running_mean should contain 64 elements not 128` from
deep inside the forward, naming neither the layer nor the producer. When the numbers
happen to match another layout (a `(N, L, C)` sequence with `L == num_features`) it
does not raise at all and normalises the wrong axis.

## Example
```python
self.conv = nn.Conv2d(3, 128, 3)
self.bn = nn.BatchNorm2d(64)
```

## Use instead
```python
self.conv = nn.Conv2d(3, 128, 3)
self.bn = nn.BatchNorm2d(128)   # or nn.LazyBatchNorm2d()
```

## Fix safety
No automatic fix: which of the two numbers is wrong depends on the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport


class NumFeaturesMismatch(Rule):
    code = "BN014"
    name = "num-features-mismatch"
    severity = Severity.ERROR
    engines = ("runtime",)
    runtime_events = (BatchNormCall,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormCall) or event.input_shape is None:
            return
        expected = event.module.num_features
        if len(event.input_shape) < 2 or expected == 0 or event.input_shape[1] == expected:
            return
        if event.features_last:
            return  # a batch-first sequence: BN015 names the real cause
        producer = f" from `{event.previous_module}`" if event.previous_module else ""
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) expects {expected} "
            f"channels but receives {event.input_shape[1]}{producer} "
            f"(input shape {tuple(event.input_shape)})",
            suggestion="make `num_features` match the producer's output channels, "
            "or use `LazyBatchNorm*`",
            subject=event.module.path,
            at="construction",
        )
