"""BatchNorm1d applied to a batch-first sequence `(N, L, C)`: it normalises the wrong axis.

## What it does
The static check reads each class of a file. It knows the layers the class builds
(`self.x = nn.Layer(...)`, in `__init__` or another method) and follows the values of
every method of the class, statement by statement. It reports a torch
`nn.BatchNorm1d`/`nn.LazyBatchNorm1d` attribute (or an `nn.Sequential` in which only
shape-keeping layers come before one) applied to a value that is, for certain, a
sequence with its features last, produced in the same class:

- the first output of an `nn.LSTM`/`nn.GRU`/`nn.RNN` built with `batch_first=True`
  (`out, _ = self.lstm(x)`, `out = self.lstm(x)[0]`);
- the output of an `nn.MultiheadAttention(..., batch_first=True)` (first element);
- the output of an `nn.Transformer(..., batch_first=True)`, of an
  `nn.TransformerEncoderLayer`/`TransformerDecoderLayer(..., batch_first=True)`, or of
  an `nn.TransformerEncoder`/`TransformerDecoder` built from such a layer;
- the output of an `nn.Embedding` whose input is named for a sequence of token ids
  (`tokens`, `input_ids`, `token_ids`, `words`, `sentences`, `text`, `seq`,
  `captions` ...): its features are the last dimension, whichever of the first two is
  the batch. An embedding of one id per sample (`self.user_emb(user)`, a decoder's
  `self.embed(token)`, a graph's `self.emb(src)`) is `(N, C)`, where BatchNorm1d is
  right, and neither a `padding_idx` nor the layer's name tells the two apart, so any
  other embedding input is left alone.

The value may pass through shape-keeping steps on the way: Dropout, activations,
`LayerNorm`, `Linear` (it maps the last dimension), an `nn.Sequential` of these,
`+ - * /` with anything (a positional embedding, a mask), `torch.cat(..., dim=-1)` of
such values, `.contiguous()`, `.masked_fill(...)`, `.to(...)`, and a misapplied
BatchNorm1d itself (its output has the same shape: the next one is reported too). Any
other step makes the layout unknown and the check silent: `.transpose(1, 2)`/
`.permute(0, 2, 1)`/`.mT` (the correct use), `.view(-1, C)`/`.reshape(B * L, C)`/
`.flatten(0, 1)` (also correct, 2-D), `x[:, -1]` (the last step), `x.mean(dim=1)`
(pooling), an unknown module or function. A value that may come from two places (an
`if`, a loop) is followed only when both agree. A `batch_first=False` RNN/attention
(time-first `(L, N, C)`) is not reported.

The runtime check looks at every 3-D input of a BatchNorm and at the module that ran
just before it. It reports when that producer writes its features to the *last*
dimension (a `Linear`, an `Embedding`, a `batch_first` RNN/LSTM/GRU, a `LayerNorm`,
a `MultiheadAttention`), the last dimension of the input equals the BatchNorm's
`num_features`, and dimension 1 does not:

- an initialised `BatchNorm1d(C)` on `(N, L, C)` with `L != C` (torch is about to raise
  "running_mean should contain C elements not L"; reported before it does, as an
  error);
- a `LazyBatchNorm1d` about to be initialised from `L` instead of `C` (silent: it
  normalises over positions, as a warning).

A square `(N, C, C)` input is not reported at run time: a transposed tensor looks the
same. Both engines report at the line that constructs the BatchNorm, so a static
finding confirmed by a traced run is one finding.

## Why is this bad?
`BatchNorm1d` normalises dimension 1 of `(N, C, L)`. A batch-first sequence
`(N, L, C)` — the output of an embedding, a batch-first RNN, a Transformer block or
attention, or of `nn.Linear` on such a sequence — has its features last, so
BatchNorm1d either crashes or, when the sizes happen to fit (or `num_features` was set
to the sequence length to make it run, `ruotianluo/self-critical.pytorch#44`),
computes one statistic per *time step*: padding and sequence length leak into the
statistics and eval breaks on other lengths (P18).

## Example
```python
class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(128, 256, batch_first=True)
        self.bn = nn.BatchNorm1d(256)

    def forward(self, x):
        out, _ = self.lstm(x)           # (N, L, 256)
        return self.bn(out)             # normalises the L axis
```

## Use instead
```python
        out, _ = self.lstm(x)
        return self.bn(out.transpose(1, 2)).transpose(1, 2)   # or nn.LayerNorm(256)
```

## Fix safety
No automatic fix: whether to transpose or to switch to LayerNorm is a modelling
choice, and LayerNorm changes the checkpoint's keys and the model's behaviour.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Severity
from bnlint.index import kinds
from bnlint.index.ast_names import argument, resolve
from bnlint.index.sequence_layers import (
    ATTENTION,
    BATCHNORM1D,
    RECURRENT,
    SEQUENCE_LAYERS,
    Layer,
    class_layers,
    keeps_layout,
    self_attribute,
)
from bnlint.rule import Invalid, Rule, RuntimeReport

_LAYOUT_KEEPING_FUNCTIONS = frozenset(
    {"torch.nn.functional.dropout", "torch.nn.functional.layer_norm", "torch.dropout"}
)
_LAYOUT_KEEPING_METHODS = frozenset(
    {
        "contiguous",
        "clone",
        "detach",
        "float",
        "half",
        "double",
        "to",
        "type_as",
        "masked_fill",
        "relu",
        "relu_",
        "tanh",
        "sigmoid",
        "add",
        "sub",
        "mul",
        "div",
    }
)
_KEEPING_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_CONCATENATE = frozenset({"torch.cat", "torch.concat", "torch.concatenate"})
# The name of an embedding's input that says it is a sequence of token ids: it contains
# one of these, or one of its `_`-separated words is one of the next.
# (Singular `token`/`word`/`char` and `src`/`tgt` also name one id per sample.)
_TOKEN_SUBSTRINGS = ("tokens", "input_ids", "token_ids")
_TOKEN_WORDS = frozenset(
    {
        "seq",
        "seqs",
        "sequence",
        "sequences",
        "sents",
        "sentence",
        "sentences",
        "text",
        "texts",
        "words",
        "captions",
        "utterances",
        "chars",
        "characters",
    }
)


@dataclass(frozen=True)
class Sequence:
    """A value known to be a batch-first sequence `(N, L, C)`, or (`pair`) the
    `(output, state)` tuple whose first element is one."""

    producer: str
    layer: Layer
    line: int
    pair: bool = False


@dataclass(frozen=True)
class WrongAxis:
    batchnorm: str
    call: ast.Call
    value: ast.expr
    sequence: Sequence


Env = dict[str, Sequence]
_NOTHING_TO_FOLLOW = (
    ast.Pass,
    ast.Break,
    ast.Continue,
    ast.Global,
    ast.Nonlocal,
    ast.Import,
    ast.ImportFrom,
)


class SequenceFlow:
    """Follows one method's statements: which local names hold a batch-first sequence,
    and which BatchNorm1d calls receive one (`found`)."""

    def __init__(self, layers: Mapping[str, Layer], aliases: Mapping[str, str]) -> None:
        self.layers = layers
        self.aliases = aliases
        self.env: Env = {}
        self.found: list[WrongAxis] = []
        self.quiet = 0

    def run(self, method: ast.FunctionDef | ast.AsyncFunctionDef) -> list[WrongAxis]:
        self._block(method.body)
        return self.found

    def _block(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self._statement(statement)

    def _statement(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Assign):
            value = self._value(statement.value)
            for target in statement.targets:
                self._assign(target, value)
        elif isinstance(statement, ast.AnnAssign):
            if statement.value is not None:
                self._assign(statement.target, self._value(statement.value))
        elif isinstance(statement, ast.AugAssign):
            value = self._value(ast.BinOp(statement.target, statement.op, statement.value))
            self._assign(statement.target, value)
        elif isinstance(statement, ast.If):
            self._value(statement.test)
            self._branches([statement.body], [statement.orelse])
        elif isinstance(statement, ast.For | ast.AsyncFor | ast.While):
            self._loop(statement)
        elif isinstance(statement, ast.With | ast.AsyncWith):
            for item in statement.items:
                self._value(item.context_expr)
                if item.optional_vars is not None:
                    self._assign(item.optional_vars, None)
            self._block(statement.body)
        elif isinstance(statement, ast.Try):
            self._branches(
                [statement.body, statement.orelse], *[[h.body] for h in statement.handlers]
            )
            self._block(statement.finalbody)
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.env.pop(statement.name, None)
        elif isinstance(statement, ast.Return | ast.Expr):
            if statement.value is not None:
                self._value(statement.value)
        elif isinstance(statement, ast.Assert | ast.Raise | ast.Delete):
            # `break`/`continue`/`return` in a branch are not followed: the paths they
            # cut off only add facts that the merge then drops (never one too many).
            for child in ast.iter_child_nodes(statement):
                if isinstance(child, ast.expr):
                    self._value(child)
            if isinstance(statement, ast.Delete):
                self.env = {}
        elif not isinstance(statement, _NOTHING_TO_FOLLOW):
            # match, and statements of newer Pythons: forget what we knew, but still
            # see the calls.
            self.env = {}
            for child in ast.walk(statement):
                if isinstance(child, ast.Call):
                    self._value(child)
            self.env = {}

    def _branches(self, *paths: list[list[ast.stmt]]) -> None:
        before = self.env
        ends = []
        for path in paths:
            self.env = dict(before)
            for body in path:
                self._block(body)
            ends.append(self.env)
        self.env = _agree(ends)

    def _loop(self, statement: ast.For | ast.AsyncFor | ast.While) -> None:
        if isinstance(statement, ast.While):
            self._value(statement.test)
        else:
            self._value(statement.iter)
        before = dict(self.env)
        # A first, silent pass finds what the body changes for the next iteration.
        self.quiet += 1
        self._iteration(statement)
        self.quiet -= 1
        self.env = _agree([before, self.env])
        self._iteration(statement)
        self._block(statement.orelse)
        self.env = _agree([before, self.env])

    def _iteration(self, statement: ast.For | ast.AsyncFor | ast.While) -> None:
        if not isinstance(statement, ast.While):
            self._assign(statement.target, None)
        self._block(statement.body)

    def _assign(self, target: ast.expr, value: Sequence | None) -> None:
        if isinstance(target, ast.Name):
            if value is None:
                self.env.pop(target.id, None)
            else:
                self.env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            first = value if value is not None and value.pair else None
            for position, element in enumerate(target.elts):
                part = replace(first, pair=False) if first and position == 0 else None
                self._assign(element.value if isinstance(element, ast.Starred) else element, part)
        elif isinstance(target, ast.Starred):
            self._assign(target.value, None)

    def _value(self, node: ast.expr) -> Sequence | None:
        """What `node` evaluates to (a sequence or unknown); BatchNorm1d calls inside it
        are checked on the way."""
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            held = self._value(node.value)
            self._value(node.slice)
            index = node.slice
            if held is not None and held.pair and isinstance(index, ast.Constant):
                return replace(held, pair=False) if index.value == 0 else None
            return None
        if isinstance(node, ast.BinOp):
            left, right = self._value(node.left), self._value(node.right)
            if isinstance(node.op, _KEEPING_OPERATORS):
                return _whole(left) or _whole(right)
            return None
        if isinstance(node, ast.IfExp):
            self._value(node.test)
            body, orelse = self._value(node.body), self._value(node.orelse)
            return body if body == orelse else None
        if isinstance(node, ast.NamedExpr):
            value = self._value(node.value)
            self._assign(node.target, value)
            return value
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp):
            return None
        if isinstance(node, ast.GeneratorExp):
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._value(child)
        return None

    def _call(self, node: ast.Call) -> Sequence | None:
        arguments = [self._value(arg) for arg in node.args]
        for keyword in node.keywords:
            self._value(keyword.value)
        first = arguments[0] if arguments and not isinstance(node.args[0], ast.Starred) else None
        attribute = self_attribute(node.func)
        if attribute is not None:
            return self._layer_call(attribute, node, first)
        qualified = resolve(node.func, self.aliases)
        if isinstance(node.func, ast.Attribute) and qualified is None:
            receiver = self._value(node.func.value)
            return _whole(receiver) if node.func.attr in _LAYOUT_KEEPING_METHODS else None
        if qualified in _LAYOUT_KEEPING_FUNCTIONS or kinds.is_activation(qualified):
            return _whole(first)
        if qualified in _CONCATENATE:
            return self._concatenation(node)
        return None

    def _layer_call(
        self, attribute: str, node: ast.Call, first: Sequence | None
    ) -> Sequence | None:
        layer = self.layers.get(attribute)
        if layer is None:
            return None
        if layer.kind in BATCHNORM1D:
            if first is not None and not first.pair and not self.quiet:
                self.found.append(WrongAxis(attribute, node, node.args[0], first))
            return _whole(first)  # same shape out: still a batch-first sequence
        if layer.kind in SEQUENCE_LAYERS:
            if not layer.batch_first:
                return None
            pair = layer.kind in RECURRENT or layer.kind in ATTENTION
            return Sequence(attribute, layer, node.lineno, pair=pair)
        if layer.kind == "Embedding":
            if node.args and _names_tokens(node.args[0]):
                return Sequence(attribute, layer, node.lineno)
            return None
        if keeps_layout(layer):
            return _whole(first)
        return None

    def _concatenation(self, node: ast.Call) -> Sequence | None:
        """`torch.cat([a, b], dim=-1)` of batch-first sequences is one."""
        dim = argument(node, "dim", 1)
        last = ast.unparse(dim) in ("-1", "2") if dim is not None else False
        parts = node.args[0] if node.args else None
        if not last or not isinstance(parts, ast.List | ast.Tuple) or not parts.elts:
            return None
        self.quiet += 1  # the parts were checked once already, as the call's argument
        values = [self._value(part) for part in parts.elts]
        self.quiet -= 1
        if all(value is not None and not value.pair for value in values):
            return values[0]
        return None


def _whole(value: Sequence | None) -> Sequence | None:
    return value if value is not None and not value.pair else None


def _agree(envs: list[Env]) -> Env:
    """The facts every path agrees on."""
    first, *others = envs
    return {
        name: value for name, value in first.items() if all(o.get(name) == value for o in others)
    }


def _names_tokens(node: ast.expr) -> bool:
    """The embedding's input is named for a sequence of token ids."""
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        name = str(node.slice.value)
    else:
        return False
    name = name.lower()
    if any(part in name for part in _TOKEN_SUBSTRINGS):
        return True
    return any(word in _TOKEN_WORDS for word in re.split(r"[_\d]+", name))


_QUOTED = 40  # longer inputs are not quoted in messages


def _operand(node: ast.expr) -> str:
    """`node` as the receiver of `.transpose(1, 2)` in a suggestion: in parentheses
    unless it is atomic, `x` when it is too long to quote."""
    text = ast.unparse(node)
    if len(text) > _QUOTED:
        return "x"
    atomic = isinstance(node, ast.Name | ast.Attribute | ast.Call | ast.Subscript)
    return text if atomic else f"({text})"


class BatchNorm1dWrongAxis(Rule):
    code = "BN015"
    name = "batchnorm1d-wrong-axis"
    severity = Severity.WARNING
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall,)
    syntax = "ast"
    triggers = ("BatchNorm1d",)
    # A sequence layer must be built (or imported) in the file too.
    trigger_pattern = (
        r"\b(?:Embedding|LSTM|GRU|RNN|MultiheadAttention|Transformer"
        r"(?:Encoder|Decoder)?(?:Layer)?)\b\s*[(.,]"
    )

    VALID = (
        "import torch.nn as nn\n"
        "class Tagger(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.lstm = nn.LSTM(32, 64, batch_first=True)\n"
        "        self.bn = nn.BatchNorm1d(64)\n"
        "    def forward(self, x):\n"
        "        out, _ = self.lstm(x)\n"
        "        return self.bn(out.transpose(1, 2)).transpose(1, 2)\n",
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
        "class Encoder(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.lstm = nn.LSTM(32, 64)\n"
        "        self.bn = nn.BatchNorm1d(64)\n"
        "    def forward(self, x):\n"
        "        out, _ = self.lstm(x)\n"
        "        return self.bn(out)\n",
        "import torch.nn as nn\n"
        "class Tabular(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.user = nn.Embedding(1000, 16)\n"
        "        self.bn = nn.BatchNorm1d(16)\n"
        "    def forward(self, user_id):\n"
        "        return self.bn(self.user(user_id))\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\n"
            "class Tagger(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.lstm = nn.LSTM(32, 64, batch_first=True)\n"
            "        self.bn = nn.BatchNorm1d(64)\n"
            "    def forward(self, x):\n"
            "        out, _ = self.lstm(x)\n"
            "        return self.bn(out)\n"
        ),
        Invalid(
            "import torch.nn as nn\n"
            "class TextModel(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.embed = nn.Embedding(30000, 128, padding_idx=0)\n"
            "        self.bn = nn.BatchNorm1d(128)\n"
            "    def forward(self, input_ids):\n"
            "        return self.bn(self.embed(input_ids))\n"
        ),
        Invalid(
            "import torch.nn as nn\n"
            "class Block(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.attn = nn.MultiheadAttention(64, 4, batch_first=True)\n"
            "        self.norm = nn.BatchNorm1d(64)\n"
            "    def forward(self, x):\n"
            "        return self.norm(x + self.attn(x, x, x)[0])\n"
        ),
    )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        layers = class_layers(node, self.aliases)
        if not any(layer.kind in BATCHNORM1D for layer in layers.values()):
            return
        reported: set[str] = set()
        for method in node.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for wrong in SequenceFlow(layers, self.aliases).run(method):
                if wrong.batchnorm not in reported:
                    reported.add(wrong.batchnorm)
                    self._report(layers[wrong.batchnorm], wrong)

    def _report(self, batchnorm: Layer, wrong: WrongAxis) -> None:
        source = wrong.sequence
        operand = _operand(wrong.value)
        at = wrong.call.lineno
        written = ast.unparse(wrong.value)
        value = f"`{written}`" if len(written) <= _QUOTED else "its input"
        features = ast.unparse(batchnorm.call.args[0]) if batchnorm.call.args else "<features>"
        origin = (
            "the embedded token sequence (..., L, C)"
            if source.layer.kind == "Embedding"
            else "the batch-first output (N, L, C)"
        )
        self.report(
            batchnorm.call,
            message=(
                f"`self.{wrong.batchnorm}` ({batchnorm.kind}) is applied on line {at} to "
                f"{value}, {origin} of `self.{source.producer}` "
                f"({source.layer.described}, line {source.line}), whose features are the "
                "last dimension; BatchNorm1d normalises dimension 1, so it computes one "
                "statistic per position instead of per feature (or raises when the sizes "
                "differ)"
            ),
            suggestion=(
                f"build `nn.LayerNorm({features})` here instead of the {batchnorm.kind}, or "
                f"transpose to (N, C, L) just around it inside `self.{wrong.batchnorm}`"
                if batchnorm.in_sequential
                else f"on line {at}, transpose around it: "
                f"`self.{wrong.batchnorm}({operand}.transpose(1, 2)).transpose(1, 2)`; "
                f"or build `nn.LayerNorm({features})` here instead of the {batchnorm.kind}"
            ),
        )

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormCall) or not event.features_last:
            return
        assert event.input_shape is not None
        _, length, channels = event.input_shape
        lazy = event.module.num_features == 0
        consequence = (
            f"it will be initialised with {length} features, one per position"
            if lazy
            else f'torch raises "running_mean should contain {channels} elements not {length}"'
        )
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) receives a "
            f"batch-first sequence {tuple(event.input_shape)} from `{event.previous_module}`, "
            f"whose {channels} features are the last dimension; BatchNorm1d normalises "
            f"dimension 1: {consequence}",
            suggestion="transpose to (N, C, L) around the BatchNorm "
            "(`bn(x.transpose(1, 2)).transpose(1, 2)`), or use LayerNorm",
            subject=event.module.path,
            at="construction",
            severity=Severity.WARNING if lazy else Severity.ERROR,
        )
