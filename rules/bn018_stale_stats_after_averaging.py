"""An AveragedModel evaluated with the BatchNorm statistics of the model it copied.

## What it does
The static check looks, in one file, for a `torch.optim.swa_utils.AveragedModel`
(SWA, or EMA through `get_ema_multi_avg_fn`/`get_ema_avg_fn`/`avg_fn`) built without
`use_buffers=True` around a model known to hold BatchNorm, which is then evaluated or
saved: called on data (`swa_model(x)`, `swa_model.module(x)`), put in `.eval()`, passed
to an evaluation function (`evaluate(swa_model, ...)`, `test(...)`, `validate(...)`),
or saved (`swa_model.state_dict()`, `torch.save(swa_model, ...)`), with no statistics
re-estimation anywhere in the file (`update_bn`, `bn_update`, `PreciseBN`,
`reset_running_stats`, ...).

"Known to hold BatchNorm": a class of the project whose layers include a BatchNorm, or
a known factory (`torchvision.models.resnet50()`, `timm.create_model("resnet50")`), as
the project index resolves them. The rule stays silent when it cannot tell: an unknown
model, a model with only GroupNorm/LayerNorm, `use_buffers` given a non-literal value,
the averaged model handed to a helper of another module (which may re-estimate), or
put in `.train()` (a hand-written re-estimation loop). It reports the `AveragedModel(...)`
call and names the line where the averaged model is first evaluated or saved.

The runtime check reports an eval-mode forward of a BatchNorm inside an
`AveragedModel` built without `use_buffers=True` whose running statistics are still the
ones the AveragedModel copied from the source model (at construction and at every
`update_parameters`): no `swa_utils.update_bn` (training forwards of the averaged
model) and no `load_state_dict` since. It follows `num_batches_tracked`'s version
counter, not its data.

## Why is this bad?
`AveragedModel` averages the *parameters*; without `use_buffers=True` its BatchNorm
buffers are copied from the source model (torch 2.13 copies them at every
`update_parameters`). The averaged weights produce different activations, so the
running statistics no longer match them and accuracy drops until the statistics are
re-estimated (P23: `timgaripov/swa#7`, `mosaicml/composer#624`, the rationale of
`update_bn` in PyTorch PR #30559).

## Example
```python
swa_model = AveragedModel(model)
for epoch in range(epochs):
    train_one_epoch(model)
    swa_model.update_parameters(model)
evaluate(swa_model.eval())
```

## Use instead
```python
torch.optim.swa_utils.update_bn(train_loader, swa_model)
evaluate(swa_model.eval())          # or AveragedModel(model, use_buffers=True)
```

## Fix safety
No automatic fix: re-estimation needs the training data, and `use_buffers=True`
changes what an EMA averages.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.index.ast_names import argument, dotted_name, module_chain, resolve
from bnlint.index.model_scopes import ModelKinds, Scope, ScopeWalk, mode_switch
from bnlint.index.modes import EVAL_FUNCTION
from bnlint.rule import Invalid, Rule, RuleContext, RuntimeReport

AVERAGED_MODEL = "torch.optim.swa_utils.AveragedModel"
# AveragedModel(model, device, avg_fn, multi_avg_fn, use_buffers)
AVERAGING_FUNCTIONS = (("avg_fn", 2), ("multi_avg_fn", 3))
_USE_BUFFERS_POSITION = 4
# Any reference to one of these in the file counts as statistics re-estimation: torch's
# update_bn, the SWA repository's bn_update, detectron2's PreciseBN/update_bn_stats,
# hand-written resets. Conservative on purpose: a name that might re-estimate silences.
RE_ESTIMATION = re.compile(
    r"(update_?bn|bn_?update|precise_?bn|bn_?stat|update_?stat|stats?_?update|recompute|"
    r"recalibrat|calibrat|re_?estimat|reset_running_stats|adabn|fix_?bn|bn_?recal)",
    re.IGNORECASE,
)
# Callees that take a model without changing its statistics.
_HARMLESS_BUILTINS = frozenset(
    {"print", "len", "isinstance", "type", "id", "repr", "str", "getattr", "hasattr", "vars"}
)
_HARMLESS_LIBRARIES = ("torch.", "copy.", "logging.", "math.", "numpy.")


@dataclass(frozen=True)
class _Use:
    """The averaged model (or anything else) named `subject` used at `node`."""

    kind: str  # "call", "eval", "train", "save", "evaluate-fn", "handed"
    subject: str
    node: ast.AST
    scope: Scope
    callee: str = ""


@dataclass(frozen=True)
class _Averaged:
    """`target = AveragedModel(model, ...)`."""

    target: str
    call: ast.Call
    statement: ast.stmt
    scope: Scope


class StaleStatsAfterAveraging(ScopeWalk, Rule):
    code = "BN018"
    name = "stale-stats-after-averaging"
    severity = Severity.WARNING
    triggers = ("AveragedModel",)
    trigger_pattern = r"AveragedModel\s*\("
    syntax = "ast"
    needs_index = True
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall,)

    VALID = (
        # Statistics re-estimated before evaluation.
        "import torch\nimport torchvision\nfrom torch.optim.swa_utils import AveragedModel\n"
        "model = torchvision.models.resnet18()\nswa_model = AveragedModel(model)\n"
        "torch.optim.swa_utils.update_bn(loader, swa_model)\nswa_model.eval()\n",
        # EMA over the buffers too.
        "import torchvision\nfrom torch.optim.swa_utils import AveragedModel\n"
        "model = torchvision.models.resnet18()\n"
        "ema = AveragedModel(model, use_buffers=True)\nema.eval()\n",
        # A model without BatchNorm.
        "import torchvision\nfrom torch.optim.swa_utils import AveragedModel\n"
        "model = torchvision.models.vit_b_16()\nswa_model = AveragedModel(model)\n"
        "swa_model.eval()\n",
        # A model the file cannot place.
        "from torch.optim.swa_utils import AveragedModel\nmodel = build(cfg)\n"
        "swa_model = AveragedModel(model)\nswa_model.eval()\n",
        # Never evaluated nor saved here.
        "import torchvision\nfrom torch.optim.swa_utils import AveragedModel\n"
        "model = torchvision.models.resnet18()\nswa_model = AveragedModel(model)\n"
        "swa_model.update_parameters(model)\n",
    )
    INVALID = (
        Invalid(
            "import torchvision\nfrom torch.optim.swa_utils import AveragedModel\n"
            "model = torchvision.models.resnet18()\nswa_model = AveragedModel(model)\n"
            "swa_model.update_parameters(model)\nswa_model.eval()\n"
        ),
        Invalid(
            "import torch\nimport torch.nn as nn\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3)\n        self.bn = nn.BatchNorm2d(8)\n"
            "def main(path):\n    model = Net()\n"
            "    ema = torch.optim.swa_utils.AveragedModel(\n        model,\n"
            "        multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999),\n    )\n"
            "    torch.save(ema.module.state_dict(), path)\n"
        ),
    )

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormCall) or not event.averaged_stats_stale:
            return
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) of an AveragedModel "
            "is evaluated with the running statistics copied from the original model: "
            "they do not match the averaged weights",
            suggestion="call `torch.optim.swa_utils.update_bn(train_loader, swa_model)` "
            "before evaluating or saving, or build it with `use_buffers=True`",
            subject=event.module.path,
        )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.averaged: list[_Averaged] = []
        self.uses: list[_Use] = []
        self.local_functions: set[str] = set()
        self.re_estimates = False

    # -- the walk: the AveragedModel bindings and every use of a name ------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.local_functions.add(node.name)
        super().visit_FunctionDef(node)

    def visit_Name(self, node: ast.Name) -> None:
        super().visit_Name(node)
        if RE_ESTIMATION.search(node.id):
            self.re_estimates = True

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if RE_ESTIMATION.search(node.attr):
            self.re_estimates = True

    def visit_Assign(self, node: ast.Assign) -> None:
        self._binding(node.targets[0], node.value, node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._binding(node.target, node.value, node)

    def _binding(self, target: ast.expr, value: ast.expr, statement: ast.stmt) -> None:
        call, _ = module_chain(value)
        name = dotted_name(target)
        if (
            name is not None
            and isinstance(call, ast.Call)
            and resolve(call.func, self.aliases) == AVERAGED_MODEL
            and (name.count(".") == 0 or (name.startswith("self.") and name.count(".") == 1))
        ):
            self.averaged.append(_Averaged(name, call, statement, self.scope))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = dotted_name(func.value)
            mode = mode_switch(node)
            if receiver is not None and mode is not None:
                self._use(mode, receiver, node)
            elif receiver is not None and func.attr == "state_dict":
                self._use("save", receiver, node)
        called = dotted_name(func)
        if called is not None:
            self._use("call", called, node)
        qualified = resolve(func, self.aliases)
        if qualified == "torch.save" and node.args:
            saved = dotted_name(node.args[0])
            if saved is not None:
                self._use("save", saved, node)
            return
        callee = called or ""
        short = callee.rsplit(".", 1)[-1]
        if EVAL_FUNCTION.search(short):
            kind = "evaluate-fn"
        elif short in _HARMLESS_BUILTINS or (qualified or "").startswith(_HARMLESS_LIBRARIES):
            return
        else:
            kind = "handed"
        for value in [*node.args, *(keyword.value for keyword in node.keywords)]:
            passed = dotted_name(module_chain(value)[0])
            if passed is not None:
                self._use(kind, passed, node, callee)

    def _use(self, kind: str, subject: str, node: ast.AST, callee: str = "") -> None:
        self.uses.append(_Use(kind, subject, node, self.scope, callee))

    # -- the judgement, once the whole file is known ----------------------------------------
    def leave_Module(self, original_node: ast.Module) -> None:
        if self.re_estimates or not self.averaged:
            return
        kinds = ModelKinds(self.context, original_node)
        for averaged in self.averaged:
            if _use_buffers_unknown_or_true(averaged.call):
                continue
            model = argument(averaged.call, "model", 0)
            if model is None or kinds.kind(model, averaged.scope) != "bn":
                continue
            uses = list(self._uses_of(averaged))
            if any(use.kind == "train" for use in uses):
                continue  # a hand-written re-estimation loop, possibly
            if any(use.kind == "handed" and not self._is_local(use.callee) for use in uses):
                continue  # a helper of another module may re-estimate
            sinks = [use for use in uses if use.kind in ("call", "eval", "save", "evaluate-fn")]
            if sinks:
                # The first use in the binding's own scope, else the first one in the file.
                first = min(
                    sinks,
                    key=lambda use: (use.scope is not averaged.scope, _position(use.node)),
                )
                self._report(averaged, model, first)

    def _uses_of(self, averaged: _Averaged) -> Iterator[_Use]:
        """Uses of the averaged model itself or of its `.module`, where its name can
        refer to it: after the binding in the same scope; in nested functions that do
        not rebind it; for `self.<attr>`, in every method of the same class."""
        target = averaged.target
        after = (averaged.statement.end_lineno or 0, averaged.statement.end_col_offset or 0)
        for use in self.uses:
            if use.subject not in (target, f"{target}.module"):
                continue
            if use.scope is averaged.scope:
                if _position(use.node) > after:
                    yield use
            elif target.startswith("self."):
                if averaged.scope.owner is not None and use.scope.owner == averaged.scope.owner:
                    yield use
            elif use.scope.sees(averaged.scope, target):
                yield use

    def _is_local(self, callee: str) -> bool:
        """A function or method defined in this file: its body is in view, and the file
        re-estimates nowhere."""
        head, _, rest = callee.partition(".")
        short = callee.rsplit(".", 1)[-1]
        return short in self.local_functions and (not rest or head == "self")

    def _report(self, averaged: _Averaged, model: ast.expr, sink: _Use) -> None:
        target = averaged.target
        line = getattr(sink.node, "lineno", 0)
        how = {
            "call": "called on data",
            "eval": "put in eval mode",
            "save": "saved",
            "evaluate-fn": f"evaluated by `{sink.callee}()`",
        }[sink.kind]
        averaging = [argument(averaged.call, *parameter) for parameter in AVERAGING_FUNCTIONS]
        ema = any(value is not None and "ema" in ast.unparse(value) for value in averaging)
        kind = "EMA model" if ema else "averaged model"
        self.report(
            averaged.call,
            message=(
                f"`{target}` averages the weights of BatchNorm model `{ast.unparse(model)}` "
                f"but not its running statistics (no `use_buffers=True`), and it is {how} "
                f"on line {line} with no `update_bn` in this file: the {kind} normalises "
                "with statistics copied from the source model, which do not match the "
                "averaged weights"
            ),
            suggestion=(
                f"call `torch.optim.swa_utils.update_bn(train_loader, {target})` after the "
                f"averaging loop, before line {line}, or build it with "
                f"`AveragedModel({ast.unparse(model)}, ..., use_buffers=True)`"
            ),
        )


def _position(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", 0)


def _use_buffers_unknown_or_true(call: ast.Call) -> bool:
    """`use_buffers=True`, or a value (or `*args`/`**kwargs`) the file does not show."""
    if any(keyword.arg is None for keyword in call.keywords):
        return True
    if any(isinstance(arg, ast.Starred) for arg in call.args):
        return True
    value = argument(call, "use_buffers", _USE_BUFFERS_POSITION)
    if value is None:
        return False
    return not (isinstance(value, ast.Constant) and value.value is False)
