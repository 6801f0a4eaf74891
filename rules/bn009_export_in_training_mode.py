"""A model is exported or saved while its BatchNorm layers are in training mode.

## What it does
Checks for `torch.jit.trace`, `torch.export.export`, `torch.fx.symbolic_trace`,
`torch.save(module)` (the whole module, not its `state_dict()`) and
`torch.onnx.export(..., training=TRAINING/PRESERVE)` called on a module that contains
a BatchNorm in training mode.

The runtime check sees the call as it happens and lists the BatchNorm layers that are
in training mode at that moment. The default `torch.onnx.export` (which switches the
model to eval itself) is not reported.

## Why is this bad?
Tracing and exporting record the mode the model is in: a graph traced in training
mode normalises every batch with its own statistics and keeps updating running
statistics, so the deployed model gives different answers for the same image
depending on what else is in the batch, and fails on a batch of one. A pickled
training-mode module comes back in training mode, and the next `model(x)` without
`eval()` silently does the same.

## Example
```python
model = build_model()
train(model, loader)
traced = torch.jit.trace(model, example)
```

## Use instead
```python
model.eval()
traced = torch.jit.trace(model, example)
torch.save(model.state_dict(), "model.pt")
```

## Fix safety
The fix suggestion (call `model.eval()` before exporting) is not applied automatically
at run time; the static check's fix is unsafe because the code after the export may
rely on the model still training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import Event, ExportCall
from bnlint.finding import Severity
from bnlint.rule import Rule, RuntimeReport

# onnx.export's `training` values that keep BN in training mode in the graph.
_ONNX_TRAINING_MODES = frozenset({"TRAINING", "PRESERVE"})


class ExportInTrainingMode(Rule):
    code = "BN009"
    name = "export-in-training-mode"
    severity = Severity.ERROR
    autofix = "none"  # RULES.md plans an unsafe fix; none is offered yet
    engines = ("runtime",)
    runtime_events = (ExportCall,)

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
