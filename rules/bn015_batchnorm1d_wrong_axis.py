"""BatchNorm1d applied to a batch-first sequence `(N, L, C)`: it normalises the wrong axis.

## What it does
The runtime check looks at every 3-D input of a BatchNorm and at the module that ran
just before it. It reports when that producer writes its features to the *last*
dimension (a `Linear`, an `Embedding`, a `batch_first` RNN/LSTM/GRU, a `LayerNorm`,
a `MultiheadAttention`), the last dimension of the input equals the BatchNorm's
`num_features`, and dimension 1 does not:

- an initialised `BatchNorm1d(C)` on `(N, L, C)` with `L != C` (torch is about to raise
  "running_mean should contain C elements not L"; reported before it does, as an
  error);
- a `LazyBatchNorm1d` about to be initialised from `L` instead of `C` (silent: it
  normalises over positions, as a warning).

A square `(N, C, C)` input is not reported: a transposed tensor looks the same.

## Why is this bad?
`BatchNorm1d` normalises dimension 1 of `(N, C, L)`. A batch-first sequence
`(N, L, C)` — the output of `nn.Linear` on a sequence, an embedding, a batch-first
RNN or a Transformer block — has its features last, so BatchNorm1d either crashes or,
when the sizes happen to fit, computes one statistic per *time step*: padding and
sequence length leak into the statistics and eval breaks on other lengths (P18).

## Example
```python
h = self.embed(tokens)          # (N, L, 256)
h = self.bn(h)                  # nn.BatchNorm1d(256)
```

## Use instead
```python
h = self.bn(h.transpose(1, 2)).transpose(1, 2)   # or nn.LayerNorm(256)
```

## Fix safety
No automatic fix: whether to transpose or to switch to LayerNorm is a modelling
choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport


class BatchNorm1dWrongAxis(Rule):
    code = "BN015"
    name = "batchnorm1d-wrong-axis"
    severity = Severity.WARNING
    engines = ("runtime",)
    runtime_events = (BatchNormCall,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormCall) or not event.features_last:
            return
        assert event.input_shape is not None
        _, length, channels = event.input_shape
        lazy = event.module.num_features == 0
        consequence = (
            f"it will be initialised with {length} features, one per position"
            if lazy
            else f'torch raises "running_mean should contain {channels} elements not {length}"'
        )
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) receives a "
            f"batch-first sequence {tuple(event.input_shape)} from `{event.previous_module}`, "
            f"whose {channels} features are the last dimension; BatchNorm1d normalises "
            f"dimension 1: {consequence}",
            suggestion="transpose to (N, C, L) around the BatchNorm "
            "(`bn(x.transpose(1, 2)).transpose(1, 2)`), or use LayerNorm",
            subject=event.module.path,
            at="construction",
            severity=Severity.WARNING if lazy else Severity.ERROR,
        )
