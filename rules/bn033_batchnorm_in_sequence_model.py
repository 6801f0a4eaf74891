"""BatchNorm1d inside a recurrent or attention block, where padded sequences enter its statistics.

## What it does
Reads each class of a file and reports a torch `nn.BatchNorm1d`/`nn.LazyBatchNorm1d`
that the class builds (as `self.<attr>`, possibly inside an `nn.Sequential` or a wrapper
such as DeepSpeech's `SequenceWise(nn.BatchNorm1d(...))`) and calls, when the same class
also builds and calls a sequence layer: `nn.LSTM`/`nn.GRU`/`nn.RNN`,
`nn.MultiheadAttention`, `nn.Transformer`, `nn.TransformerEncoder(Layer)`/
`nn.TransformerDecoder(Layer)` (batch-first or not). An `nn.Embedding`, even with a
`padding_idx`, does not count on its own: recommender and tabular models embed one id
per sample and normalise those vectors correctly.

It stays silent when every call of the BatchNorm receives a value with the time axis
already reduced (`out[:, -1]`, `h_n[-1]`, `x[:, 0]`, `out.mean(dim=1)`, `.max(...)`, a
`torch.cat` of such values, a layer or activation applied to one, directly or through a
local name assigned from one), and for classes that also build an `nn.Conv1d`:
convolutional front ends and Conformer-style convolution modules normalise convolution
channels with BatchNorm by design.

Default off, severity info: this is advice. Fixed-length inputs (no padding) and models
trained with large, length-bucketed batches can use BatchNorm here without harm.

## Why is this bad?
A BatchNorm in a sequence model computes its statistics over every time step of every
sequence in the batch. Padding enters them (the mean is pulled towards the pad value,
the variance shrinks, the scale grows), they shift with the lengths in the batch, and
eval with running statistics then sees another distribution than training
(`pytorch/pytorch#70529`, `SeanNaren/deepspeech.pytorch#312`). In Transformers, batch
statistics of token activations fluctuate strongly, and BatchNorm loses to LayerNorm
(Shen et al., PowerNorm, ICML 2020) (P19).

## Example
```python
class BatchRNN(nn.Module):
    def __init__(self, size, hidden):
        super().__init__()
        self.bn = nn.BatchNorm1d(size)
        self.rnn = nn.LSTM(size, hidden, batch_first=True)

    def forward(self, x, lengths):
        x = self.bn(x.transpose(1, 2)).transpose(1, 2)
        x = pack_padded_sequence(x, lengths, batch_first=True)
        return self.rnn(x)
```

## Use instead
```python
        self.norm = nn.LayerNorm(size)      # per position, no batch statistics
        ...
        x = self.norm(x)
```
Or keep BatchNorm but compute its statistics on the real positions only (a masked
BatchNorm, or BatchNorm over the packed data).

## Fix safety
No automatic fix: the choice of normalisation is a modelling decision, and it changes
the checkpoint's keys.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping

from bnlint.finding import Severity
from bnlint.index.ast_names import resolve
from bnlint.index.sequence_layers import (
    BATCHNORM1D,
    SEQUENCE_LAYERS,
    Layer,
    class_layers,
    method_statements,
    self_attribute,
    torch_nn_class,
)
from bnlint.rule import Invalid, Rule

# Methods and functions that reduce over an axis: the time axis is gone.
_REDUCTIONS = frozenset(
    {"mean", "sum", "max", "min", "amax", "amin", "logsumexp", "norm", "nanmean"}
)


def _methods(node: ast.ClassDef) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            yield statement


def _batchnorms(node: ast.ClassDef, aliases: Mapping[str, str]) -> dict[str, ast.Call]:
    """`self.<attr>` → the first BatchNorm1d constructor in the value assigned to it
    (directly, in an `nn.Sequential`, or wrapped in another call)."""
    found: dict[str, ast.Call] = {}
    for method in _methods(node):
        for statement in method_statements(method.body):
            if not isinstance(statement, ast.Assign):
                continue
            for target in statement.targets:
                attribute = self_attribute(target)
                if attribute is None or attribute in found:
                    continue
                for inner in ast.walk(statement.value):
                    if (
                        isinstance(inner, ast.Call)
                        and torch_nn_class(resolve(inner.func, aliases)) in BATCHNORM1D
                    ):
                        found[attribute] = inner
                        break
    return found


def _builds_conv1d(node: ast.ClassDef, aliases: Mapping[str, str]) -> bool:
    return any(
        isinstance(inner, ast.Call) and torch_nn_class(resolve(inner.func, aliases)) == "Conv1d"
        for inner in ast.walk(node)
    )


class _Calls:
    """Each `self.<attr>(...)` call in the class's methods, with its first argument
    and the method's earlier assignments (to see through `pooled = x.mean(1)`)."""

    def __init__(self, node: ast.ClassDef, aliases: Mapping[str, str]) -> None:
        self.aliases = aliases
        self.arguments: dict[str, list[ast.expr | None]] = {}
        self.bindings: dict[int, dict[str, ast.expr]] = {}
        for method in _methods(node):
            assigned: dict[str, ast.expr] = {}
            for statement in method_statements(method.body):
                for inner in _own_nodes(statement):
                    if isinstance(inner, ast.Call):
                        attribute = self_attribute(inner.func)
                        if attribute is not None:
                            first = inner.args[0] if inner.args else None
                            self.arguments.setdefault(attribute, []).append(first)
                            if first is not None:
                                self.bindings[id(first)] = dict(assigned)
                if isinstance(statement, ast.Assign):
                    for target in statement.targets:
                        if isinstance(target, ast.Name):
                            assigned[target.id] = statement.value

    def called(self, attribute: str) -> bool:
        return attribute in self.arguments

    def only_reduced(self, attribute: str) -> bool:
        """Every call of the attribute receives a value without a time axis."""
        return all(
            argument is not None and self._reduced(argument, self.bindings.get(id(argument), {}), 0)
            for argument in self.arguments.get(attribute, [])
        )

    def _reduced(self, node: ast.expr, assigned: Mapping[str, ast.expr], depth: int) -> bool:
        """`node` is a time step or a reduction over time (`out[:, -1]`, `h_n[-1]`,
        `x.mean(dim=1)`, `torch.max(x, 1)[0]`), a layer, activation or concatenation of
        such values, or a name assigned one of these."""
        if depth > _DEPTH:
            return False
        deeper = depth + 1
        if isinstance(node, ast.Name):
            bound = assigned.get(node.id)
            return bound is not None and self._reduced(bound, assigned, deeper)
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, ast.Call) and self_attribute(node.value.func) is not None:
                return False  # `self.lstm(x)[0]` picks the output out of a tuple
            index = node.slice
            parts = index.elts if isinstance(index, ast.Tuple) else [index]
            if any(not isinstance(part, ast.Slice) for part in parts):
                return True  # an integer index drops an axis
            return self._reduced(node.value, assigned, deeper)
        if isinstance(node, ast.Attribute) and node.attr in ("values", "indices"):
            return self._reduced(node.value, assigned, deeper)
        if isinstance(node, ast.BinOp):
            return self._reduced(node.left, assigned, deeper) or self._reduced(
                node.right, assigned, deeper
            )
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        method = func.attr if isinstance(func, ast.Attribute) else None
        first = node.args[0] if node.args else None
        if method in ("cat", "concat") and isinstance(first, ast.List | ast.Tuple):
            return bool(first.elts) and all(
                self._reduced(piece, assigned, deeper) for piece in first.elts
            )
        if method in _REDUCTIONS and (node.args or node.keywords):
            return True
        # A layer (`self.fc(pooled)`) or an imported function (`F.relu(pooled)`) of a
        # reduced value adds no time axis back.
        known = self_attribute(func) is not None or resolve(func, self.aliases) is not None
        return known and first is not None and self._reduced(first, assigned, deeper)


_DEPTH = 6


def _own_nodes(statement: ast.stmt) -> Iterator[ast.AST]:
    """The nodes of a statement outside the blocks it holds (`if` bodies ...), which
    `method_statements` yields on their own."""
    for name, value in ast.iter_fields(statement):
        if name in ("body", "orelse", "finalbody", "handlers"):
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield from ast.walk(child)


class BatchnormInSequenceModel(Rule):
    code = "BN033"
    name = "batchnorm-in-sequence-model"
    severity = Severity.INFO
    default_enabled = False
    syntax = "ast"
    triggers = ("BatchNorm1d",)
    trigger_pattern = (
        r"\b(?:LSTM|GRU|RNN|MultiheadAttention|Transformer(?:Encoder|Decoder)?(?:Layer)?)"
        r"\b\s*[(.,]"
    )

    VALID = (
        "import torch.nn as nn\n"
        "class Classifier(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.gru = nn.GRU(32, 64, batch_first=True)\n"
        "        self.bn = nn.BatchNorm1d(64)\n"
        "    def forward(self, x):\n"
        "        out, _ = self.gru(x)\n"
        "        return self.bn(out[:, -1])\n",
        "import torch.nn as nn\n"
        "class ConvModule(nn.Module):\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n"
        "        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)\n"
        "        self.depthwise = nn.Conv1d(d, d, 31, groups=d, padding=15)\n"
        "        self.bn = nn.BatchNorm1d(d)\n"
        "    def forward(self, x):\n"
        "        x = x + self.attn(x, x, x)[0]\n"
        "        return self.bn(self.depthwise(x.transpose(1, 2))).transpose(1, 2)\n",
        "import torch.nn as nn\n"
        "class Mlp(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.bn = nn.BatchNorm1d(64)\n"
        "    def forward(self, x):\n"
        "        return self.bn(x)\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\n"
            "class BatchRNN(nn.Module):\n"
            "    def __init__(self, size, hidden):\n"
            "        super().__init__()\n"
            "        self.bn = nn.BatchNorm1d(size)\n"
            "        self.rnn = nn.LSTM(size, hidden, batch_first=True)\n"
            "    def forward(self, x):\n"
            "        x = self.bn(x.transpose(1, 2)).transpose(1, 2)\n"
            "        return self.rnn(x)\n"
        ),
        Invalid(
            "import torch.nn as nn\n"
            "class Block(nn.Module):\n"
            "    def __init__(self, d):\n"
            "        super().__init__()\n"
            "        self.attn = nn.MultiheadAttention(d, 4)\n"
            "        self.norm = nn.Sequential(nn.BatchNorm1d(d))\n"
            "    def forward(self, x):\n"
            "        n, b, c = x.shape\n"
            "        x = x + self.attn(x, x, x)[0]\n"
            "        return self.norm(x.reshape(n * b, c)).reshape(n, b, c)\n"
        ),
    )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        batchnorms = _batchnorms(node, self.aliases)
        if not batchnorms:
            return
        calls = _Calls(node, self.aliases)
        sequence_layers = [
            (attribute, layer)
            for attribute, layer in class_layers(node, self.aliases).items()
            if layer.kind in SEQUENCE_LAYERS and calls.called(attribute)
        ]
        if not sequence_layers or _builds_conv1d(node, self.aliases):
            return
        for attribute, constructor in batchnorms.items():
            if calls.called(attribute) and not calls.only_reduced(attribute):
                self._report(attribute, constructor, sequence_layers)

    def _report(
        self, attribute: str, constructor: ast.Call, sequence_layers: list[tuple[str, Layer]]
    ) -> None:
        named = ", ".join(
            f"`self.{name}` ({layer.described}, line {layer.call.lineno})"
            for name, layer in sequence_layers[:2]
        )
        kind = torch_nn_class(resolve(constructor.func, self.aliases)) or "BatchNorm1d"
        features = ast.unparse(constructor.args[0]) if constructor.args else "<features>"
        self.report(
            constructor,
            message=(
                f"`self.{attribute}` ({kind}) normalises inside a sequence model: this class "
                f"also holds {named}. Its batch statistics mix every position of every "
                "sequence, padding included, and shift with the lengths in each batch, so "
                "eval with running statistics sees another distribution than training"
            ),
            suggestion=(
                f"build `nn.LayerNorm({features})` here instead (per position, no batch "
                "statistics); if BatchNorm stays, keep padded positions out of its "
                "statistics (a masked BatchNorm, or normalise the packed data)"
            ),
        )
