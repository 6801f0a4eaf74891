"""A BatchNorm's `num_features` differs from the channels it receives.

## What it does
Checks that the channel dimension of a BatchNorm's input (dimension 1: `(N, C)`,
`(N, C, L)`, `(N, C, H, W)` ...) equals the module's `num_features`.

The static check compares literal numbers on a direct data-flow edge: a torch
`Conv*`/`ConvTranspose*`/`Linear` whose `out_channels`/`out_features` is a literal
(positional or keyword) and whose output goes only into a torch BatchNorm
(`BatchNorm1d/2d/3d`, `SyncBatchNorm`, timm's `BatchNormAct2d`) with a literal
`num_features`: neighbours in an `nn.Sequential`, or `self.bn(self.conv(x))` /
`x = self.conv(x); x = self.bn(x)` in `forward`. The BatchNorm's dimensionality must
fit the producer (`Conv2d` → `BatchNorm2d`, `Linear`/`Conv1d` → `BatchNorm1d`);
anything in between (a reshape, a transpose, a concatenation) breaks the edge.
Computed counts (`nn.Conv2d(c, c * 2, 3)`, `nn.BatchNorm2d(width)`) are skipped,
never guessed, and so are `LazyBatchNorm*` and project BatchNorm subclasses (their
constructors may take other arguments).

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
No automatic fix: which of the two numbers is wrong depends on the model (the
culprit may be the producer, P17).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.index import ProjectIndex, kinds
from bnlint.index.graph import Edge, direct_edges
from bnlint.index.locate import node_at
from bnlint.rule import Invalid, Rule, RuntimeReport, cst

# Where the output channel count sits among a producer's positional parameters.
_LAZY_PRODUCERS = ("LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d")
# torch/timm BatchNorm classes whose first parameter is `num_features`.
_COUNTED_BATCHNORMS = frozenset(
    {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "BatchNormAct2d"}
)


def output_channels(index: ProjectIndex, path: str, spec: dict[str, Any]) -> int | None:
    """The literal `out_channels`/`out_features` of a torch Conv*/Linear, else None."""
    library = index.library_name(path, spec.get("call"))
    if kinds.producer_dims(library) is None or library is None:
        return None
    arguments = spec.get("kw", {})
    keyword = "out_features" if library.endswith("Linear") else "out_channels"
    position = 0 if library.rsplit(".", 1)[-1] in _LAZY_PRODUCERS else 1
    value = arguments.get(keyword, arguments.get(f"#{position}"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def num_features(index: ProjectIndex, path: str, spec: dict[str, Any]) -> int | None:
    """The literal `num_features` of a torch/timm BatchNorm, else None."""
    library = index.library_name(path, spec.get("call"))
    if kinds.library_norm_kind(library) != "bn" or library is None:
        return None
    if library.rsplit(".", 1)[-1] not in _COUNTED_BATCHNORMS:
        return None
    arguments = spec.get("kw", {})
    value = arguments.get("num_features", arguments.get("#0"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class NumFeaturesMismatch(Rule):
    code = "BN014"
    name = "num-features-mismatch"
    severity = Severity.ERROR
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall,)
    triggers = ("BatchNorm",)
    needs_index = True

    VALID = (
        "import torch.nn as nn\n"
        "block = nn.Sequential(nn.Conv2d(3, 64, 3, bias=False), nn.BatchNorm2d(64))\n",
        "import torch.nn as nn\nhead = nn.Sequential(nn.Linear(256, width), nn.BatchNorm1d(128))\n",
        "import torch.nn as nn\n"
        "block = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Flatten(), nn.BatchNorm1d(1024))\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\n"
            "block = nn.Sequential(nn.Conv2d(3, 128, 3, bias=False), nn.BatchNorm2d(64))\n"
        ),
        Invalid(
            "import torch.nn as nn\n"
            "class Head(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.fc = nn.Linear(512, out_features=256)\n"
            "        self.bn = nn.BatchNorm1d(num_features=512)\n"
            "    def forward(self, x):\n"
            "        return self.bn(self.fc(x))\n"
        ),
    )

    def check_module(self) -> None:
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        reported: set[tuple[int, ...]] = set()
        for edge in direct_edges(index, self.context.path):
            mismatch = self._mismatch(index, edge)
            if mismatch is None:
                continue
            at_consumer = edge.consumer_path == self.context.path
            spec = edge.consumer if at_consumer else edge.producer
            if not at_consumer and edge.producer_path != self.context.path:
                continue
            if tuple(spec["pos"]) not in reported:
                reported.add(tuple(spec["pos"]))
                self._report(edge, spec, *mismatch)

    def _mismatch(self, index: ProjectIndex, edge: Edge) -> tuple[int, int] | None:
        """(produced, expected) channel counts when both are literals and differ."""
        produced = output_channels(index, edge.producer_path, edge.producer)
        expected = num_features(index, edge.consumer_path, edge.consumer)
        if produced is None or expected is None or produced == expected:
            return None
        producer = index.library_name(edge.producer_path, edge.producer.get("call"))
        consumer = index.library_name(edge.consumer_path, edge.consumer.get("call"))
        dims = kinds.bn_dims(consumer)
        if dims is not None and dims != kinds.producer_dims(producer):
            return None  # Conv2d → BatchNorm1d: a reshape we cannot see
        return produced, expected

    def _report(self, edge: Edge, spec: dict[str, Any], produced: int, expected: int) -> None:
        node = node_at(self.context.module, spec["pos"], cst.Call)
        if not isinstance(node, cst.Call):
            return
        producer = _short(edge.producer.get("call"), "the producer")
        consumer = _short(edge.consumer.get("call"), "BatchNorm")
        where = f" in `{edge.owner}`" if edge.owner else ""
        names = edge.names
        link = (
            f"`self.{names[0]}` feeds `self.{names[1]}`"
            if not names[0].startswith("[")
            else f"neighbours {names[0]} and {names[1]} of the `Sequential`"
        )
        producer_line = edge.producer["pos"][0]
        consumer_line = edge.consumer["pos"][0]
        self.report(
            node,
            message=(
                f"`{consumer}` expects {expected} channels but `{producer}` produces "
                f"{produced}{where} ({link}); torch raises `running_mean should contain "
                f"{expected} elements not {produced}` at the first forward"
            ),
            suggestion=(
                f"set `num_features={produced}` on `{consumer}` (line {consumer_line}), "
                f"or change the output channels of `{producer}` (line {producer_line}) "
                f"to {expected}; `nn.LazyBatchNorm*` infers the count"
            ),
        )

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


def _short(callee: str | None, default: str) -> str:
    return (callee or default).rsplit(".", 1)[-1].lstrip("~$*")
