"""A checkpoint saved from `parameters()`: BatchNorm running statistics are lost.

## What it does
Checks for `torch.save` of an object (its first argument or `obj=`) built from
`<module>.parameters()` or `<module>.named_parameters()` instead of
`<module>.state_dict()`:

- `torch.save(model.parameters(), path)` or `torch.save(list(model.parameters()), path)`;
- comprehensions over them (`[p.data for p in model.parameters()]`,
  `{n: p.detach() for n, p in model.named_parameters()}`), `dict(...)`/`OrderedDict(...)`
  of them;
- a dict or list holding one of these (`{"epoch": e, "weights": list(model.parameters())}`,
  `dict(epoch=e, weights=...)`),
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

import ast
import re
from collections.abc import Iterator
from typing import Any

from bnlint.events import Event, RunningStatsSample, StateDictLoaded
from bnlint.finding import Severity
from bnlint.index.ast_names import argument, dotted_name, resolve
from bnlint.rule import Invalid, Rule, RuleContext, RuntimeReport

PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
CONTAINERS = frozenset({"list", "tuple", "dict", "OrderedDict", "collections.OrderedDict"})
MAPPINGS = frozenset({"dict", "OrderedDict", "collections.OrderedDict"})
SAVE_FUNCTIONS = frozenset({"torch.save"})
# Attributes that turn a parameter into something that is not a checkpoint of it.
NOT_WEIGHTS = frozenset({"grad", "numel", "shape", "size", "requires_grad", "dtype", "device"})
# The lines as Python's parser numbers them: only \r\n, \r and \n end a line.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _unstarred(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Starred) else node


def _root_and_attributes(node: ast.expr) -> tuple[str | None, set[str]]:
    """`p.data.cpu().clone()` → ("p", {"data", "cpu", "clone"})."""
    attributes: set[str] = set()
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            attributes.add(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id, attributes
        else:
            return None, attributes


def _targets(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Tuple | ast.List):
        return {t for element in node.elts for t in _targets(_unstarred(element))}
    return set()


def _weight_targets(node: ast.expr) -> set[str]:
    """The loop names bound to the tensor: `p` in `for p in ...` and in
    `for name, p in model.named_parameters()`."""
    if isinstance(node, ast.Tuple | ast.List) and node.elts:
        return _targets(_unstarred(node.elts[-1]))
    return _targets(node)


def _is_a_weight(element: ast.expr, loop_names: set[str]) -> bool:
    if isinstance(element, ast.Tuple) and element.elts:  # (name, p.detach()) pairs
        element = _unstarred(element.elts[-1])
    root, attributes = _root_and_attributes(element)
    return root in loop_names and not attributes & NOT_WEIGHTS


def _holds_state_dict(node: ast.AST) -> bool:
    return any(
        isinstance(current, ast.Call)
        and isinstance(current.func, ast.Attribute)
        and current.func.attr in ("state_dict", "buffers", "named_buffers")
        for current in ast.walk(node)
    )


def _receiver(source: str, attribute: ast.Attribute) -> str:
    """`model` in `model.parameters`, as written (parenthesised if it was)."""
    value = attribute.value
    lines = _LINE.findall(source)
    first, last = value.lineno, value.end_lineno or value.lineno
    start, end = value.col_offset, value.end_col_offset or 0
    parts = [line.encode("utf-8") for line in lines[first - 1 : last]]
    parts[-1] = parts[-1][:end]
    parts[0] = parts[0][start:]
    written = b"".join(parts).decode("utf-8")
    if (value.lineno, value.col_offset) != (attribute.lineno, attribute.col_offset):
        return f"({written})"
    return written


class RunningStatsNotLoaded(Rule):
    code = "BN017"
    name = "running-stats-not-loaded"
    severity = Severity.WARNING
    triggers = ("parameters(",)
    # Only `torch.save` calls are checked: a `save(` call, or `save` imported under an alias.
    trigger_pattern = r"\bsave\s*\(|import[^\n]*\bsave\b"
    syntax = "ast"
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
        # Per function: local names assigned a parameters-only object → its source.
        self.stored: list[dict[str, str]] = [{}]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stored.append({})

    def leave_FunctionDef(self, original_node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stored.pop()

    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        source = self._parameters_only(node.value)
        for target in node.targets:
            for name in _targets(target):
                if source is not None and len(node.targets) == 1:
                    self.stored[-1][name] = source
                else:
                    self.stored[-1].pop(name, None)

    def visit_Call(self, node: ast.Call) -> None:
        if resolve(node.func, self.aliases) not in SAVE_FUNCTIONS:
            return
        saved = argument(node, "obj", 0)
        if saved is None:
            return
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

    def _parameters_only(self, node: ast.expr) -> str | None:
        """The `x.parameters()` call an object is made of, when it holds parameters and
        nothing that carries buffers; None otherwise."""
        if isinstance(node, ast.Name):
            return self.stored[-1].get(node.id)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in PARAMETER_METHODS:
                return f"{_receiver(self.context.source, func)}.{func.attr}()"
            callee = dotted_name(func)
            if callee not in CONTAINERS:
                return None
            if node.args:
                found = self._parameters_only(node.args[0])
                if found is not None:
                    return found
            if callee in MAPPINGS:  # dict(epoch=e, weights=...) holds what a {...} holds
                for keyword in node.keywords:
                    if keyword.arg is not None:
                        found = self._parameters_only(keyword.value)
                        if found is not None:
                            return found
            return None
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            loop = node.generators[0]
            source = self._parameters_only(loop.iter)
            element = node.value if isinstance(node, ast.DictComp) else node.elt
            if source is not None and _is_a_weight(element, _weight_targets(loop.target)):
                return source
            return None
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is not None:  # not a `**other` entry
                    found = self._parameters_only(value)
                    if found is not None:
                        return found
            return None
        if isinstance(node, ast.List | ast.Tuple):
            for item in node.elts:
                found = self._parameters_only(_unstarred(item))
                if found is not None:
                    return found
        return None
