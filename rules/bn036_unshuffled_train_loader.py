"""A training `DataLoader` without `shuffle=True` or a sampler.

## What it does
Checks for a `torch.utils.data.DataLoader` that is clearly for training and neither
shuffles nor takes a `sampler`/`batch_sampler`: `shuffle` is missing (its default is
off) or the literal `False`. "Clearly for training": the loader is assigned to a name
such as `train_loader`/`trainloader`, or its dataset argument names the training split
(`train_set`, `datasets.CIFAR10(root, train=True)`, `split="train"`), and nothing in
either names a validation or test split.

Default off, severity info: the rule does not check that the model holds BatchNorm,
and ordered training (curricula, time series, an `IterableDataset` that shuffles
itself) is legitimate.

## Why is this bad?
Without shuffling, batches follow the dataset's order, which is often sorted by class.
BatchNorm's batch statistics then carry label information: the network learns to
exploit them in training, and evaluation with the population statistics collapses
(`pytorch/vision#7818`, `Deci-AI/super-gradients#416`, `TsingZ0/PFLlib#117`; Wu &
Johnson 2021 on information leakage within a batch).

## Example
```python
train_loader = DataLoader(train_set, batch_size=128, num_workers=4)
```

## Use instead
```python
train_loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=4)
```

## Fix safety
The fix sets `shuffle=True` and is unsafe: it changes the order of training, and a
`DataLoader` over an `IterableDataset` raises with `shuffle=True`.
"""

from __future__ import annotations

import re

from bnlint.finding import Applicability, Severity
from bnlint.index.names import argument, dotted_name, import_aliases, resolve
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuleContext, cst

DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
TRAINING = re.compile(r"train", re.IGNORECASE)
NOT_TRAINING = re.compile(
    r"val|test|eval|infer|predict|calib|train\s*=\s*False|untrain", re.IGNORECASE
)
SHUFFLE_POSITION, SAMPLER_POSITION, BATCH_SAMPLER_POSITION = 2, 3, 4


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


class UnshuffledTrainLoader(Rule):
    code = "BN036"
    name = "unshuffled-train-loader"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("DataLoader",)
    autofix = "unsafe"

    VALID = (
        "from torch.utils.data import DataLoader\n"
        "train_loader = DataLoader(train_set, batch_size=8, shuffle=True)\n",
        "from torch.utils.data import DataLoader\nval_loader = DataLoader(val_set, batch_size=8)\n",
        "from torch.utils.data import DataLoader\n"
        "train_loader = DataLoader(train_set, batch_size=8, sampler=sampler)\n",
        "from torch.utils.data import DataLoader\nloader = DataLoader(dataset, batch_size=8)\n",
    )
    INVALID = (
        Invalid(
            "from torch.utils.data import DataLoader\n"
            "train_loader = DataLoader(train_set, batch_size=8)\n",
            fixed="from torch.utils.data import DataLoader\n"
            "train_loader = DataLoader(train_set, batch_size=8, shuffle=True)\n",
        ),
        Invalid(
            "import torch\nloader = torch.utils.data.DataLoader(trainset, 64, False)\n",
            fixed="import torch\nloader = torch.utils.data.DataLoader(trainset, 64, True)\n",
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.aliases: dict[str, str] = {}
        self.assigned_to: list[str] = []

    def visit_Module(self, node: cst.Module) -> None:
        self.aliases = import_aliases(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        names = [dotted_name(target.target) or "" for target in node.targets]
        self.assigned_to.append(" ".join(names))

    def leave_Assign(self, original_node: cst.Assign) -> None:
        self.assigned_to.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if resolve(node.func, self.aliases) not in DATALOADERS or not node.args:
            return
        if any(arg.star for arg in node.args):
            return  # **kwargs may carry shuffle or a sampler
        if argument(node, "sampler", SAMPLER_POSITION) or argument(
            node, "batch_sampler", BATCH_SAMPLER_POSITION
        ):
            return
        shuffle = argument(node, "shuffle", SHUFFLE_POSITION)
        if shuffle is not None and not (
            isinstance(shuffle.value, cst.Name) and shuffle.value.value == "False"
        ):
            return
        dataset = _code(node.args[0].value)
        name = self.assigned_to[-1] if self.assigned_to else ""
        evidence = f"{name} {dataset}"
        if not TRAINING.search(evidence) or NOT_TRAINING.search(evidence):
            return
        if shuffle is not None:
            edit = NodeEdit(shuffle.value, "replace", "True")
        else:
            edit = NodeEdit(node.args[-1].value, "after", ", shuffle=True")
        self.report(
            shuffle.value if shuffle is not None else node,
            message=(
                "this training DataLoader does not shuffle: batches follow the dataset's "
                "order, and BatchNorm's batch statistics can leak the (often sorted) labels"
            ),
            suggestion="pass `shuffle=True` (or a sampler) to the training DataLoader",
            fix=PendingFix(Applicability.UNSAFE, "Set `shuffle=True`", (edit,)),
        )
