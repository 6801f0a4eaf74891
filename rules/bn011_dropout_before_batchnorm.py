"""A Dropout whose output goes straight into a BatchNorm.

## What it does
Checks for a torch `nn.Dropout`/`Dropout1d`/`Dropout2d`/`Dropout3d` with a literal
`p > 0` (or the default `p=0.5`) whose output goes only into a BatchNorm: neighbours in
an `nn.Sequential`, or `self.bn(self.drop(x))` / `x = self.drop(x); x = self.bn(x)` in
`forward` (the check follows `forward`'s data flow, not the declaration order). It stays
silent when anything sits in between (an activation, a Linear/Conv, a reshape), when the
dropout's output is also used elsewhere, for a computed `p` (`nn.Dropout(drop_rate)`
may be 0), for `AlphaDropout`/`FeatureAlphaDropout` (they keep the mean and variance of
their input by design, and belong to SELU networks), for `F.dropout` calls, for
GroupNorm/LayerNorm and for frozen BatchNorm.

## Why is this bad?
Dropout scales the kept units by `1 / (1 - p)` in training, which changes the variance
of its output between train and eval. The BatchNorm after it accumulates
`running_var` under dropout, then normalises eval activations (no dropout) with the
wrong variance: the "variance shift" of Li, Chen, Hu and Yang (CVPR 2019), an accuracy
drop at inference that training curves do not show (P15; `luigibonati/mlcolvar` #205,
`ShichenLiu/CondenseNet#30`). It is milder in very wide layers.

## Example
```python
head = nn.Sequential(
    nn.Linear(512, 256, bias=False),
    nn.ReLU(),
    nn.Dropout(0.5),
    nn.BatchNorm1d(256),
    nn.Linear(256, 10),
)
```

## Use instead
```python
head = nn.Sequential(
    nn.Linear(512, 256, bias=False),
    nn.BatchNorm1d(256),
    nn.ReLU(),
    nn.Dropout(0.5),
    nn.Linear(256, 10),
)
```

## Fix safety
No automatic fix: moving the dropout changes the architecture, and in an
`nn.Sequential` it shifts the indices in the `state_dict` keys.
"""

from __future__ import annotations

from typing import Any

from bnlint.finding import Severity
from bnlint.index import ProjectIndex, kinds
from bnlint.index.graph import Edge, direct_edges
from bnlint.index.locate import node_at
from bnlint.rule import Invalid, Rule, cst

_DEFAULT_P = 0.5


def dropout_p(index: ProjectIndex, path: str, spec: dict[str, Any]) -> float | None:
    """The drop probability of a torch Dropout spec when it is a literal (or the
    default), else None."""
    if not kinds.is_dropout(index.library_name(path, spec.get("call"))):
        return None
    arguments = spec.get("kw", {})
    value = arguments.get("p", arguments.get("#0"))
    if value is None and ("p" in arguments or "#0" in arguments):
        return None
    if value is None:
        return None if "*" in arguments or "**" in arguments else _DEFAULT_P
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class DropoutBeforeBatchnorm(Rule):
    code = "BN011"
    name = "dropout-before-batchnorm"
    severity = Severity.WARNING
    triggers = ("Dropout",)
    needs_index = True
    # RULES.md also plans a runtime check (a Dropout → BN edge in the trace); not built yet.
    engines = ("static",)

    VALID = (
        "import torch.nn as nn\n"
        "head = nn.Sequential(nn.Linear(64, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(),"
        " nn.Dropout(0.5), nn.Linear(32, 10))\n",
        "import torch.nn as nn\n"
        "head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 32, bias=False),"
        " nn.BatchNorm1d(32))\n",
        "import torch.nn as nn\nhead = nn.Sequential(nn.Dropout(0.0), nn.BatchNorm1d(32))\n",
        "import torch.nn as nn\nhead = nn.Sequential(nn.AlphaDropout(0.1), nn.BatchNorm1d(32))\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\n"
            "head = nn.Sequential(nn.Linear(64, 32, bias=False), nn.ReLU(), nn.Dropout(0.5),"
            " nn.BatchNorm1d(32))\n"
        ),
        Invalid(
            "import torch.nn as nn\n"
            "class Block(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.drop = nn.Dropout2d()\n"
            "        self.bn = nn.BatchNorm2d(16)\n"
            "    def forward(self, x):\n"
            "        x = self.drop(x)\n"
            "        return self.bn(x)\n"
        ),
    )

    def check_module(self) -> None:
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        reported: set[tuple[int, ...]] = set()
        for edge in direct_edges(index, self.context.path):
            if edge.producer_path != self.context.path or tuple(edge.producer["pos"]) in reported:
                continue
            p = self._drops_into_batchnorm(index, edge)
            if p is not None:
                reported.add(tuple(edge.producer["pos"]))
                self._report(edge, p)

    def _drops_into_batchnorm(self, index: ProjectIndex, edge: Edge) -> float | None:
        """The dropout's p when a Dropout with p > 0 feeds a trained BatchNorm."""
        p = dropout_p(index, edge.producer_path, edge.producer)
        if p is None or p <= 0:
            return None
        if index.norm_kind(edge.consumer_path, edge.consumer.get("call")) != "bn":
            return None
        if edge.owner is not None and index.keeps_bn_frozen(self.context.path, edge.owner):
            return None
        return p

    def _report(self, edge: Edge, p: float) -> None:
        call = node_at(self.context.module, edge.producer["pos"], cst.Call)
        if not isinstance(call, cst.Call):
            return
        dropout = _short(edge.producer.get("call"), "Dropout")
        consumer = _short(edge.consumer.get("call"), "BatchNorm")
        where = f" in `{edge.owner}`" if edge.owner else ""
        link = edge.describe(consumer)
        self.report(
            call,
            message=(
                f"`{dropout}` (p={p:g}) feeds `{consumer}` directly{where} ({link}): "
                "BatchNorm's running variance is learned under dropout and does not fit "
                "eval, where dropout is off (variance shift)"
            ),
            suggestion=(
                f"move the `{dropout}` on line {edge.producer['pos'][0]} after "
                f"`{consumer}` (line {edge.consumer['pos'][0]}) and its activation, "
                "or just before the classifier"
            ),
        )


def _short(callee: str | None, default: str) -> str:
    return (callee or default).rsplit(".", 1)[-1].lstrip("~")
