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

import ast
import re

from bnlint.finding import Applicability, Severity
from bnlint.index.ast_names import argument, dotted_name, resolve
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuleContext

DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
TRAINING = re.compile(r"train", re.IGNORECASE)
NOT_TRAINING = re.compile(
    r"val|test|eval|infer|predict|calib|train\s*=\s*False|untrain", re.IGNORECASE
)
SHUFFLE_POSITION, SAMPLER_POSITION, BATCH_SAMPLER_POSITION = 2, 3, 4


class UnshuffledTrainLoader(Rule):
    code = "BN036"
    name = "unshuffled-train-loader"
    severity = Severity.INFO
    default_enabled = False
    triggers = ("DataLoader",)
    syntax = "ast"
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
        self.assigned_to: list[str] = []

    def visit_Assign(self, node: ast.Assign) -> None:
        names = [dotted_name(target) or "" for target in node.targets]
        self.assigned_to.append(" ".join(names))

    def leave_Assign(self, original_node: ast.Assign) -> None:
        self.assigned_to.pop()

    def visit_Call(self, node: ast.Call) -> None:
        if resolve(node.func, self.aliases) not in DATALOADERS:
            return
        if not (node.args or node.keywords):
            return
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(
            keyword.arg is None for keyword in node.keywords
        ):
            return  # *args/**kwargs may carry shuffle or a sampler
        if (
            argument(node, "sampler", SAMPLER_POSITION) is not None
            or argument(node, "batch_sampler", BATCH_SAMPLER_POSITION) is not None
        ):
            return
        shuffle = argument(node, "shuffle", SHUFFLE_POSITION)
        if shuffle is not None and not (
            isinstance(shuffle, ast.Constant) and shuffle.value is False
        ):
            return
        # Without unpacking, positional arguments come first in the source.
        first = node.args[0] if node.args else node.keywords[0].value
        dataset = ast.get_source_segment(self.context.source, first) or ast.unparse(first)
        name = self.assigned_to[-1] if self.assigned_to else ""
        evidence = f"{name} {dataset}"
        if not TRAINING.search(evidence) or NOT_TRAINING.search(evidence):
            return
        self.report(
            shuffle if shuffle is not None else node,
            message=(
                "this training DataLoader does not shuffle: batches follow the dataset's "
                "order, and BatchNorm's batch statistics can leak the (often sorted) labels"
            ),
            suggestion="pass `shuffle=True` (or a sampler) to the training DataLoader",
            fix=self._shuffle(node, shuffle),
        )

    def _shuffle(self, call: ast.Call, shuffle: ast.expr | None) -> PendingFix | None:
        """`shuffle=False` → `True`, or `, shuffle=True` after the last argument."""
        if shuffle is not None:
            edit = NodeEdit(shuffle, "replace", "True")
        elif call.keywords:
            # A keyword node spans `name=(value)`, parentheses included.
            edit = NodeEdit(call.keywords[-1], "after", ", shuffle=True")
        else:
            last = call.args[-1]
            if _closes_parentheses(self.context.source, last, call):
                return None  # `DataLoader((train_set))`: the text would land inside
            edit = NodeEdit(last, "after", ", shuffle=True")
        return PendingFix(Applicability.UNSAFE, "Set `shuffle=True`", (edit,))


def _closes_parentheses(source: str, argument: ast.expr, call: ast.Call) -> bool:
    """Whether a `)` of the argument's own parentheses follows it inside the call."""
    assert argument.end_lineno is not None and argument.end_col_offset is not None
    assert call.end_col_offset is not None
    between = ast.Pass(
        lineno=argument.end_lineno,
        col_offset=argument.end_col_offset,
        end_lineno=call.end_lineno,
        end_col_offset=call.end_col_offset - 1,  # before the call's own `)`
    )
    text = ast.get_source_segment(source, between) or ""
    return ")" in "".join(line.split("#", 1)[0] for line in text.splitlines())
