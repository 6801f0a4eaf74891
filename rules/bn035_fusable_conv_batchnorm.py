"""An inference model traced or exported with Conv→BatchNorm pairs left unfused.

## What it does
Checks inference and export code: a file that traces, scripts or exports a model
(`torch.jit.trace`, `torch.jit.script`, `torch.export.export`) which it has put in
eval mode (`model.eval()`, `model.train(False)`, `Net().eval()`), whose architecture is
known to contain a convolution feeding a BatchNorm, and in which nothing fuses them.

"Known to contain a convolution feeding a BatchNorm": a class of the project with a
`Conv*` → `BatchNorm*` edge in its `forward` data flow or in an `nn.Sequential`
(in the class itself, a base class or a sub-module class), or a known BatchNorm CNN
factory (`torchvision.models.resnet50()`, `timm.create_model("resnet50")`).

The rule stays silent, on purpose, when the file:
- fuses or folds in any way: a name containing `fuse`/`fusion`/`fold`
  (`torch.ao.quantization.fuse_modules`, `fuse_conv_bn_eval`,
  `torch.fx.experimental.optimization.fuse`, ultralytics' `model.fuse()`),
  `torch.jit.freeze`, `optimize_for_inference`, `optimize_for_mobile`, FX quantization
  (`prepare_fx` fuses), re-parameterisation (`reparameterize`, `switch_to_deploy`);
- deploys through a toolchain that folds BatchNorm itself: `torch.onnx`, ONNX Runtime,
  TensorRT, Core ML, OpenVINO, ExecuTorch;
- trains (a `.backward()` call): fusion is valid only in eval.

## Why is this bad?
In eval mode a BatchNorm is a per-channel affine map with fixed statistics: it can be
folded into the preceding convolution's weights and bias, removing one pass over each
activation map from every inference. A TorchScript or `torch.export` graph keeps the
BatchNorm as a separate op unless it is fused (P27: `pytorch/pytorch` PR #47657,
`ultralytics/yolov5#4034`, `open-mmlab/mmcv` PR #382). This is advice: gains are small
on some backends, and none when a later compiler folds the BatchNorm anyway.

## Example
```python
model = torchvision.models.resnet50(weights="DEFAULT").eval()
traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))
traced.save("resnet50.pt")
```

## Use instead
```python
model = torchvision.models.resnet50(weights="DEFAULT").eval()
traced = torch.jit.freeze(torch.jit.trace(model, torch.randn(1, 3, 224, 224)))
traced.save("resnet50.pt")          # or fuse first: torch.fx.experimental.optimization.fuse(model)
```

## Fix safety
No automatic fix: which modules to fuse depends on the architecture, and fusion must
happen after the model is in eval mode and its weights are loaded.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from bnlint.finding import Severity
from bnlint.index.ast_names import argument, module_chain, resolve
from bnlint.index.graph import Edge, direct_edges
from bnlint.index.kinds import factory_kind
from bnlint.index.model_scopes import EvalWalk, ModelKinds, Scope, ScopeWalk
from bnlint.rule import Invalid, Rule, RuleContext

EXPORTS = {
    "torch.jit.trace": "func",
    "torch.jit.trace_module": "mod",
    "torch.jit.script": "obj",
    "torch.export.export": "mod",
}
# A name that fuses, folds or re-parameterises anywhere in the file silences the rule.
FUSION = re.compile(
    r"(?:^|_)(?:[Ff]use(?![a-z])|[Ff]usion|[Ff]old(?![a-z])|[Ff]reeze(?![a-z])|[Rr]eparam)|"
    r"optimize_for_(?:inference|mobile)|prepare(?:_qat)?_fx|quantize_fx|switch_to_deploy"
)
# Toolchains that fold BatchNorm into the convolution themselves.
FOLDING_DEPLOYMENT = (
    "torch.onnx",
    "onnx",
    "onnxruntime",
    "tensorrt",
    "torch_tensorrt",
    "coremltools",
    "openvino",
    "executorch",
)
_CONV_PREFIXES = ("Conv", "LazyConv")
_MAX_CLASSES = 64


@dataclass(frozen=True)
class _Export:
    call: ast.Call
    function: str
    model: ast.expr
    scope: Scope


class FusableConvBatchnorm(ScopeWalk, EvalWalk, Rule):
    code = "BN035"
    name = "fusable-conv-batchnorm"
    severity = Severity.INFO
    default_enabled = False
    triggers = (
        "jit.trace",
        "jit.script",
        "export.export",
        "from torch.jit import",
        "from torch.export import",
    )
    syntax = "ast"
    needs_index = True

    VALID = (
        # Fused before tracing.
        "import torch\nimport torchvision\nfrom torch.fx.experimental.optimization import fuse\n"
        "model = torchvision.models.resnet18().eval()\n"
        "traced = torch.jit.trace(fuse(model), x)\n",
        # Frozen: TorchScript folds Conv-BN.
        "import torch\nimport torchvision\nmodel = torchvision.models.resnet18().eval()\n"
        "traced = torch.jit.freeze(torch.jit.trace(model, x))\n",
        # Training code.
        "import torch\nimport torchvision\nmodel = torchvision.models.resnet18()\n"
        "model(x).sum().backward()\nmodel.eval()\ntraced = torch.jit.trace(model, x)\n",
        # Deployed through ONNX, which folds BN itself.
        "import torch\nimport torchvision\nmodel = torchvision.models.resnet18().eval()\n"
        "torch.jit.trace(model, x)\ntorch.onnx.export(model, x, 'm.onnx')\n",
        # A model without BatchNorm.
        "import torch\nimport torchvision\nmodel = torchvision.models.vit_b_16().eval()\n"
        "traced = torch.jit.trace(model, x)\n",
    )
    INVALID = (
        Invalid(
            "import torch\nimport torchvision\nmodel = torchvision.models.resnet18().eval()\n"
            "traced = torch.jit.trace(model, x)\n"
        ),
        Invalid(
            "import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3, bias=False)\n"
            "        self.bn = nn.BatchNorm2d(8)\n"
            "    def forward(self, x):\n        return self.bn(self.conv(x))\n"
            "net = Net()\nnet.eval()\nprogram = torch.export.export(net, (x,))\n"
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.exports: list[_Export] = []
        # Fusion, a folding toolchain or training seen somewhere in the file.
        self.silenced = False

    def visit_Import(self, node: ast.Import) -> None:
        # Anywhere, not only at module level: export helpers import their toolchain lazily.
        if any(_folds(alias.name) for alias in node.names):
            self.silenced = True

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level and _folds(node.module):
            self.silenced = True

    def visit_Name(self, node: ast.Name) -> None:
        super().visit_Name(node)
        if FUSION.search(node.id):
            self.silenced = True

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if FUSION.search(node.attr) or node.attr == "backward":
            self.silenced = True

    def visit_Call(self, node: ast.Call) -> None:
        if self.note_eval(node):
            return
        qualified = resolve(node.func, self.aliases)
        if qualified is None:
            return
        if _folds(qualified):
            self.silenced = True
        elif qualified in EXPORTS:
            model = argument(node, EXPORTS[qualified], 0)
            if model is not None:
                self.exports.append(_Export(node, qualified, model, self.scope))

    def leave_Module(self, original_node: ast.Module) -> None:
        if self.silenced or not self.exports:
            return
        pairs = _ConvBatchnormPairs(self.context, original_node)
        for export in self.exports:
            if not self.in_eval(export.model):
                continue  # training-mode export is BN009's business; fusion needs eval
            found = pairs.of(module_chain(export.model)[0], export.scope)
            if found is not None:
                self._report(export, found)

    def _report(self, export: _Export, found: tuple[str, Edge | None]) -> None:
        model = ast.unparse(module_chain(export.model)[0])
        what, edge = found
        where = f" ({edge.describe('the BatchNorm')} in `{edge.owner}`)" if edge else ""
        line = export.call.lineno
        if export.function.startswith("torch.jit."):
            how = (
                f"wrap the result in `torch.jit.freeze(...)` on line {line}, which folds "
                "Conv→BatchNorm in eval, or fuse before tracing with "
                f"`{model} = torch.fx.experimental.optimization.fuse({model})`"
            )
        else:
            modules = "[[<conv>, <bn>], ...]"
            if edge is not None and what == f"class `{edge.owner}`" and "[" not in edge.names[0]:
                modules = f'[["{edge.names[0]}", "{edge.names[1]}"], ...]'
            how = (
                f"fuse before line {line}: `{model} = "
                f"torch.fx.experimental.optimization.fuse({model})`, or "
                f"`torch.ao.quantization.fuse_modules({model}, {modules})`"
            )
        self.report(
            export.call,
            message=(
                f"`{model}` ({what}) is passed to `{export.function}` for inference with "
                f"its convolutions still followed by separate BatchNorm layers{where}: in "
                "eval each BatchNorm is a fixed per-channel affine map that could be folded "
                "into the convolution"
            ),
            suggestion=how,
        )


def _folds(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in FOLDING_DEPLOYMENT)


class _ConvBatchnormPairs:
    """Where the project index sees a convolution feeding a BatchNorm in the model a
    name or a constructor call builds: ("class `Net`", edge) for a project class,
    ("`resnet50` from torchvision", None) for a known BatchNorm CNN factory."""

    def __init__(self, context: RuleContext, tree: ast.Module) -> None:
        self.models = ModelKinds(context, tree)
        self.index = self.models.index
        self._edges: dict[str, list[Edge]] = {}

    def of(self, base: ast.expr, scope: Scope) -> tuple[str, Edge | None] | None:
        for path, spec in self.models.specs(base, scope):
            found = self._in_spec(path, spec)
            if found is not None:
                return found
        return None

    def _in_spec(self, path: str, spec: dict[str, Any]) -> tuple[str, Edge | None] | None:
        index = self.index
        call = spec.get("call")
        if not isinstance(call, str) or index.spec_kind(path, spec) != "bn":
            return None
        library = index.library_name(path, call)
        if library is not None:
            architecture = spec.get("arg0")
            if factory_kind(library, architecture) != "bn":
                return None
            if not isinstance(architecture, str):  # torchvision: the factory's own name
                architecture = library.rsplit(".", 1)[-1]
            return f"`{architecture}` from {library.split('.')[0]}", None
        found = index.lookup(path, call)
        if found is None or found[1] != "class":
            return None
        edge = self._pair_in_class(found[0], found[2])
        return None if edge is None else (f"class `{found[2]}`", edge)

    def _pair_in_class(self, path: str, name: str) -> Edge | None:
        """A Conv→BN edge in the class, its project bases or its sub-module classes."""
        index = self.index
        todo = [(path, name)]
        seen: set[tuple[str, str]] = set()
        while todo and len(seen) < _MAX_CLASSES:
            current = todo.pop(0)
            if current in seen or current[0] not in index.summaries:
                continue
            seen.add(current)
            for edge in self._edges_of(current[0]):
                if edge.owner == current[1] and self._is_conv_to_bn(edge):
                    return edge
            info = index.class_info(*current)
            for base in info["bases"]:
                found = index.lookup(current[0], base)
                if found is not None and found[1] == "class":
                    todo.append((found[0], found[2]))
            for layer_path, spec in index.class_layers(*current).values():
                for call in _calls(spec):
                    found = index.lookup(layer_path, call)
                    if found is not None and found[1] == "class":
                        todo.append((found[0], found[2]))
        return None

    def _edges_of(self, path: str) -> list[Edge]:
        if path not in self._edges:
            self._edges[path] = list(direct_edges(self.index, path))
        return self._edges[path]

    def _is_conv_to_bn(self, edge: Edge) -> bool:
        producer = self.index.library_name(edge.producer_path, _call_of(edge.producer))
        if producer is None or not producer.startswith("torch."):
            return False
        if not producer.rsplit(".", 1)[-1].startswith(_CONV_PREFIXES):
            return False
        consumer = _call_of(edge.consumer)
        return self.index.norm_kind(edge.consumer_path, consumer) == "bn"


def _call_of(spec: dict[str, object]) -> str | None:
    call = spec.get("call")
    return call if isinstance(call, str) else None


def _calls(spec: object) -> list[str]:
    """Every callee named in a layer spec, through containers and alternatives."""
    found: list[str] = []
    todo = [spec]
    while todo:
        current = todo.pop()
        if not isinstance(current, dict):
            continue
        call = current.get("call")
        if isinstance(call, str):
            found.append(call)
        for nested in ("items", "alts"):
            value = current.get(nested)
            if isinstance(value, list):
                todo.extend(value)
    return found
