"""Gradient accumulation over small micro-batches of a BatchNorm model.

## What it does
Checks for a training loop that calls `backward()` every iteration but steps the
optimizer only every k iterations, behind a modulo counter:

- `if (i + 1) % accum_steps == 0: optimizer.step()` (also `scaler.step(optimizer)`), or
- `if (i + 1) % accum_steps != 0: continue` followed by `optimizer.step()`,

where the loop iterates a `DataLoader` whose batch size (the micro-batch) is known
statically and is at most `small-batch-threshold` (8 by default), and runs a model with
trainable BatchNorm. The batch size may be a literal, a module constant, a function
parameter's default or an argparse option's default. Off by default: it is advice.

Silent: unknown or larger micro-batches; an accumulation count known to be 1 (a
literal, a module constant or an argparse default); loops that zero the gradients
every iteration (no accumulation); models without BN or with frozen BN. An
accumulation count that cannot be resolved (a config value) still counts: the loop is
written for accumulation.

## Why is this bad?
Accumulation enlarges the batch the optimizer sees, but BatchNorm still normalises
each micro-batch by itself and updates its running statistics once per micro-batch:
the small-batch problems of P07 stay, whatever the effective batch size (P24;
`ultralytics/yolov5#1630`, mmcv's `GradientCumulativeOptimizerHook` warns about it).

## Example
```python
train_loader = DataLoader(train_set, batch_size=4, shuffle=True)
for i, (x, y) in enumerate(train_loader):
    (criterion(model(x), y) / accum_steps).backward()
    if (i + 1) % accum_steps == 0:
        optimizer.step()
        optimizer.zero_grad()
```

## Use instead
```python
# a micro-batch large enough for BatchNorm, or a normalisation without batch statistics
model = build_model(norm_layer=lambda c: nn.GroupNorm(32, c))
```

## Fix safety
No automatic fix: a larger micro-batch needs memory, and GroupNorm, LayerNorm or a
frozen BN backbone change the model.

## Options
- `small-batch-threshold` (default 8): micro-batches up to this size are reported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

from bnlint.finding import Severity
from bnlint.index.locate import ast_node_at
from bnlint.index.modes import (
    SmallTrainingLoader,
    small_batch_threshold,
    small_training_loaders,
)
from bnlint.index.project import ProjectIndex
from bnlint.rule import Invalid, Rule

Json = dict[str, Any]

# A receiver that names an optimizer: `optimizer`, `opt`, `self.optim_g`, `optimizer_d`.
_OPTIMIZER = re.compile(r"(^|_)optim|^opt(_|\d|$)", re.IGNORECASE)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


class AccumulationSmallBatch(Rule):
    code = "BN031"
    name = "accumulation-small-batch"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("DataLoader",)
    trigger_pattern = r"%\s*\(?[\w.]+\)?\s*(?:[!=]=|:)"
    needs_index = True
    syntax = "ast"

    VALID = (
        "from torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "loader = DataLoader(ds, batch_size=64)\n"
        "for i, (x, y) in enumerate(loader):\n    model(x).sum().backward()\n"
        "    if (i + 1) % 4 == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n",
        "from torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "loader = DataLoader(ds, batch_size=4)\n"
        "for i, (x, y) in enumerate(loader):\n    optimizer.zero_grad()\n"
        "    model(x).sum().backward()\n    optimizer.step()\n"
        "    if i % 100 == 0:\n        scheduler.step()\n",
    )
    INVALID = (
        Invalid(
            "from torch.utils.data import DataLoader\nimport torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "loader = DataLoader(ds, batch_size=4)\n"
            "for i, (x, y) in enumerate(loader):\n    model(x).sum().backward()\n"
            "    if (i + 1) % 4 == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n"
        ),
    )

    def check_module(self) -> None:
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        path = self.context.path
        threshold = small_batch_threshold(self.context.options)
        for found in small_training_loaders(index, path, threshold):
            if found.loop_path != path:
                continue  # the loop is another file's; that file is where it reads
            loop = ast_node_at(
                self.context.tree, self.context.source, found.loop["pos"], (ast.stmt,)
            )
            if not isinstance(loop, ast.For | ast.AsyncFor | ast.While):
                continue
            guard = accumulation_guard(loop)
            if guard is None or accumulates_once(index, path, guard):
                continue
            self._report(found, guard)

    def _report(self, found: SmallTrainingLoader, guard: ast.If) -> None:
        right = modulus(guard)
        every = f"`{ast.unparse(right)}`" if right is not None else "k"
        self.report(
            guard.test,
            message=(
                f"gradient accumulation over micro-batches of {found.size} from "
                f"`{found.key}` (line {found.line}): the optimizer steps every {every} "
                f"iterations, but BatchNorm in `{found.model}` still normalises and "
                f"updates its running statistics on each batch of {found.size}"
            ),
            suggestion=(
                f"raise `batch_size` of `{found.key}` on line {found.line} to more than "
                f"{small_batch_threshold(self.context.options)}, or use GroupNorm/LayerNorm "
                "or a frozen BatchNorm backbone; accumulation does not enlarge BN's batch"
            ),
        )


def accumulation_guard(loop: ast.For | ast.AsyncFor | ast.While) -> ast.If | None:
    """The `if <counter> % <k> ...` of a loop that accumulates gradients: it guards the
    optimizer step (or skips to the next iteration before it), while `backward()` runs
    every iteration and the gradients are zeroed only with the step."""
    guards = [node for node in _inner_nodes(loop.body) if isinstance(node, ast.If)]
    guards = [guard for guard in guards if _is_modulo_guard(guard)]
    in_any_guard = {id(node) for guard in guards for node in _inner_nodes(guard.body)}
    steps = [call for call in _calls(loop.body, "step") if _steps_optimizer(call)]
    zeroing = _calls(loop.body, "zero_grad")
    for guard in guards:
        gate = _Gate(guard)
        every_iteration = [call for call in _calls(loop.body, "backward") if not gate.holds(call)]
        if not steps or not every_iteration or not all(map(gate.holds, steps)):
            continue
        if all(gate.holds(call) or id(call) in in_any_guard for call in zeroing):
            return guard  # else: gradients cleared every iteration, nothing accumulates
    return None


class _Gate:
    """Which calls a modulo guard holds back: those in its body, or, for
    `if ...: continue`, those after it in the loop."""

    def __init__(self, guard: ast.If) -> None:
        self.inside = {id(node) for node in _inner_nodes(guard.body)}
        self.after = (guard.end_lineno or guard.lineno) if _skips_rest(guard) else None

    def holds(self, call: ast.Call) -> bool:
        return id(call) in self.inside or (self.after is not None and call.lineno > self.after)


def modulus(guard: ast.If) -> ast.expr | None:
    """`k` in the guard's `<counter> % k`."""
    for node in ast.walk(guard.test):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            return node.right
    return None


def accumulates_once(index: ProjectIndex, path: str, guard: ast.If) -> bool:
    """The modulo's right operand is known to be 1 (or 0): no accumulation."""
    right = modulus(guard)
    value = None if right is None else _known_int(index, path, right)
    return value is not None and value <= 1


def _known_int(index: ProjectIndex, path: str, node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, int) else None
    summary = index.summaries.get(path)
    if isinstance(node, ast.Name) and summary is not None:
        alias = summary.aliases.get(node.id)
        constant = alias.get("const") if isinstance(alias, dict) else None
        return constant if isinstance(constant, int) and not isinstance(constant, bool) else None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        for _, facts in index.functions(path):
            default = facts.get("argparse", {}).get(node.attr)
            if isinstance(default, int) and not isinstance(default, bool):
                return default
    return None


def _is_modulo_guard(node: ast.If) -> bool:
    return any(
        isinstance(inner, ast.BinOp)
        and isinstance(inner.op, ast.Mod)
        and not isinstance(inner.left, ast.Constant | ast.JoinedStr)  # "%d" % i
        for inner in ast.walk(node.test)
    )


def _skips_rest(guard: ast.If) -> bool:
    return len(guard.body) == 1 and isinstance(guard.body[0], ast.Continue)


def _steps_optimizer(call: ast.Call) -> bool:
    """`optimizer.step()`, or `scaler.step(optimizer)` (AMP's GradScaler)."""
    assert isinstance(call.func, ast.Attribute)
    names = [_last_name(call.func.value), *(_last_name(arg) for arg in call.args)]
    return any(name is not None and _OPTIMIZER.search(name) for name in names)


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _calls(body: list[ast.stmt], method: str) -> list[ast.Call]:
    return [
        node
        for node in _inner_nodes(body)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
    ]


def _inner_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node under `body`, not entering nested functions, classes or lambdas."""
    todo: list[ast.AST] = list(reversed(body))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, _SCOPES):
            todo.extend(reversed(list(ast.iter_child_nodes(node))))
