"""A checkpoint saved from `parameters()`: BatchNorm running statistics are lost.

## What it does
Checks for `torch.save` of an object built from `<module>.parameters()` or
`<module>.named_parameters()` instead of `<module>.state_dict()`:

- `torch.save(model.parameters(), path)` or `torch.save(list(model.parameters()), path)`;
- comprehensions over them (`[p.data for p in model.parameters()]`,
  `{n: p.detach() for n, p in model.named_parameters()}`), `dict(...)`/`OrderedDict(...)`;
- a dict or list holding one of these (`{"epoch": e, "weights": list(model.parameters())}`),
  unless the same object also holds a `state_dict()`;
- a local name assigned one of these and saved later in the same function.

Parameter counts (`sum(p.numel() for p in model.parameters())`) and gradients are not
checkpoints and are not reported.

The runtime check reports a `load_state_dict(..., strict=False)` whose missing keys
include BatchNorm buffers (`running_mean`, `running_var`, `num_batches_tracked`), and
a BatchNorm whose first sampled eval-mode forward finds its buffers still at their
initial values (mean 0, variance 1, `num_batches_tracked == 0`) while its affine
parameters have moved from 1/0 (this reads values, once per module).

## Why is this bad?
BatchNorm's `running_mean`, `running_var` and `num_batches_tracked` are buffers, not
parameters. A checkpoint of the parameters restores trained weights next to running
statistics at their initial values (mean 0, variance 1), so the model looks fine in
training mode and produces garbage in eval mode (`torch/nn#1165`,
`eladhoffer/ImageNet-Training#23`, `NVIDIA/DIGITS#496`).

## Example
```python
torch.save([p.data for p in model.parameters()], "weights.pt")
```

## Use instead
```python
torch.save(model.state_dict(), "weights.pt")
...
missing, unexpected = model.load_state_dict(torch.load("weights.pt"))
```

## Fix safety
There is no autofix: the loading side has to change with the saving side.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import Event, RunningStatsSample, StateDictLoaded
from bnlint.finding import Severity
from bnlint.index.names import dotted_name, import_aliases, resolve
from bnlint.rule import Invalid, Rule, RuleContext, RuntimeReport, cst

PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
CONTAINERS = frozenset({"list", "tuple", "dict", "OrderedDict", "collections.OrderedDict"})
SAVE_FUNCTIONS = frozenset({"torch.save"})
# Attributes that turn a parameter into something that is not a checkpoint of it.
NOT_WEIGHTS = frozenset({"grad", "numel", "shape", "size", "requires_grad", "dtype", "device"})


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _root_and_attributes(node: cst.BaseExpression) -> tuple[str | None, set[str]]:
    """`p.data.cpu().clone()` → ("p", {"data", "cpu", "clone"})."""
    attributes: set[str] = set()
    while True:
        if isinstance(node, cst.Call):
            node = node.func
        elif isinstance(node, cst.Attribute):
            attributes.add(node.attr.value)
            node = node.value
        elif isinstance(node, cst.Name):
            return node.value, attributes
        else:
            return None, attributes


def _targets(node: cst.BaseAssignTargetExpression) -> set[str]:
    if isinstance(node, cst.Name):
        return {node.value}
    if isinstance(node, cst.Tuple | cst.List):
        return {t for element in node.elements for t in _targets(element.value)}  # type: ignore[arg-type]
    return set()


def _weight_targets(node: cst.BaseAssignTargetExpression) -> set[str]:
    """The loop names bound to the tensor: `p` in `for p in ...` and in
    `for name, p in model.named_parameters()`."""
    if isinstance(node, cst.Tuple | cst.List) and node.elements:
        return _targets(node.elements[-1].value)  # type: ignore[arg-type]
    return _targets(node)


def _is_a_weight(element: cst.BaseExpression, loop_names: set[str]) -> bool:
    if isinstance(element, cst.Tuple) and element.elements:  # (name, p.detach()) pairs
        element = element.elements[-1].value
    root, attributes = _root_and_attributes(element)
    return root in loop_names and not attributes & NOT_WEIGHTS


def _holds_state_dict(node: cst.CSTNode) -> bool:
    stack = [node]
    while stack:
        current = stack.pop()
        if (
            isinstance(current, cst.Call)
            and isinstance(current.func, cst.Attribute)
            and current.func.attr.value in ("state_dict", "buffers", "named_buffers")
        ):
            return True
        stack.extend(current.children)
    return False


class RunningStatsNotLoaded(Rule):
    code = "BN017"
    name = "running-stats-not-loaded"
    severity = Severity.WARNING
    triggers = ("parameters(",)
    # Only `torch.save` calls are checked: a `save(` call, or `save` imported under an alias.
    trigger_pattern = r"\bsave\s*\(|import[^\n]*\bsave\b"
    engines = ("static", "runtime")
    runtime_events = (RunningStatsSample, StateDictLoaded)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if isinstance(event, StateDictLoaded) and event.missing_running_keys:
            keys = event.missing_running_keys
            shown = ", ".join(f"`{key}`" for key in keys[:3])
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            yield RuntimeReport(
                message=f"`load_state_dict` into {event.module_class} left BatchNorm buffers "
                f"{shown}{more} missing: those layers keep their initial running statistics",
                suggestion="save and load the full `state_dict()`; check the key prefixes "
                "and the returned `missing_keys`",
                subject="load:" + ",".join(keys),
                at="site" if event.site is not None else "call",
                site=event.site,
            )
        elif (
            isinstance(event, RunningStatsSample)
            and event.at_initial_values
            and event.affine_trained
            and not event.call.training
        ):
            module = event.call.module
            yield RuntimeReport(
                message=f"`{module.path}` ({module.class_name}) runs in eval mode with its "
                "running statistics at their initial values (mean 0, variance 1, no batch "
                "tracked) while its weights are trained: the statistics were never "
                "learned or never loaded",
                suggestion="save and load `state_dict()` (buffers included), or re-estimate "
                "the statistics with `torch.optim.swa_utils.update_bn`",
                subject=module.path,
            )

    VALID = (
        "import torch\ntorch.save(model.state_dict(), 'm.pt')\n",
        "import torch\nn = sum(p.numel() for p in model.parameters())\ntorch.save(n, 'n.pt')\n",
        "import torch\ntorch.save({'model': model.state_dict(), "
        "'params': list(model.parameters())}, 'c.pt')\n",
        "import torch\ntorch.save([p.grad for p in model.parameters()], 'grads.pt')\n",
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
        "import torch\ntorch.save([n for n, p in model.named_parameters()], 'names.pt')\n",
    )
    INVALID = (
        Invalid("import torch\ntorch.save(model.parameters(), 'w.pt')\n"),
        Invalid("from torch import save\nsave(tuple(model.parameters()), 'w.pt')\n"),
        Invalid("import torch\ntorch.save(list(net.parameters()), 'w.pt')\n"),
        Invalid(
            "import torch\ntorch.save({n: p.detach().cpu() for n, p in "
            "model.named_parameters()}, 'w.pt')\n"
        ),
        Invalid(
            "import torch\ndef save(model):\n    weights = [p.data for p in model.parameters()]\n"
            "    torch.save({'epoch': 3, 'weights': weights}, 'ckpt.pt')\n"
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.aliases: dict[str, str] = {}
        # Per function: local names assigned a parameters-only object → its source.
        self.stored: list[dict[str, str]] = [{}]

    def visit_Module(self, node: cst.Module) -> None:
        self.aliases = import_aliases(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.stored.append({})

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.stored.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        source = self._parameters_only(node.value)
        for target in node.targets:
            for name in _targets(target.target):
                if source is not None and len(node.targets) == 1:
                    self.stored[-1][name] = source
                else:
                    self.stored[-1].pop(name, None)

    def visit_Call(self, node: cst.Call) -> None:
        if resolve(node.func, self.aliases) not in SAVE_FUNCTIONS or not node.args:
            return
        saved = node.args[0].value
        source = self._parameters_only(saved)
        if source is None or _holds_state_dict(saved):
            return
        self.report(
            node,
            message=(
                f"this checkpoint is built from `{source}`: BatchNorm running_mean/"
                "running_var are buffers, not parameters, so a model restored from it "
                "evaluates with mean 0 / variance 1"
            ),
            suggestion=(
                f"save `{source.rsplit('.', 1)[0]}.state_dict()` instead, and restore it "
                "with `load_state_dict` (check the missing keys it returns)"
            ),
        )

    def _parameters_only(self, node: cst.BaseExpression) -> str | None:
        """The `x.parameters()` call an object is made of, when it holds parameters and
        nothing that carries buffers; None otherwise."""
        if isinstance(node, cst.Name):
            return self.stored[-1].get(node.value)
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in PARAMETER_METHODS:
                return f"{_code(func.value)}.{func.attr.value}()"
            callee = dotted_name(func)
            if callee in CONTAINERS and node.args:
                return self._parameters_only(node.args[0].value)
            return None
        if isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp | cst.DictComp):
            loop = node.for_in
            source = self._parameters_only(loop.iter)
            element = node.value if isinstance(node, cst.DictComp) else node.elt
            if source is not None and _is_a_weight(element, _weight_targets(loop.target)):
                return source
            return None
        if isinstance(node, cst.Dict):
            for entry in node.elements:
                if isinstance(entry, cst.DictElement):
                    found = self._parameters_only(entry.value)
                    if found is not None:
                        return found
            return None
        if isinstance(node, cst.List | cst.Tuple):
            for item in node.elements:
                found = self._parameters_only(item.value)
                if found is not None:
                    return found
        return None
