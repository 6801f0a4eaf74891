"""One BatchNorm instance applied at several places in one forward.

## What it does
The runtime check watches the first traced forward of each model and reports a
BatchNorm module that runs more than once in it, fed by different producer modules
(for example `self.bn(self.conv1(x))` and later `self.bn(self.conv2(y))`, or the same
module object placed twice in an `nn.Sequential`). Calling a whole block twice on two
inputs, as Siamese and two-view encoders do, keeps the same producer and is not
reported.

## Why is this bad?
A BatchNorm keeps one set of running statistics. Activations of different layers have
different distributions, so shared statistics fit no site: training (batch statistics)
looks fine and evaluation (running statistics) is much worse (P29,
`pytorch/pytorch#1738`).

## Example
```python
def forward(self, x):
    x = torch.relu(self.bn(self.conv1(x)))
    return torch.relu(self.bn(self.conv2(x)))
```

## Use instead
```python
def forward(self, x):
    x = torch.relu(self.bn1(self.conv1(x)))
    return torch.relu(self.bn2(self.conv2(x)))
```

## Fix safety
No automatic fix at run time: a second module changes the checkpoint's keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormReuse, Event
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport


class BatchNormReused(Rule):
    code = "BN019"
    name = "batchnorm-reused"
    severity = Severity.WARNING
    engines = ("runtime",)
    runtime_events = (BatchNormReuse,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormReuse):
            return
        producers = ", ".join(f"`{name}`" for name in event.producers)
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) runs {event.calls} "
            f"times in one forward, after {producers}: one set of running statistics "
            "for activations of different layers",
            suggestion="use one BatchNorm per call site (the affine parameters may still "
            "be shared deliberately)",
            subject=event.module.path,
            at="construction",
        )
