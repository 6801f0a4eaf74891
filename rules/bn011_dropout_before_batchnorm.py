"""A Dropout whose output goes straight into a BatchNorm.

## What it does
Checks for a torch `nn.Dropout`/`Dropout1d`/`Dropout2d`/`Dropout3d` with `p > 0` whose
output goes straight into a BatchNorm:

- neighbours in an `nn.Sequential`, including one filled in a loop
  (`layers.append(...)` then `nn.Sequential(*layers)`, or `seq.add_module(...)`): the
  order the code appends in, and across passes, where the last layer a loop appends
  (a block's dropout) meets the first one of the next pass (the next block's BN);
- in `forward`: `self.bn(self.drop(x))`, `x = self.drop(x); x = self.bn(x)`, also when
  either layer is optional (`if self.drop is not None: x = self.drop(x)`), and
  `x = F.dropout(x, p, training=self.training)` whose next reader is a BatchNorm call;
  reported at the dropout's call in `forward`, where the order is written.

`p` is a literal, the default `0.5`, or a value followed to where it is written: a
parameter's default (`def __init__(self, dropout=0.2)`), a module constant, an
attribute set once from either; a dropout built only when its rate is set
(`nn.Dropout(p) if p > 0 else None`, `if drop is not None: layers.append(...)`) counts
as `p > 0`. It stays silent when anything sits in between (an activation, a
Linear/Conv, a reshape), when the dropout's output is also kept for something else
(`h = self.drop(x); h + self.bn(h)`), for a `p` it cannot follow or that is 0 by
default (`nn.Dropout(drop_rate)` with `drop_rate=0.0`), for
`AlphaDropout`/`FeatureAlphaDropout` (they keep the mean and variance of their input by
design, and belong to SELU networks), for an `F.dropout` without a `training=` flag tied
to the mode (it drops in eval too, so train and eval statistics agree), for
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

import ast
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from bnlint.finding import Severity
from bnlint.index import ProjectIndex, kinds
from bnlint.index.ast_names import keyword_argument
from bnlint.index.graph import Edge, direct_edges
from bnlint.index.layer_order import (
    FUNCTIONAL_DROPOUTS,
    FlowEdge,
    appended_edges,
    calls_functional_dropout,
    fills_a_sequential_with_dropout,
    functional_dropout_edges,
    reaching_edges,
)
from bnlint.index.locate import node_at
from bnlint.index.summary import Positions
from bnlint.index.values import FileValues
from bnlint.rule import Invalid, Rule, RuleContext, cst

_DEFAULT_P = 0.5


def dropout_p(index: ProjectIndex, path: str, spec: dict[str, Any]) -> float | None:
    """The drop probability of a torch Dropout spec when it is a literal (or the
    default), else None."""
    library = index.library_name(path, spec.get("call"))
    if not (kinds.is_dropout(library) or library in FUNCTIONAL_DROPOUTS):
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
    triggers = ("Dropout", "dropout(")
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

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self._values: FileValues | None = None
        self._calls: dict[tuple[int, ...], ast.Call] | None = None

    def check_module(self) -> None:
        path, source = self.context.path, self.context.source
        index, summary = self.context.index.with_file(path, source)
        # Classes that build a dropout and a BatchNorm, and whose `forward` sends the
        # dropout's output to more than one place: `direct_edges` has the others (the
        # ast is parsed only for such a class, or a container filled with a dropout).
        candidates = [
            name
            for name in summary.classes
            if _dropout_reaches_more_than_one_layer(index, path, name)
        ]
        edges = itertools.chain(
            direct_edges(index, path),
            self._tree_edges(lambda tree: reaching_edges(index, path, tree, source, candidates))
            if candidates
            else (),
            self._tree_edges(lambda tree: appended_edges(index, path, tree, source))
            if fills_a_sequential_with_dropout(source)
            else (),
            self._tree_edges(lambda tree: functional_dropout_edges(index, path, tree, source))
            if calls_functional_dropout(source)
            else (),
        )
        reported: set[tuple[int, ...]] = set()
        for edge in edges:
            if edge.producer_path != path or tuple(edge.producer["pos"]) in reported:
                continue
            rate = self._drops_into_batchnorm(index, edge)
            if rate is not None:
                reported.add(tuple(edge.producer["pos"]))
                self._report(edge, rate)

    def _tree_edges(self, find: Callable[[ast.Module], Iterator[Edge]]) -> Iterator[Edge]:
        """Edges read from the ast, parsed on first use (lazily, after `direct_edges`)."""
        yield from find(self.context.tree)

    def _drops_into_batchnorm(self, index: ProjectIndex, edge: Edge) -> str | None:
        """How the dropout's p reads, when a Dropout with p > 0 feeds a trained BatchNorm."""
        library = index.library_name(edge.producer_path, edge.producer.get("call"))
        if not (kinds.is_dropout(library) or library in FUNCTIONAL_DROPOUTS):
            return None
        if index.norm_kind(edge.consumer_path, edge.consumer.get("call")) != "bn":
            return None
        if edge.owner is not None and index.keeps_bn_frozen(self.context.path, edge.owner):
            return None
        p = dropout_p(index, edge.producer_path, edge.producer)
        if p is not None:
            return f"p={p:g}" if p > 0 else None
        return self._computed_rate(edge.producer)

    def _computed_rate(self, spec: dict[str, Any]) -> str | None:
        """A computed p followed to where it is written (a parameter's default, a
        constant, `self.rate = rate`), or a dropout built only when its rate is set
        (`nn.Dropout(p) if p > 0 else None`, `if p is not None: layers.append(...)`)."""
        arguments = spec.get("kw", {})
        if "*" in arguments or "**" in arguments:
            return None
        call = self._call_at(spec["pos"])
        if call is None:
            return None
        rate = keyword_argument(call, "p")
        position = 1 if spec.get("functional") else 0
        value = (
            rate.value
            if rate is not None
            else (call.args[position] if len(call.args) > position else None)
        )
        if value is None:
            return None
        values = self._file_values()
        origin = values.origin(value)
        if origin is not None and origin.value > 0:
            where = f", {origin.via} {origin.value:g}" if origin.via else ""
            return f"p={origin.value:g}{where}" if not where else f"p=`{ast.unparse(value)}`{where}"
        if values.guarded_positive(call, value):
            return f"p=`{ast.unparse(value)}`, built only when it is set"
        return None

    def _file_values(self) -> FileValues:
        if self._values is None:
            self._values = FileValues(self.context.tree)
        return self._values

    def _call_at(self, pos: list[int]) -> ast.Call | None:
        if self._calls is None:
            positions = Positions(self.context.source)
            self._calls = {
                tuple(positions.of(node)): node
                for node in ast.walk(self.context.tree)
                if isinstance(node, ast.Call)
            }
        return self._calls.get(tuple(pos))

    def _report(self, edge: Edge, rate: str) -> None:
        # An order written in `forward` is changed there; a container's, where it is built.
        in_forward = isinstance(edge, FlowEdge)
        at = list(edge.at) if isinstance(edge, FlowEdge) else edge.producer["pos"]
        to = list(edge.consumer_at) if isinstance(edge, FlowEdge) else edge.consumer["pos"]
        call = node_at(self.context.module, at, cst.Call)
        if not isinstance(call, cst.Call):
            return
        dropout = _short(edge.producer.get("call"), "Dropout")
        consumer = _short(edge.consumer.get("call"), "BatchNorm")
        where = f" in `{edge.owner}`" if edge.owner else ""
        link = edge.describe(consumer)
        self.report(
            call,
            message=(
                f"`{dropout}` ({rate}) feeds `{consumer}` directly{where} ({link}): "
                "BatchNorm's running variance is learned under dropout and does not fit "
                "eval, where dropout is off (variance shift)"
            ),
            suggestion=(
                f"{'apply' if in_forward else 'move'} the `{dropout}` on line {at[0]} after "
                f"`{consumer}` (line {to[0]}) and its activation, or just before the "
                "classifier"
            ),
        )


def _dropout_reaches_more_than_one_layer(index: ProjectIndex, path: str, name: str) -> bool:
    forward = index.summaries[path].classes[name].get("forward")
    if not forward:
        return False
    shared_dropout = batchnorm = False
    for attr, (layer_path, spec) in index.class_layers(path, name).items():
        for choice in spec.get("alts", [spec]):
            call = choice.get("call") if choice else None
            if kinds.is_dropout(index.library_name(layer_path, call)):
                shared_dropout = shared_dropout or (
                    attr in forward["feeds"] and forward["feeds"][attr] is None
                )
            batchnorm = batchnorm or index.norm_kind(layer_path, call) == "bn"
    return shared_dropout and batchnorm


def _short(callee: str | None, default: str) -> str:
    return (callee or default).rsplit(".", 1)[-1].lstrip("~")
