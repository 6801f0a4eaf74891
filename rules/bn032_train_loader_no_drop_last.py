"""A shuffled training loader for a BatchNorm model that keeps its last, smaller batch.

## What it does
Checks for a `DataLoader(..., shuffle=True)` without `drop_last=True` that feeds a
training loop (one that calls `backward()`) of a model with trainable BatchNorm,
wherever the loader goes (returned by a factory, kept in a dict or on `self`, passed to
project functions or a trainer's constructor, see BN003). Loaders with a `sampler`, a
`batch_sampler` or an unreadable `**kwargs`, loaders only iterated for evaluation, and
models without BN (or with frozen BN) stay silent. Off by default: it is advice. The
last batch hurts only when the dataset size leaves a remainder of one (or a few)
samples, which the code does not say; on well-known training repositories every
finding was harmless (MNIST with batches of 64 leaves 32), so it stays opt-in.

## Why is this bad?
Unless the dataset size is a multiple of the batch size, every epoch ends with a
smaller batch. BatchNorm normalises that batch with statistics from a few samples, so
its gradient step is noisy and its running-statistics update is skewed; when the
remainder is one sample (per rank, with DistributedSampler), training with
BatchNorm1d or BN after global pooling crashes ("Expected more than 1 value per
channel when training") in the middle of a run (P08).

## Example
```python
train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
for images, labels in train_loader:
    criterion(model(images), labels).backward()
```

## Use instead
```python
train_loader = DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True)
```

## Fix safety
The fix adds `drop_last=True` (or turns `drop_last=False` into `True`) and is safe for
a loader that is clearly for training, as reported here: shuffled and iterated by a
loop that calls `backward()`. Each epoch then skips at most `batch_size - 1` shuffled
samples, a different few every epoch.
"""

from __future__ import annotations

from typing import Any

from bnlint.finding import Applicability, Severity
from bnlint.index.loaders import display_name, file_loaders
from bnlint.index.locate import node_at
from bnlint.index.modes import trained_bn_model, training_loops
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, cst

Json = dict[str, Any]


class TrainLoaderNoDropLast(Rule):
    code = "BN032"
    name = "train-loader-no-drop-last"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("DataLoader",)
    trigger_pattern = r"shuffle\s*=\s*True"
    needs_index = True
    autofix = "safe"

    VALID = (
        "from torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "loader = DataLoader(ds, batch_size=32, shuffle=True, drop_last=True)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
        "from torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "loader = DataLoader(ds, batch_size=32, shuffle=True)\n"
        "model.eval()\nfor x, y in loader:\n    print(model(x).argmax(1))\n",
    )
    INVALID = (
        Invalid(
            "from torch.utils.data import DataLoader\nimport torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "loader = DataLoader(ds, batch_size=32, shuffle=True)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n",
            fixed="from torch.utils.data import DataLoader\nimport torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "loader = DataLoader(ds, batch_size=32, shuffle=True, drop_last=True)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n",
        ),
        Invalid(
            "from torch.utils.data import DataLoader\nimport torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "loader = DataLoader(ds, 32, shuffle=True, drop_last=False)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n",
            fixed="from torch.utils.data import DataLoader\nimport torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "loader = DataLoader(ds, 32, shuffle=True, drop_last=True)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n",
        ),
    )

    def check_module(self) -> None:
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        path = self.context.path
        for function, facts, key, loader in file_loaders(index, path):
            if not _keeps_last_batch_while_shuffling(loader):
                continue
            for loop_path, loop_function, loop_facts, loop in training_loops(
                index, path, function, facts, key
            ):
                model = trained_bn_model(index, loop_path, loop_function, loop_facts, loop)
                if model is not None:
                    self._report(loader, display_name(key, function), model)
                    break

    def _report(self, loader: Json, key: str, model: str) -> None:
        call = node_at(self.context.module, loader["pos"], cst.Call)
        if not isinstance(call, cst.Call) or not call.args:
            return
        self.report(
            call,
            message=(
                f"{key} shuffles the training data of `{model}` but keeps each epoch's "
                "last, smaller batch: BatchNorm trains on its few-sample statistics"
            ),
            suggestion=f"pass `drop_last=True` to the DataLoader of {key}",
            # With `**kwargs` the keyword may also be in the dict: no automatic edit.
            fix=None
            if any(arg.star == "**" for arg in call.args)
            else PendingFix(Applicability.SAFE, "Pass `drop_last=True`", (_drop_last(call),)),
        )


def _keeps_last_batch_while_shuffling(loader: Json) -> bool:
    return (
        loader.get("shuffle") is True
        and loader.get("drop_last") is not True
        and not loader.get("sampler")
        and not loader.get("opaque")
    )


def _drop_last(call: cst.Call) -> NodeEdit:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "drop_last":
            return NodeEdit(arg.value, "replace", "True")
    return NodeEdit(call.args[-1].value, "after", ", drop_last=True")
