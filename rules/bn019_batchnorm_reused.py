"""One BatchNorm instance applied at several places in one forward.

## What it does
The static check reads each module's `forward` and reports a BatchNorm attribute
(`self.bn`, a BatchNorm built in the class or a project base class) called at two or
more places that every run of `forward` executes, on inputs from different sources:
`self.bn(self.conv1(x))` and later `self.bn(self.conv2(x))`, or `x = self.bn(x)` at the
top and again after a residual addition. To stay precise it looks only at
straight-line code: calls under an `if`/`else`, in a loop, a `try`, a conditional
expression, a short-circuit `and`/`or`, a lambda or a comprehension are not counted
(alternative branches cannot both run, and a per-time-step loop is out of scope). It
stays silent when every call's input comes from the same layer or from `forward`'s
own arguments (`self.bn(self.fc(a))`, `self.bn(self.fc(b))`: two views of one
distribution, as in Siamese encoders), when the inputs are all untraceable
expressions, for frozen BatchNorm, and for GroupNorm/LayerNorm. A module object placed
twice in an `nn.Sequential` is left to the runtime check.

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
No automatic fix: a second module changes the checkpoint's keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormReuse, Event
from bnlint.finding import Severity
from bnlint.index.locate import node_at
from bnlint.rule import Invalid, Rule, RuntimeReport, cst


class BatchNormReused(Rule):
    code = "BN019"
    name = "batchnorm-reused"
    severity = Severity.WARNING
    engines = ("static", "runtime")
    runtime_events = (BatchNormReuse,)
    triggers = ("forward",)
    needs_index = True

    VALID = (
        "import torch, torch.nn as nn\n"
        "class Block(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv1, self.conv2 = nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3)\n"
        "        self.bn1 = nn.BatchNorm2d(8)\n"
        "        self.bn2 = nn.BatchNorm2d(8)\n"
        "    def forward(self, x):\n"
        "        x = torch.relu(self.bn1(self.conv1(x)))\n"
        "        return torch.relu(self.bn2(self.conv2(x)))\n",
        "import torch.nn as nn\n"
        "class Pair(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.bn = nn.BatchNorm1d(8)\n"
        "    def forward(self, a, b):\n"
        "        return self.bn(a), self.bn(b)\n",
        "import torch.nn as nn\n"
        "class Gate(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(8, 8, bias=False)\n"
        "        self.bn = nn.BatchNorm1d(8)\n"
        "    def forward(self, x, raw=False):\n"
        "        if raw:\n"
        "            return self.bn(x)\n"
        "        return self.bn(self.fc(x))\n",
    )
    INVALID = (
        Invalid(
            "import torch, torch.nn as nn\n"
            "class Block(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.conv1 = nn.Conv2d(8, 8, 3, bias=False)\n"
            "        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)\n"
            "        self.bn = nn.BatchNorm2d(8)\n"
            "    def forward(self, x):\n"
            "        x = torch.relu(self.bn(self.conv1(x)))\n"
            "        return torch.relu(self.bn(self.conv2(x)))\n"
        ),
    )

    def check_module(self) -> None:
        index, summary = self.context.index.with_file(self.context.path, self.context.source)
        for owner, info in summary.classes.items():
            reused = (info.get("forward") or {}).get("reused") or {}
            if not reused or index.keeps_bn_frozen(self.context.path, owner):
                continue
            layers = index.class_layers(self.context.path, owner)
            for attr, calls in reused.items():
                sources = {source for _, source in calls}
                if len(sources) < 2 or attr not in layers:
                    continue  # one source: the same layer's outputs or forward's inputs
                layer_path, spec = layers[attr]
                if index.norm_kind(layer_path, spec.get("call")) != "bn":
                    continue
                self._report(owner, attr, calls, spec)

    def _report(
        self,
        owner: str,
        attr: str,
        calls: list[list[Any]],
        spec: dict[str, Any],
    ) -> None:
        node = node_at(self.context.module, calls[1][0], cst.Call)
        if not isinstance(node, cst.Call):
            return
        lines = ", ".join(str(pos[0]) for pos, _ in calls)
        sources = ", ".join(
            "the input" if source == "<input>" else f"`self.{source}`"
            for source in dict.fromkeys(source for _, source in calls if source != "?")
        )
        fed = f", fed by {sources} among others" if sources else ""
        kind = (spec.get("call") or "BatchNorm").rsplit(".", 1)[-1].lstrip("~$*")
        self.report(
            node,
            message=(
                f"`self.{attr}` ({kind}) runs at {len(calls)} places in `{owner}.forward` "
                f"(lines {lines}){fed}: one set of running statistics for activations "
                "of different layers, which fits none of them at eval"
            ),
            suggestion=(
                f"create a second BatchNorm in `__init__` (for example `self.{attr}_2`, "
                f"a copy of the `{kind}` on line {spec['pos'][0]}) and use it on line "
                f"{calls[1][0][0]}"
            ),
        )

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
