"""`.half()` on a BatchNorm model that is then trained: fp16 running statistics.

## What it does
Checks, inside one function (or the module's top level), for a model that is known
to contain BatchNorm converted with `.half()` or `.to(torch.float16)` /
`.to(dtype=torch.half)`, followed later in the same function by a training step
(`.backward()` or `.step()`), with no `.float()` conversion in between (such as the
classic "convert the BN layers back to fp32" loop).

"Known to contain BatchNorm": an instance of a class defined in the file that builds a
BatchNorm (directly, through a base class or through another such class), a BatchNorm
layer itself, an `nn.Sequential` holding one, or a local name the project index knows
as a BN model (a known factory such as `torchvision.models.resnet50()` or
`timm.create_model("resnet50")`, a BN model class of another file). Models the rule
cannot place (attributes set in another method, helpers' return values the index does
not resolve) are not judged: the rule stays silent rather than guess. Half-precision
*inference* (no training step after the conversion) is fine and is not reported.

The runtime check reports a training-mode BatchNorm whose running buffers are fp16,
and running variances that are not finite or not positive. Reading values syncs the
device, so the variance is read only on sampled forwards: each module's first, then
every `sample_every`-th (50 by default); the dtype check runs on every forward.

## Why is this bad?
`.half()` converts BatchNorm's weight, bias and running buffers to fp16. The running
variance loses precision, values above 65504 become `inf`, and batch moments computed
in fp16 occasionally overflow: the running statistics turn into NaN/Inf while the
training loss still looks fine, and eval then produces NaN or constant outputs
(`pytorch/pytorch#1206`, `NVIDIA/apex` PR #144, `fastai/fastai#507`).

## Example
```python
model = Net().cuda().half()
for images, labels in loader:
    loss = criterion(model(images.cuda().half()), labels.cuda())
    loss.backward()
    optimizer.step()
```

## Use instead
```python
model = Net().cuda()
scaler = torch.cuda.amp.GradScaler()
for images, labels in loader:
    with torch.autocast("cuda", dtype=torch.float16):
        loss = criterion(model(images.cuda()), labels.cuda())
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
```

## Fix safety
There is no autofix: moving to `torch.autocast` changes the training loop, and
keeping the BN layers in fp32 needs matching input casts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bnlint.events import BatchNormCall, Event, RunningStatsSample
from bnlint.finding import Severity
from bnlint.index import ProjectIndex
from bnlint.index.ast_names import (
    SAME_MODULE_METHODS,
    LocalBatchNormClasses,
    dotted_name,
    is_local_bn_model,
    keyword_argument,
    module_chain,
    resolve,
)
from bnlint.rule import Invalid, Rule, RuleContext, RuntimeReport

HALF_DTYPES = frozenset({"torch.float16", "torch.half"})
TRAINING_STEPS = frozenset({"backward", "step"})


# What the walk saw in one function (or at module level), in source order; judged at
# the end of the file, once every class of the file is known.
_Event = tuple[str, Any, Any]


@dataclass
class _Replay:
    """The state of one scope while its events are judged."""

    # Local names bound to a model known to hold BatchNorm.
    bn_models: set[str] = field(default_factory=set)
    # Conversions to fp16 not yet undone: name (or "" for an anonymous model) → call.
    halved: dict[str, ast.Call] = field(default_factory=dict)
    reported: set[int] = field(default_factory=set)


@dataclass
class _IndexedKinds:
    """What the project index knows about the names of one function: models built by
    factories (`torchvision.models.resnet50()`, `timm.create_model("resnet50")`) or by
    classes of other files."""

    index: ProjectIndex
    path: str
    function: str | None

    def is_bn_model(self, name: str) -> bool:
        if self.function is None:
            return False
        return self.index.key_kind(self.path, self.function, name) == "bn"


class DegenerateRunningStats(Rule):
    code = "BN020"
    name = "degenerate-running-stats"
    severity = Severity.WARNING
    triggers = (".half()", "float16", "torch.half")
    # The conversion must be followed by a training step in the same function.
    trigger_pattern = r"\.(?:backward|step)\s*\("
    engines = ("static", "runtime")
    needs_index = True
    syntax = "ast"
    runtime_events = (BatchNormCall, RunningStatsSample)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if isinstance(event, BatchNormCall):
            if event.updates_running_stats and event.buffer_dtype == "torch.float16":
                yield RuntimeReport(
                    message=f"`{event.module.path}` ({event.module.class_name}) trains with "
                    "fp16 running statistics: they lose precision and overflow to inf/NaN",
                    suggestion="keep BatchNorm in fp32 and train with `torch.autocast`",
                    subject=event.module.path,
                )
        elif isinstance(event, RunningStatsSample) and not (
            event.variance_finite and event.variance_positive
        ):
            problem = "not finite" if not event.variance_finite else "not positive"
            yield RuntimeReport(
                message=f"`{event.call.module.path}` ({event.call.module.class_name}) "
                f"has a running variance that is {problem}: eval outputs will be "
                "NaN or meaningless",
                suggestion="keep BatchNorm in fp32 (`torch.autocast`) and re-estimate the "
                "statistics (`torch.optim.swa_utils.update_bn`)",
                subject=event.call.module.path + ":variance",
            )

    VALID = (
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.bn = nn.BatchNorm2d(3)\n"
        "model = Net().half()\nwith torch.no_grad():\n    y = model(x.half())\n",
        "model = load_model().half()\nloss = model(x).sum()\nloss.backward()\n",
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.bn = nn.BatchNorm2d(3)\n"
        "model = Net().half()\nfor m in model.modules():\n"
        "    if isinstance(m, nn.BatchNorm2d):\n        m.float()\nloss.backward()\n",
        "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(3, 3)\n"
        "model = Net().half()\nloss = model(x).sum()\nloss.backward()\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.bn = nn.BatchNorm2d(3)\n"
            "model = Net().cuda().half()\nloss = model(x).sum()\nloss.backward()\n"
        ),
        Invalid(
            "import torch\nimport torch.nn as nn\ndef train(x):\n"
            "    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n"
            "    net.to(torch.float16)\n    net(x).mean().backward()\n"
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.local_classes = LocalBatchNormClasses({})
        # Per scope: its name in the project index ("<module>", "f", "Class.method"; None
        # for nested functions) and its events in source order.
        self.scopes: list[tuple[str | None, list[_Event]]] = [("<module>", [])]
        self.finished: list[tuple[str | None, list[_Event]]] = []
        self.classes: list[str | None] = []
        self.class_stacks: list[list[str | None]] = []

    def visit_Module(self, node: ast.Module) -> None:
        self.local_classes = LocalBatchNormClasses(self.aliases)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.local_classes.enter_class(node)
        at_top = len(self.scopes) == 1 and not self.classes
        self.classes.append(node.name if at_top else None)

    def leave_ClassDef(self, original_node: ast.ClassDef) -> None:
        self.local_classes.leave_class()
        self.classes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name: str | None = None
        if len(self.scopes) == 1 and not self.classes:
            name = node.name
        elif len(self.scopes) == 1 and len(self.classes) == 1 and self.classes[0]:
            name = f"{self.classes[0]}.{node.name}"
        self.scopes.append((name, []))
        self.class_stacks.append(self.classes)
        self.classes = []

    def leave_FunctionDef(self, original_node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.finished.append(self.scopes.pop())
        self.classes = self.class_stacks.pop()

    # `async def` is its own node class in `ast` (libcst has one FunctionDef for both).
    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            name = dotted_name(target)
            if name is not None:
                self.scopes[-1][1].append(("bind", name, node.value))

    def visit_Expr(self, node: ast.Expr) -> None:
        value = node.value
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "float"
        ):
            # `layer.float()` as a statement converts a module back in place (a tensor's
            # result would be used): the BN layers are fp32 again as far as we can see.
            self.scopes[-1][1].append(("float-all", None, None))

    def visit_Call(self, node: ast.Call) -> None:
        self.local_classes.saw_call(node)
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        method = func.attr
        if method == "float":
            self.scopes[-1][1].append(("float", dotted_name(module_chain(func.value)[0]), None))
        elif _is_half(node, self.aliases):
            self.scopes[-1][1].append(("half", node, func.value))
        elif method in TRAINING_STEPS:
            self.scopes[-1][1].append(("step", None, None))

    def leave_Module(self, original_node: ast.Module) -> None:
        classes = self.local_classes.classes()
        index: ProjectIndex | None = None
        for function, events in [*self.finished, *self.scopes]:
            if not any(kind == "half" for kind, _, _ in events):
                continue
            if index is None:
                index, _ = self.context.index.with_file(self.context.path, self.context.source)
            self._judge(events, classes, _IndexedKinds(index, self.context.path, function))

    def _judge(self, events: list[_Event], classes: set[str], indexed: _IndexedKinds) -> None:
        state = _Replay()
        for kind, first, second in events:
            if kind == "bind":
                self._bind(state, classes, first, second, indexed)
            elif kind == "half":
                if any(call is first for call in state.halved.values()):
                    continue  # already recorded with the name it was assigned to
                name = dotted_name(module_chain(second)[0])
                if name is not None and (name in state.bn_models or indexed.is_bn_model(name)):
                    state.halved.setdefault(name, first)
                elif is_local_bn_model(second, self.aliases, classes, state.bn_models):
                    state.halved.setdefault("", first)
            elif kind == "float" and first in state.bn_models:
                state.halved.pop(first, None)
            elif kind == "float-all":
                state.halved.clear()
            elif kind == "step":
                for name, call in state.halved.items():
                    if id(call) not in state.reported:
                        state.reported.add(id(call))
                        self._report(call, name)

    def _bind(
        self, state: _Replay, classes: set[str], name: str, value: Any, indexed: _IndexedKinds
    ) -> None:
        base = module_chain(value)[0]
        # A class of this file known to hold no BatchNorm: the name is rebound to a model
        # without BN, whatever the index says of the name as a whole.
        plain_local = (
            isinstance(base, ast.Call)
            and isinstance(base.func, ast.Name)
            and base.func.id in self.local_classes.defined() - classes
        )
        if is_local_bn_model(value, self.aliases, classes, state.bn_models) or (
            isinstance(base, ast.Call) and not plain_local and indexed.is_bn_model(name)
        ):
            state.bn_models.add(name)
            if isinstance(base, ast.Call):
                state.halved.pop(name, None)  # a new model: the old one's conversion is gone
            call = _half_call(value, self.aliases)
            if call is not None and name not in state.halved:
                state.halved[name] = call
        else:
            state.bn_models.discard(name)
            state.halved.pop(name, None)
        if "float" in module_chain(value)[1]:
            state.halved.pop(name, None)

    def _report(self, call: ast.Call, name: str) -> None:
        model = f"`{name}`" if name else "this model"
        self.report(
            call,
            message=(
                f"{model} holds BatchNorm and is converted to fp16 here, then trained: "
                "the running statistics are kept and updated in half precision and can "
                "become inf/NaN, which only shows at eval time"
            ),
            suggestion=(
                "drop the `.half()` conversion and train under "
                "`torch.autocast(device_type, dtype=torch.float16)` with a GradScaler, "
                "or convert the BatchNorm layers back with `.float()`"
            ),
        )


def _is_half(call: ast.Call, aliases: Mapping[str, str]) -> bool:
    """`.half()` (no arguments), `.to(torch.float16)`, `.to(device, torch.half)`,
    `.to(dtype=torch.float16)`."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr == "half":
        return not call.args and not call.keywords
    if func.attr != "to":
        return False
    dtype = keyword_argument(call, "dtype")
    candidates = [dtype.value] if dtype is not None else call.args[:2]
    return any(resolve(value, aliases) in HALF_DTYPES for value in candidates)


def _half_call(node: ast.expr, aliases: Mapping[str, str]) -> ast.Call | None:
    """The fp16 conversion in a same-module method chain, if any."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr not in SAME_MODULE_METHODS:
            return None
        if _is_half(node, aliases):
            return node
        node = node.func.value
    return None
