"""Distributed training with plain BatchNorm on a small per-process batch.

## What it does
The runtime check reads, at each training-mode BatchNorm forward, the
`torch.distributed` world size (when a process group is initialised; refreshed when
tracing starts and at every `backward()`), the module's class and the local batch size.
It reports a non-Sync BatchNorm trained with `world_size > 1` on a local batch of at
most `small-batch-threshold` samples (default 8, `[tool.bnlint]`).

## Why is this bad?
Under DistributedDataParallel every process normalises its own mini-batch: with 4
images per GPU the batch statistics are computed from 4 samples whatever the global
batch size, so they are noisy, the running statistics differ between ranks (only rank
0's are saved), and accuracy drops well below what the global batch size suggests
(detection and segmentation models are the usual victims, P20).

## Example
```python
model = DDP(build_model().cuda(rank), device_ids=[rank])   # batch 4 per GPU
```

## Use instead
```python
model = nn.SyncBatchNorm.convert_sync_batchnorm(build_model())
model = DDP(model.cuda(rank), device_ids=[rank])
```

## Fix safety
No automatic fix at run time; convert before moving the model to the device and
wrapping it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport

DEFAULT_SMALL_BATCH = 8


class DdpWithoutSyncBatchNorm(Rule):
    code = "BN016"
    name = "ddp-without-syncbn"
    severity = Severity.WARNING
    engines = ("runtime",)
    runtime_events = (BatchNormCall,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if (
            not isinstance(event, BatchNormCall)
            or event.world_size <= 1
            or not event.updates_running_stats
            or event.module.class_name == "SyncBatchNorm"
            or not event.input_shape
        ):
            return
        threshold = int(memory.get("options", {}).get("small-batch-threshold", DEFAULT_SMALL_BATCH))
        batch = event.input_shape[0]
        if batch > threshold:
            return
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) trains on a local "
            f"batch of {batch} in each of {event.world_size} processes: each process "
            "normalises over its own few samples, not the global batch",
            suggestion="convert with `nn.SyncBatchNorm.convert_sync_batchnorm(model)` before "
            "moving the model to the device and wrapping it in DistributedDataParallel",
            subject=event.module.path,
        )
