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
from typing import Any

from bnlint.finding import Severity
from bnlint.index.locate import ast_node_at
from bnlint.index.modes import (
    DISTRIBUTED,
    SYNC_BATCHNORM,
    small_batch_threshold,
    small_training_loaders,
)
from bnlint.rule import Invalid, Rule

Json = dict[str, Any]


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
            node = ast_node_at(
                self.context.tree, self.context.source, found.loader["pos"], (ast.Call,)
            )
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
