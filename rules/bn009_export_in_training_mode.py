"""A model is exported or saved while its BatchNorm layers are in training mode.

## What it does
Checks for `torch.jit.trace`, `torch.export.export`, `torch.fx.symbolic_trace`,
`torch.save(module)` (the whole module, not its `state_dict()`) and
`torch.onnx.export(..., training=TrainingMode.TRAINING/PRESERVE)` called on a module
that contains a BatchNorm in training mode. The default `torch.onnx.export` (which
switches the model to eval itself) is not reported, nor is `torch.jit.script` (it
compiles both branches and the mode stays a runtime flag).

The static check reports such a call on a model that the same function (or the
module's top level) built and never put into eval before the call: the name was bound
by a constructor or factory (`Net()`, `torchvision.models.resnet50(...)`,
`timm.create_model("resnet50")`, `smp.Unet("resnet34")`, or one derived from such a
name with `.to()`, `DataParallel`, `torch.compile`), the project index knows it as a
BatchNorm model, and no `.eval()`/`.train(False)` on it (or on the object it was
derived from) comes before the call on any path. A named part of such a model
(`torch.jit.trace(model.depth_net, x)`) is in the mode of the whole and is reported
when the index knows that attribute of the model's class as a BatchNorm model (a
project class wrapping a segmentation_models_pytorch model or a torchvision
backbone, for example). A helper that receives the model and leaves it in eval
counts as an `.eval()`; Lightning's `LitModel.load_from_checkpoint(path)` builds the
class anew and is in training mode like any new module; a call bnlint cannot follow
that receives the model, a model that is a parameter, an attribute (`self.model`) or
loaded from disk, are unknown and not reported. `torch.save(model, ...)` inside a
training loop (a checkpoint to resume training from) is not reported either.
`training=TrainingMode.TRAINING` switches the model to training mode inside the
exporter, so it is reported for a BN model built in the function whatever mode the
model was in before.

The runtime check sees the call as it happens and lists the BatchNorm layers that are
in training mode at that moment; it also covers models the static check cannot place.

## Why is this bad?
Tracing and exporting record the mode the model is in: a graph traced in training
mode normalises every batch with its own statistics and keeps updating running
statistics, so the deployed model gives different answers for the same image
depending on what else is in the batch, and fails on a batch of one. A pickled
training-mode module comes back in training mode, and the next `model(x)` without
`eval()` silently does the same (P02: `pytorch/pytorch#71929`, `#15216`,
`hpcaitech/ColossalAI` PR #1225).

## Example
```python
model = build_model()
train(model, loader)
traced = torch.jit.trace(model, example)
torch.save(model, "model.pt")
```

## Use instead
```python
model.eval()
traced = torch.jit.trace(model, example)
torch.save(model.state_dict(), "model.pt")
```

## Fix safety
The static check's fix inserts `model.eval()` on its own line before the export
statement. It is unsafe: code after the export may rely on the model still training
(a wrapper that saves and restores the mode is the safe form). With
`training=TrainingMode.TRAINING` no fix is offered: the exporter switches the model
back to training mode, so pass `TrainingMode.EVAL` (the default) unless a training
graph is intended. The runtime check applies no fix.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

from bnlint.events import Event, ExportCall
from bnlint.finding import Applicability, Severity
from bnlint.index.ast_names import argument
from bnlint.index.mode_reach import Site, TrainingUse, Used, training_bn_uses
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuntimeReport

# onnx.export's `training` values that keep BN in training mode in the graph.
_ONNX_TRAINING_MODES = frozenset({"TRAINING", "PRESERVE"})
# Calls that record a module's graph in its current mode: the parameter naming the
# module, by keyword and position.
_TRACERS = {
    "torch.jit.trace": ("func", 0),
    "torch.jit.trace_module": ("mod", 0),
    "torch.export.export": ("mod", 0),
    "torch.fx.symbolic_trace": ("root", 0),
}
_SAVE = "torch.save"
# Text a function must contain to hold one of those calls (any spelling of the import).
_EXPORT_WORDS = re.compile(r"trace|export|save|TrainingMode")
_ONNX_EXPORT = "torch.onnx.export"
# `training` of the TorchScript-era signature: export(model, args, f, export_params,
# verbose, training, ...).
_ONNX_TRAINING_POSITION = 5


class ExportInTrainingMode(Rule):
    code = "BN009"
    name = "export-in-training-mode"
    severity = Severity.ERROR
    # Sharp words first (a substring test is ~100x cheaper than the pattern's scan):
    # the pattern then runs on the few files that hold one of them.
    triggers = (
        "jit.trace",
        "trace_module",
        "export.export",
        "symbolic_trace",
        "torch.save",
        "TrainingMode.",
        "from torch.jit import",
        "from torch.export import",
    )
    # A tracer, a save of a name (not of `model.state_dict()`), or an explicit ONNX
    # training mode.
    trigger_pattern = (
        r"jit\.trace(?:_module)?\s*\(|\bexport\.export\s*\(|symbolic_trace"
        r"|^\s*from\s+torch\.jit\s+import\s[^#\n]*\btrace"
        r"|^\s*from\s+torch\.export\s+import\s[^#\n]*\bexport\b"
        r"|torch\.save\s*\(\s*[A-Za-z_][\w.]*\s*[,)]|TrainingMode\.(?:TRAINING|PRESERVE)"
    )
    syntax = "ast"
    needs_index = True
    autofix = "unsafe"
    engines = ("static", "runtime")
    runtime_events = (ExportCall,)

    VALID = (
        "import torch, torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "model.eval()\n"
        "traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))\n",
        "import torch, torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "torch.save(model.state_dict(), 'resnet18.pt')\n",
        "import torch, torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "torch.onnx.export(model, torch.randn(1, 3, 224, 224), 'resnet18.onnx')\n",
        "import torch\n"
        "def export(model, path):\n"
        "    torch.jit.trace(model, torch.randn(1, 3, 224, 224)).save(path)\n",
    )
    INVALID = (
        Invalid(
            "import torch, torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))\n",
            fixed="import torch, torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "model.eval()\n"
            "traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))\n",
        ),
        Invalid(
            "import torch\nimport torch.nn as nn\n"
            "def main():\n"
            "    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))\n"
            "    torch.save(net, 'net.pt')\n",
            fixed="import torch\nimport torch.nn as nn\n"
            "def main():\n"
            "    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))\n"
            "    net.eval()\n"
            "    torch.save(net, 'net.pt')\n",
        ),
        Invalid(
            "import torch, torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "torch.onnx.export(model, torch.randn(1, 3, 224, 224), 'r.onnx',\n"
            "                  training=torch.onnx.TrainingMode.TRAINING)\n"
        ),
    )

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, ExportCall) or not event.training_batchnorms:
            return
        if event.function == "torch.onnx.export" and (
            event.onnx_training is None or event.onnx_training.upper() not in _ONNX_TRAINING_MODES
        ):
            return
        names = event.training_batchnorms
        shown = ", ".join(f"`{name}`" for name in names[:3])
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        what = "saved" if event.function == "torch.save" else "exported"
        yield RuntimeReport(
            message=f"`{event.function}` on a {event.module_class} whose BatchNorm layers "
            f"{shown}{more} are in training mode: the {what} model keeps normalising "
            "with batch statistics",
            suggestion="call `model.eval()` before exporting; save `model.state_dict()` "
            "rather than the module",
            subject=event.function,
        )

    def check_module(self) -> None:
        for use in training_bn_uses(self.context, _exported_model, _EXPORT_WORDS):
            if use.what == _SAVE and use.in_training_loop:
                continue  # a checkpoint to resume training from
            self._report(use)

    def _report(self, use: TrainingUse) -> None:
        name, line = use.model, use.statement.lineno
        function, _, onnx_mode = use.what.partition(":")
        if function == _SAVE:
            message = (
                f"`{name}` holds BatchNorm and is pickled as a whole module in training "
                "mode: whoever loads it gets a model that normalises with batch "
                "statistics until they remember to call `.eval()`"
            )
            suggestion = (
                f"save `{name}.state_dict()` instead (and call `.eval()` after loading), "
                f"or call `{name}.eval()` before line {line}"
            )
        elif onnx_mode == "TRAINING":
            message = (
                f"`torch.onnx.export(training=TrainingMode.TRAINING)` exports `{name}` "
                "with its BatchNorm layers in training mode: the ONNX graph normalises "
                "every batch with its own statistics"
            )
            suggestion = (
                f"drop `training=` on line {use.call.lineno} (the default exports in eval "
                "mode) unless a training graph is intended; `.eval()` alone does not help"
            )
        else:
            shown = "torch.onnx.export(training=TrainingMode.PRESERVE)" if onnx_mode else function
            message = (
                f"`{name}` holds BatchNorm and is still in training mode here: `{shown}` "
                "records the training-mode graph, which normalises every batch with its "
                "own statistics"
                + ("" if onnx_mode else " and updates the running statistics while tracing")
            )
            suggestion = f"call `{name}.eval()` before line {line}"
        fix = None
        if onnx_mode != "TRAINING":
            fix = PendingFix(
                Applicability.UNSAFE,
                f"Insert `{name}.eval()` before line {line}",
                (NodeEdit(use.statement, "before", self._eval_line(use)),),
            )
        self.report(use.call, message, suggestion, fix)

    def _eval_line(self, use: TrainingUse) -> str:
        """`model.eval()` on its own line at the statement's indentation, or followed by
        `; ` when the statement shares its line (`if x: torch.save(model, p)`)."""
        statement = use.statement
        line = self.context.source.splitlines()[statement.lineno - 1]
        prefix = line.encode("utf-8")[: statement.col_offset].decode("utf-8", "replace")
        if prefix.strip():
            return f"{use.model}.eval(); "
        return f"{use.model}.eval()\n{prefix}"


def _exported_model(call: ast.Call, site: Site) -> Used | None:
    """The module a tracer, `torch.save` or a training-mode ONNX export receives;
    `what` is the function, with the ONNX mode after a colon."""
    function = site.qualified(call.func)
    model: ast.expr | None = None
    if function in _TRACERS:
        keyword, position = _TRACERS[function]
        model = argument(call, keyword, position)
    elif function == _SAVE:
        model = argument(call, "obj", 0)
    elif function == _ONNX_EXPORT:
        mode = _onnx_training(call, site)
        if mode is None:
            return None  # the default switches the model to eval itself
        model = argument(call, "model", 0)
        function = f"{function}:{mode}"
    if model is None or not function:
        return None
    return Used(model, function, forces_training=function.endswith(":TRAINING"))


def _onnx_training(call: ast.Call, site: Site) -> str | None:
    """ "TRAINING" / "PRESERVE" when the call passes that `training` mode."""
    value = argument(call, "training", _ONNX_TRAINING_POSITION)
    written = site.qualified(value) if value is not None else None
    if written is None or not written.startswith("torch."):
        return None
    owner, _, mode = written.rpartition(".")
    return mode if owner.endswith(".TrainingMode") and mode in _ONNX_TRAINING_MODES else None
