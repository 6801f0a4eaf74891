"""A Conv/Linear bias that the BatchNorm right after it cancels.

## What it does
Checks for a `Conv*`/`ConvTranspose*`/`Linear` layer that keeps its bias (the default)
and whose output goes only into a BatchNorm over the same channels: neighbours in an
`nn.Sequential`, or `x = self.conv(x); x = self.bn(x)` / `self.bn(self.conv(x))` in
`forward`. The check follows `forward`'s data flow, not the declaration order in
`__init__`; it stays silent when the output is also used elsewhere (a skip connection,
a concatenation, a returned feature), when an activation or pooling sits in between,
for GroupNorm/LayerNorm/InstanceNorm, and for frozen BatchNorm (`FrozenBatchNorm2d`,
a `train()` override or `norm_eval` flag that keeps BN in eval). The BatchNorm may come
from a norm class passed as an argument (`self.bn = norm_layer(c)`): it counts when
every class the project passes to that parameter, or gives it as a default, is a
BatchNorm (`norm_layer=nn.BatchNorm2d` down a chain of constructors); one GroupNorm or
an unreadable value anywhere leaves it unknown and silent.

It also stays silent where the fix would break weights people already have: a file
that loads released or saved checkpoints strictly (a model URL, `load_url`,
`load_state_dict_from_url`, `load_from_checkpoint`, `from_pretrained`, or a
`load_state_dict` without `strict=False`), and in test files, whose toy models nobody
ships.

## Why is this bad?
In training, BatchNorm subtracts the per-channel batch mean, which removes any
per-channel constant added before it; at eval, `running_mean` absorbs it. The bias
parameters get a zero gradient and only cost memory and compute; BN's own `beta` is the
shift that matters. PyTorch's performance tuning guide and torchvision's
`Conv2dNormActivation` (`bias=norm_layer is None`) both drop it (P09).

## Example
```python
self.conv = nn.Conv2d(64, 128, 3, padding=1)
self.bn = nn.BatchNorm2d(128)
...
x = self.bn(self.conv(x))
```

## Use instead
```python
self.conv = nn.Conv2d(64, 128, 3, padding=1, bias=False)
```

## Fix safety
The fix sets `bias=False` and is unsafe: it changes the checkpoint format. The
`state_dict` loses the `bias` keys, so existing checkpoints no longer load strictly, and
a checkpoint loaded with `strict=False` silently shifts the outputs unless the old bias
is folded into `running_mean` first (`running_mean -= bias`); optimizer state no longer
lines up either. Take it for models trained from scratch, or when releasing new weights.
"""

from __future__ import annotations

from bnlint.finding import Applicability, Severity
from bnlint.index import ProjectIndex, kinds
from bnlint.index.graph import Edge, direct_edges, has_bias
from bnlint.index.locate import node_at
from bnlint.index.provenance import is_test_file, loads_checkpoints
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, cst


class BiasBeforeBatchnorm(Rule):
    code = "BN004"
    name = "bias-before-batchnorm"
    severity = Severity.WARNING
    triggers = ("Conv", "Linear")
    needs_index = True
    autofix = "unsafe"
    engines = ("static", "runtime")

    VALID = (
        "import torch.nn as nn\n"
        "block = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))\n",
        "import torch.nn as nn\n"
        "block = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.BatchNorm2d(8))\n",
        "import torch.nn as nn\nblock = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8))\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\nblock = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n",
            fixed="import torch.nn as nn\n"
            "block = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))\n",
        ),
        Invalid(
            "import torch.nn as nn\n"
            "head = nn.Sequential(nn.Linear(128, 64, bias=True), nn.BatchNorm1d(64), nn.ReLU())\n",
            fixed="import torch.nn as nn\n"
            "head = nn.Sequential(nn.Linear(128, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU())\n",
        ),
    )

    def check_module(self) -> None:
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        # Weights already released or saved for these layers: dropping the bias changes
        # the checkpoint format; a test's toy model is not a model anyone ships.
        if loads_checkpoints(self.context.source) or is_test_file(index.root, self.context.path):
            return
        reported: set[tuple[int, ...]] = set()
        for edge in direct_edges(index, self.context.path):
            if edge.producer_path != self.context.path or tuple(edge.producer["pos"]) in reported:
                continue
            if self._bias_is_cancelled(index, edge):
                reported.add(tuple(edge.producer["pos"]))
                self._report(index, edge)

    def _bias_is_cancelled(self, index: ProjectIndex, edge: Edge) -> bool:
        producer_has_bias = has_bias(index, edge.producer_path, edge.producer)
        consumer_kind = index.norm_kind(edge.consumer_path, edge.consumer.get("call"))
        if not producer_has_bias or consumer_kind != "bn":
            return False
        if edge.owner is not None and index.keeps_bn_frozen(self.context.path, edge.owner):
            return False
        producer = index.library_name(edge.producer_path, edge.producer.get("call"))
        consumer = index.canonical(edge.consumer_path, edge.consumer.get("call"))
        expected, actual = kinds.producer_dims(producer), kinds.bn_dims(consumer)
        return actual is None or expected == actual

    def _report(self, index: ProjectIndex, edge: Edge) -> None:
        call = node_at(self.context.module, edge.producer["pos"], cst.Call)
        if not isinstance(call, cst.Call):
            return
        producer = _text(call.func)
        consumer = (edge.consumer.get("call") or "BatchNorm").rsplit(".", 1)[-1].lstrip("~$*")
        where = f" in `{edge.owner}`" if edge.owner else ""
        link = edge.describe(consumer, verb="feeds only")
        self.report(
            call,
            message=(
                f"`{producer}` keeps its bias but its output goes only into `{consumer}`{where} "
                f"({link}); BatchNorm's mean subtraction cancels the bias"
            ),
            suggestion=f"pass `bias=False` to `{producer}`",
            fix=_bias_false(
                call,
                kinds.bias_position(
                    index.library_name(edge.producer_path, edge.producer.get("call")) or ""
                ),
            ),
        )


def _bias_false(call: cst.Call, bias_index: int) -> PendingFix | None:
    """`bias=True` → `bias=False`, or `, bias=False` after the last argument."""
    if not call.args or any(arg.star for arg in call.args):
        return None
    positional = [arg for arg in call.args if arg.keyword is None]
    if len(positional) > bias_index:
        edit = NodeEdit(positional[bias_index].value, "replace", "bias=False")
    else:
        keyword = next(
            (a for a in call.args if a.keyword is not None and a.keyword.value == "bias"), None
        )
        if keyword is not None:
            edit = NodeEdit(keyword.value, "replace", "False")
        else:
            edit = NodeEdit(call.args[-1].value, "after", ", bias=False")
    return PendingFix(Applicability.UNSAFE, "Set `bias=False`", (edit,))


def _text(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)
