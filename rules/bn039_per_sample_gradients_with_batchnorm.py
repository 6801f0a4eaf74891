"""Per-sample gradients (torch.func vmap, Opacus DP-SGD) over a BatchNorm model.

## What it does
Checks for per-sample gradient computations over a model known to contain BatchNorm:
- `torch.func`: `functional_call(model, ...)` (or functorch's
  `make_functional(model)` / `make_functional_with_buffers(model)`) in a file that
  also applies `vmap` and a gradient transform (`grad`, `grad_and_value`, `vjp`,
  `jacrev`, `jacfwd`), while the model is not put in eval mode anywhere in the file;
- Opacus: `privacy_engine.make_private(module=model, ...)`,
  `make_private_with_epsilon(module=model, ...)`, `GradSampleModule(model)` or the
  pre-1.0 `PrivacyEngine(model, ...)`.

"Known to contain BatchNorm": a class of the project with a BatchNorm layer, or a known
factory (`torchvision.models.resnet18()`, `timm.create_model("resnet50")`), as the
project index resolves them; an unknown model is not judged. The rule is silent when
the file replaces the BatchNorm layers (`torch.func.replace_all_batch_norm_modules_`,
Opacus' `ModuleValidator.fix`, `convert_batchnorm_modules`) or sets
`track_running_stats` itself.

## Why is this bad?
BatchNorm normalises each sample with statistics of the whole batch, so a sample's
"own" gradient does not exist: it depends on the other samples. Under `vmap` each
sample is a batch of one, and the in-place running-statistics update of a
training-mode BatchNorm raises; Opacus refuses BatchNorm outright because per-sample
clipping would leak through the batch statistics (P32: the torch.func documentation
"Patching Batch Norm", `pytorch/opacus#567`, `#576`, `f-dangel/backpack#253`).

## Example
```python
model = torchvision.models.resnet18(num_classes=10)
params = {k: v.detach() for k, v in model.named_parameters()}
buffers = {k: v.detach() for k, v in model.named_buffers()}

def loss_fn(params, buffers, x, y):
    out = functional_call(model, (params, buffers), (x.unsqueeze(0),))
    return F.cross_entropy(out, y.unsqueeze(0))

per_sample = vmap(grad(loss_fn), in_dims=(None, None, 0, 0))(params, buffers, xs, ys)
```

## Use instead
```python
model = torchvision.models.resnet18(num_classes=10)
replace_all_batch_norm_modules_(model)   # from torch.func: no running statistics
# or GroupNorm: torchvision.models.resnet18(norm_layer=lambda c: nn.GroupNorm(32, c))
# with Opacus: model = ModuleValidator.fix(model) before make_private
```

## Fix safety
No automatic fix: replacing BatchNorm changes the model (GroupNorm needs retraining,
`replace_all_batch_norm_modules_` drops the running statistics), and Opacus' own swap to
GroupNorm has broken models (`pytorch/opacus#567`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from bnlint.finding import Severity
from bnlint.index.ast_names import argument, module_chain, resolve
from bnlint.index.model_scopes import EvalWalk, ModelKinds, Scope, ScopeWalk
from bnlint.rule import Invalid, Rule, RuleContext

_FUNC_MODULES = ("torch.func.", "functorch.", "torch.")
VMAP = frozenset({"torch.func.vmap", "torch.vmap", "functorch.vmap"})
GRADIENT_TRANSFORMS = frozenset({"grad", "grad_and_value", "vjp", "jacrev", "jacfwd"})
# The callee, and where the model goes: (keyword, position).
FUNCTIONAL_MODELS = {
    "torch.func.functional_call": ("module", 0),
    "torch.nn.utils.stateless.functional_call": ("module", 0),
    "functorch.functional_call": ("module", 0),
    "functorch.make_functional": ("model", 0),
    "functorch.make_functional_with_buffers": ("model", 0),
}
OPACUS_WRAPPERS = {
    "GradSampleModule": ("m", 0),
    "PrivacyEngine": ("module", 0),
}
OPACUS_METHODS = frozenset({"make_private", "make_private_with_epsilon"})
# A reference to one of these anywhere in the file: the BatchNorm layers are replaced
# or stop tracking statistics, as far as the rule can tell.
BATCHNORM_REPLACED = re.compile(
    r"replace_all_batch_norm_modules_|convert_batchnorm_modules|track_running_stats|"
    r"^fix$|fix_and_validate|replace_bn|convert_bn|bn_to_gn"
)


@dataclass(frozen=True)
class _Site:
    """A per-sample gradient computation over `model`."""

    kind: str  # "vmap" or "opacus"
    call: ast.Call
    api: str
    model: ast.expr
    scope: Scope


class PerSampleGradientsWithBatchnorm(ScopeWalk, EvalWalk, Rule):
    code = "BN039"
    name = "per-sample-gradients-with-batchnorm"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("vmap", "functional_call", "make_functional", "PrivacyEngine", "GradSampleModule")
    syntax = "ast"
    needs_index = True

    VALID = (
        # The BatchNorm layers are patched for vmap.
        "import torchvision\nfrom torch.func import functional_call, grad, vmap\n"
        "from torch.func import replace_all_batch_norm_modules_\n"
        "model = torchvision.models.resnet18()\nreplace_all_batch_norm_modules_(model)\n"
        "def f(p, b, x):\n    return functional_call(model, (p, b), (x,)).sum()\n"
        "g = vmap(grad(f), in_dims=(None, None, 0))\n",
        # Eval mode: BatchNorm is a fixed affine map.
        "import torchvision\nfrom torch.func import functional_call, grad, vmap\n"
        "model = torchvision.models.resnet18()\nmodel.eval()\n"
        "def f(p, b, x):\n    return functional_call(model, (p, b), (x,)).sum()\n"
        "g = vmap(grad(f), in_dims=(None, None, 0))\n",
        # Opacus after ModuleValidator.fix.
        "import torchvision\nfrom opacus import PrivacyEngine\n"
        "from opacus.validators import ModuleValidator\n"
        "model = ModuleValidator.fix(torchvision.models.resnet18())\n"
        "model, opt, dl = PrivacyEngine().make_private(module=model, optimizer=opt, "
        "data_loader=dl, noise_multiplier=1.0, max_grad_norm=1.0)\n",
        # No BatchNorm.
        "import torch.nn as nn\nfrom opacus import PrivacyEngine\n"
        "model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))\n"
        "model, opt, dl = PrivacyEngine().make_private(module=model, optimizer=opt, "
        "data_loader=dl, noise_multiplier=1.0, max_grad_norm=1.0)\n",
    )
    INVALID = (
        Invalid(
            "import torchvision\nfrom torch.func import functional_call, grad, vmap\n"
            "model = torchvision.models.resnet18()\n"
            "def f(p, b, x):\n    return functional_call(model, (p, b), (x,)).sum()\n"
            "g = vmap(grad(f), in_dims=(None, None, 0))\n"
        ),
        Invalid(
            "import torchvision\nfrom opacus import PrivacyEngine\n"
            "model = torchvision.models.resnet18()\n"
            "model, opt, dl = PrivacyEngine().make_private(module=model, optimizer=opt, "
            "data_loader=dl, noise_multiplier=1.0, max_grad_norm=1.0)\n"
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.uses_opacus = False
        self.sites: list[_Site] = []
        self.vmap_line = 0
        self.gradient_transform = False
        self.replaced = False

    def visit_Module(self, node: ast.Module) -> None:
        self.uses_opacus = any(
            source == "opacus" or source.startswith("opacus.") for source in self.aliases.values()
        )

    def visit_Name(self, node: ast.Name) -> None:
        super().visit_Name(node)
        if BATCHNORM_REPLACED.search(node.id):
            self.replaced = True

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if BATCHNORM_REPLACED.search(node.attr):
            self.replaced = True

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg == "track_running_stats":
            self.replaced = True

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if self.note_eval(node):
                return
            if func.attr in OPACUS_METHODS and self.uses_opacus:
                self._site("opacus", node, func.attr, argument(node, "module", None))
                return
        qualified = resolve(func, self.aliases)
        if qualified is None:
            return
        short = qualified.rsplit(".", 1)[-1]
        if qualified in VMAP:
            self.vmap_line = self.vmap_line or node.lineno
        elif short in GRADIENT_TRANSFORMS and qualified.startswith(_FUNC_MODULES):
            self.gradient_transform = True
        elif qualified in FUNCTIONAL_MODELS:
            self._site("vmap", node, short, argument(node, *FUNCTIONAL_MODELS[qualified]))
        elif qualified.startswith("opacus.") and short in OPACUS_WRAPPERS:
            self._site("opacus", node, short, argument(node, *OPACUS_WRAPPERS[short]))

    def _site(self, kind: str, call: ast.Call, api: str, model: ast.expr | None) -> None:
        if model is not None:
            self.sites.append(_Site(kind, call, api, model, self.scope))

    def leave_Module(self, original_node: ast.Module) -> None:
        if self.replaced or not self.sites:
            return
        kinds = ModelKinds(self.context, original_node)
        for site in self.sites:
            if site.kind == "vmap" and not (self.vmap_line and self.gradient_transform):
                continue
            if site.kind == "vmap" and self.in_eval(site.model):
                continue  # eval-mode BatchNorm is a fixed affine map: vmap is fine
            if kinds.kind(site.model, site.scope) == "bn":
                self._report(site, ast.unparse(module_chain(site.model)[0]))

    def _report(self, site: _Site, model: str) -> None:
        line = site.call.lineno
        if site.kind == "vmap":
            self.report(
                site.call,
                message=(
                    f"`{model}` holds BatchNorm in training mode and `{site.api}` runs it "
                    f"for per-sample gradients under `vmap` (line {self.vmap_line}): "
                    "BatchNorm mixes the samples of a batch, so per-sample gradients are not "
                    "defined, and its in-place running-statistics update fails under vmap"
                ),
                suggestion=(
                    f"before the `vmap` on line {self.vmap_line}, call "
                    f"`torch.func.replace_all_batch_norm_modules_"
                    f"({model})` (BatchNorm then uses batch statistics only), or build the "
                    f"model with GroupNorm/LayerNorm; `{model}.eval()` if its statistics "
                    "should stay fixed"
                ),
            )
            return
        self.report(
            site.call,
            message=(
                f"`{model}` holds BatchNorm and `{site.api}` sets it up for DP-SGD: "
                "per-sample gradients are not defined through BatchNorm (it mixes the "
                "samples of a batch), and Opacus rejects the model"
            ),
            suggestion=(
                f"before line {line}: `{model} = ModuleValidator.fix({model})` (from "
                "`opacus.validators`; BatchNorm becomes GroupNorm), then build the "
                f"optimizer on `{model}.parameters()`"
            ),
        )
