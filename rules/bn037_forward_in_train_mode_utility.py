"""A model summary or FLOP counter runs a forward pass while BatchNorm is in training mode.

## What it does
Checks for model-summary and FLOP utilities that run a forward pass in the model's
current mode, called on a BatchNorm model that the same function (or the module's top
level) built and never put into eval before the call:

- `torchsummary.summary` / `summary_string` (a random batch of 2, training mode);
- `torchsummaryX.summary`;
- fvcore's `FlopCountAnalysis`, `ActivationCountAnalysis`, `flop_count`,
  `activation_count` (a `torch.jit` trace of the model in its current mode);
- `torchscan.summary` / `crawl_module` (a random batch of 1 in the current mode);
- `torchviz.make_dot(model(dummy))` (the drawn forward pass);
- a forward pass inside `with torch.utils.flop_counter.FlopCounterMode():` when the
  block does not call `backward()` (counting training FLOPs is deliberate).

"Built and never put into eval" is BN009's reasoning: a constructor or factory bound
the name in this function, the project index knows it as a BatchNorm model, and no
`.eval()`, eval-setting helper or call bnlint cannot follow comes before the utility.
Utilities that switch to eval themselves are not reported: `thop.profile` and
`torchinfo.summary` (both restore the previous mode), `ptflops`,
`deepspeed`'s `get_model_profile`, `torchstat.stat` and TensorBoard's `add_graph`.

Default off, severity info: a summary on a freshly built model only nudges the
running statistics, which training overwrites; it matters for pretrained or trained
models.

## Why is this bad?
The utility's forward pass on dummy data updates every BatchNorm's running mean and
variance (momentum 0.1: a tenth of the way towards the statistics of random noise), so
predictions change after a call that looks read-only; a batch of one can also crash
`BatchNorm1d` (P30: `sksq96/pytorch-summary#4`, `sachinhosmani/torchvista#39`,
`HRNet/HRNet-Semantic-Segmentation#227`, `pytorch/vision#2079`).

## Example
```python
model = torchvision.models.resnet50(weights="DEFAULT")
summary(model, (3, 224, 224))  # torchsummary
```

## Use instead
```python
model = torchvision.models.resnet50(weights="DEFAULT")
model.eval()
summary(model, (3, 224, 224))
model.train()  # if training follows
```

## Fix safety
There is no autofix: whether the model must go back to training mode after the
utility depends on the code that follows.
"""

from __future__ import annotations

import ast
import re

from bnlint.finding import Severity
from bnlint.index.ast_names import argument, dotted_name
from bnlint.index.mode_reach import Site, TrainingUse, Used, training_bn_uses
from bnlint.rule import Invalid, Rule

# Utilities that run the model in its current mode: the parameter naming the model.
_UTILITIES = {
    "torchsummary.summary": ("model", 0),
    "torchsummary.summary_string": ("model", 0),
    "torchsummary.torchsummary.summary": ("model", 0),
    "torchsummaryX.summary": ("model", 0),
    "torchsummaryX.torchsummaryX.summary": ("model", 0),
    "fvcore.nn.FlopCountAnalysis": ("model", 0),
    "fvcore.nn.flop_count.FlopCountAnalysis": ("model", 0),
    "fvcore.nn.ActivationCountAnalysis": ("model", 0),
    "fvcore.nn.activation_count.ActivationCountAnalysis": ("model", 0),
    "fvcore.nn.flop_count": ("model", 0),
    "fvcore.nn.flop_count.flop_count": ("model", 0),
    "fvcore.nn.activation_count": ("model", 0),
    "fvcore.nn.activation_count.activation_count": ("model", 0),
    "torchscan.summary": ("module", 0),
    "torchscan.crawl_module": ("module", 0),
    "torchscan.crawler.summary": ("module", 0),
    "torchscan.crawler.crawl_module": ("module", 0),
}
_MAKE_DOT = frozenset({"torchviz.make_dot", "torchviz.dot.make_dot"})
_FLOP_COUNTER = "torch.utils.flop_counter.FlopCounterMode"
# Text a function must contain to hold one of those calls.
_UTILITY_WORDS = re.compile(
    r"summary|FlopCount|flop_count|ActivationCount|activation_count|crawl_module|make_dot"
)


class ForwardInTrainModeUtility(Rule):
    code = "BN037"
    name = "forward-in-train-mode-utility"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("torchsummary", "fvcore", "torchscan", "torchviz", "FlopCounterMode")
    trigger_pattern = (
        r"^\s*(?:from|import)\s+(?:torchsummaryX?|fvcore|torchscan|torchviz)\b|FlopCounterMode"
    )
    syntax = "ast"
    needs_index = True

    VALID = (
        "import torchvision\nfrom torchsummary import summary\n"
        "model = torchvision.models.resnet50()\nmodel.eval()\nsummary(model, (3, 224, 224))\n",
        "import torchvision\nfrom thop import profile\n"
        "model = torchvision.models.resnet50()\nmacs, params = profile(model, inputs=(x,))\n",
        "from torchsummary import summary\ndef show(model):\n    summary(model, (3, 224, 224))\n",
    )
    INVALID = (
        Invalid(
            "import torchvision\nfrom torchsummary import summary\n"
            "model = torchvision.models.resnet50()\nsummary(model, (3, 224, 224))\n"
        ),
        Invalid(
            "import torch, torchvision\nfrom fvcore.nn import FlopCountAnalysis\n"
            "def count():\n    net = torchvision.models.mobilenet_v2()\n"
            "    return FlopCountAnalysis(net, torch.randn(1, 3, 224, 224)).total()\n"
        ),
    )

    def check_module(self) -> None:
        counters = frozenset[str]()
        if "FlopCounterMode" in self.context.source:
            counters = _flop_counter_names(self.context.tree)

        def run_in_current_mode(call: ast.Call, site: Site) -> Used | None:
            return _utility_forward(call, site, counters)

        words = _UTILITY_WORDS
        if counters:
            names = "|".join(re.escape(name) for name in sorted(counters))
            words = re.compile(f"{_UTILITY_WORDS.pattern}|{names}")
        for use in training_bn_uses(self.context, run_in_current_mode, words):
            self._report(use)

    def _report(self, use: TrainingUse) -> None:
        name, line = use.model, use.statement.lineno
        self.report(
            use.call,
            message=(
                f"`{use.what}` runs a forward pass of `{name}` while its BatchNorm layers "
                "are in training mode: the dummy input updates the running statistics"
            ),
            suggestion=(
                f"call `{name}.eval()` before line {line} (and `{name}.train()` after it "
                "if training follows)"
            ),
        )


def _utility_forward(call: ast.Call, site: Site, counters: frozenset[str]) -> Used | None:
    """The model a utility runs in its current mode."""
    function = site.qualified(call.func)
    if function in _UTILITIES:
        keyword, position = _UTILITIES[function]
        model = argument(call, keyword, position)
        return Used(model, function.rsplit(".", 1)[-1]) if model is not None else None
    if function in _MAKE_DOT:
        drawn = argument(call, "var", 0)
        while (
            isinstance(drawn, ast.Call)
            and isinstance(drawn.func, ast.Attribute)
            and isinstance(drawn.func.value, ast.Call)
        ):
            drawn = drawn.func.value  # `model(x).mean()`
        if isinstance(drawn, ast.Call) and isinstance(drawn.func, ast.Name):
            return Used(drawn.func, "make_dot")
        return None
    if isinstance(call.func, ast.Name) and any(
        _counts_flops(statement, site, counters) for statement in site.withs
    ):
        return Used(call.func, "FlopCounterMode")
    return None


def _counts_flops(
    statement: ast.With | ast.AsyncWith, site: Site, counters: frozenset[str]
) -> bool:
    """A `with FlopCounterMode(...)` block that does not call backward()."""
    counting = any(
        (
            isinstance(item.context_expr, ast.Call)
            and site.qualified(item.context_expr.func) == _FLOP_COUNTER
        )
        or (isinstance(item.context_expr, ast.Name) and item.context_expr.id in counters)
        for item in statement.items
    )
    if not counting:
        return False
    return not any(
        isinstance(node, ast.Attribute) and node.attr == "backward"
        for node in ast.walk(ast.Module(body=statement.body, type_ignores=[]))
    )


def _flop_counter_names(tree: ast.Module) -> frozenset[str]:
    """Names bound to a `FlopCounterMode(...)` anywhere in the file (`with counter:`)."""
    return frozenset(
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and (dotted_name(node.value.func) or "").endswith("FlopCounterMode")
        for target in node.targets
        if isinstance(target, ast.Name)
    )
