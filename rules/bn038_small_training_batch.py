"""A BatchNorm model trained on small batches (2 to `small-batch-threshold` - 1).

## What it does
Checks for a `DataLoader` whose batch size is known statically and lies between 2 and
`small-batch-threshold - 1` (2 to 7 by default), and that feeds a loop calling
`backward()` on a model with trainable BatchNorm, in the same function or in a
project function the loader is passed to. The batch size may be a literal, a module
constant (`BATCH_SIZE = 4`), a function parameter's default or an argparse option's
default. Off by default: it is advice.

Silent: unknown batch sizes, batches of one (BN003 reports those), loaders only
iterated for evaluation, models without BN or with frozen BN (`FrozenBatchNorm2d`,
`norm_eval`, detection models, a BN-eval pass over the modules), and files that wrap
the model in `DistributedDataParallel` or use SyncBatchNorm (there BN016 speaks, and
SyncBatchNorm normalises over the global batch).

## Why is this bad?
In training mode BatchNorm normalises each channel with the mean and variance of the
current batch. Estimated from 2 to 7 samples these statistics are noisy: the
normalisation itself injects noise into every step, the running statistics used at
eval time come from those noisy estimates, and accuracy drops (Wu & He report
GroupNorm 10.6 % lower error than BN at batch 2 on ImageNet, P07).

## Example
```python
train_loader = DataLoader(train_set, batch_size=4, shuffle=True)
for images, masks in train_loader:
    criterion(model(images), masks).backward()
```

## Use instead
```python
train_loader = DataLoader(train_set, batch_size=32, shuffle=True, drop_last=True)
# or, when memory forbids it: GroupNorm/LayerNorm, or a frozen pretrained BN backbone
```

## Fix safety
No automatic fix: the right batch size depends on memory, and GroupNorm or frozen BN
are alternatives. Gradient accumulation does not help (BN031).

## Options
- `small-batch-threshold` (default 8): batches smaller than this are reported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bnlint.finding import Severity
from bnlint.index.modes import batch_size, trained_bn_model, training_loops
from bnlint.index.project import ProjectIndex, related
from bnlint.index.summary import Positions
from bnlint.rule import Invalid, Rule

Json = dict[str, Any]

THRESHOLD_OPTION = "small-batch-threshold"
DEFAULT_SMALL_BATCH = 8
# SyncBatchNorm in any spelling: the class, `convert_sync_batchnorm`, apex's
# `convert_syncbn_model`, a `--sync-bn` flag, Lightning's `sync_batchnorm=True`.
SYNC_BATCHNORM = re.compile(r"sync[-_]?b(?:atch[-_]?)?n", re.IGNORECASE)
DISTRIBUTED = re.compile(r"DistributedDataParallel|\bDDP\s*\(")


def small_batch_threshold(options: Any) -> int:
    """The `small-batch-threshold` option (BN016, BN031, BN038 share it)."""
    value = options.get(THRESHOLD_OPTION, DEFAULT_SMALL_BATCH)
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_SMALL_BATCH


@dataclass(frozen=True)
class SmallTrainingLoader:
    """A loader of this file with a statically known batch size that feeds a training
    loop of a model with trainable BatchNorm."""

    function: str  # where the loader is created ("<module>" for script code)
    key: str
    loader: Json  # the index's loader facts: pos, batch, ...
    size: int
    loop_path: str
    loop_function: str
    loop: Json
    model: str  # the model's key inside `loop_function`

    @property
    def line(self) -> int:
        return int(self.loader["pos"][0])


def small_training_loaders(
    index: ProjectIndex,
    path: str,
    largest: int,
    smallest: int = 1,
    parameter_defaults: bool = True,
) -> Iterator[SmallTrainingLoader]:
    """Loaders of `path` whose batch size is known and within [smallest, largest], each
    with the first training loop it feeds on a model whose BatchNorm trains.
    `parameter_defaults=False` leaves out batch sizes read from a function parameter's
    default (a caller may pass another value)."""
    for function, facts in index.functions(path):
        for key, loader in facts["loaders"].items():
            batch = loader["batch"]
            if not parameter_defaults and isinstance(batch, dict) and "param" in batch:
                continue
            size = batch_size(index, path, facts, loader)
            if not isinstance(size, int) or isinstance(size, bool):
                continue
            if not smallest <= size <= largest:
                continue
            for loop_path, loop_function, loop_facts, loop in training_loops(
                index, path, function, facts, key
            ):
                model = trained_bn_model(index, loop_path, loop_function, loop_facts, loop)
                if model is None or batchnorm_frozen_in(loop_facts, model):
                    continue
                yield SmallTrainingLoader(
                    function, key, loader, size, loop_path, loop_function, loop, model
                )
                break


def batchnorm_frozen_in(facts: Json, model: str) -> bool:
    """The function puts the model's BN layers in eval (`model.apply(set_bn_eval)`, a
    loop calling `m.eval()` on BN modules) or freezes its parameters somewhere: its BN
    may not train, so the small batch is not known to matter."""
    return any(
        event["k"] in ("bn_eval", "freeze") and event.get("key") and related(event["key"], model)
        for event in facts["events"]
    )


def node_at(tree: ast.Module, source: str, pos: list[int], kind: type[ast.AST]) -> ast.AST | None:
    """The `kind` node of the ast spanning exactly `pos` (an index position)."""
    positions = Positions(source)
    for node in ast.walk(tree):
        if (
            isinstance(node, kind)
            and getattr(node, "lineno", None) == pos[0]
            and positions.of(node) == list(pos)
        ):
            return node
    return None


class SmallTrainingBatch(Rule):
    code = "BN038"
    name = "small-training-batch"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("DataLoader",)
    needs_index = True
    syntax = "ast"

    VALID = (
        "from torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "loader = DataLoader(ds, batch_size=32, shuffle=True)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
        "from torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.vit_b_16()\n"
        "loader = DataLoader(ds, batch_size=4, shuffle=True)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
        "from torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "loader = DataLoader(ds, batch_size=args.batch_size)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
    )
    INVALID = (
        Invalid(
            "from torch.utils.data import DataLoader\nimport torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "loader = DataLoader(ds, batch_size=4, shuffle=True)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n"
        ),
    )

    def check_module(self) -> None:
        if SYNC_BATCHNORM.search(self.context.source) or DISTRIBUTED.search(self.context.source):
            return
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        threshold = small_batch_threshold(self.context.options)
        for found in small_training_loaders(index, self.context.path, threshold - 1, 2):
            node = node_at(self.context.tree, self.context.source, found.loader["pos"], ast.Call)
            if node is None:
                continue
            where = "" if found.loop_function == "<module>" else f" in `{found.loop_function}`"
            self.report(
                node,
                message=(
                    f"`{found.key}` feeds batches of {found.size} to the training loop{where} "
                    f"(line {found.loop['pos'][0]}) of `{found.model}`: BatchNorm normalises "
                    f"with statistics of {found.size} samples, which are noisy and make its "
                    "running statistics unreliable"
                ),
                suggestion=(
                    f"raise `batch_size` of `{found.key}` on line {found.line} to at least "
                    f"{threshold}, or use GroupNorm/LayerNorm, or keep a pretrained "
                    "backbone's BatchNorm frozen"
                ),
            )
