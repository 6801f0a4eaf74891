"""The eval input of a model's first BatchNorm lies far from its running statistics.

## What it does
The runtime check measures, on a sampled subset of eval-mode forwards (each module's
first forward, then every `sample_every`-th, default 50), how far the input of the
*first* BatchNorm of a model lies from that BatchNorm's running statistics: per
channel, `z = |batch mean - running mean| / sqrt(running var + eps)`, and it reports a
median over channels above 6. This check reads
tensor values (one small reduction and one device sync per sampled forward), which is
why it is sampled.

## Why is this bad?
The first BatchNorm sees almost raw inputs. When evaluation preprocessing differs from
training (a missing `Normalize`, pixels in 0-255 instead of 0-1, another channel
order) its inputs sit many standard deviations from what the network was trained on,
and eval accuracy collapses while training looks fine; users then "fix" it by
evaluating in train mode (P25).

## Example
```python
test_tf = transforms.Compose([transforms.PILToTensor()])          # uint8 0..255
```

## Use instead
```python
test_tf = transforms.Compose([transforms.ToTensor(), normalize])   # as in training
```

## Fix safety
No automatic fix. For a real domain shift, re-estimate the statistics (AdaBN,
`swa_utils.update_bn` on target data) instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import Event, InputShiftSample
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport

DEFAULT_THRESHOLD = 6.0


class EvalInputShift(Rule):
    code = "BN021"
    name = "eval-input-shift"
    severity = Severity.WARNING
    engines = ("runtime",)
    runtime_events = (InputShiftSample,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, InputShiftSample):
            return
        options = memory.get("options", {})
        threshold = float(options.get("eval-input-shift-threshold", DEFAULT_THRESHOLD))
        if not event.median_z > threshold:  # NaN inputs are BN020's business
            return
        module = event.call.module
        yield RuntimeReport(
            message=f"the eval input of `{module.path}` ({module.class_name}), the model's "
            f"first BatchNorm, lies a median {event.median_z:.1f} standard deviations from "
            "its running statistics: evaluation data is preprocessed unlike training data",
            suggestion="make eval preprocessing match training (normalisation, value range, "
            "channel order); for a real domain shift, re-estimate the statistics",
            subject=module.path,
        )
