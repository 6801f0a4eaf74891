"""The torch.nn layers a class builds in its methods (`self.<attr> = nn.X(...)`), with
what BN015 and BN033 need to know about sequences: whether a recurrent, attention or
Transformer layer is batch-first, and which layers keep a batch-first sequence
batch-first. Pure functions over the standard library's `ast`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from bnlint.index import kinds
from bnlint.index.ast_names import argument, resolve

RECURRENT = frozenset({"LSTM", "GRU", "RNN"})
ATTENTION = frozenset({"MultiheadAttention"})
TRANSFORMER_LAYERS = frozenset({"TransformerEncoderLayer", "TransformerDecoderLayer"})
TRANSFORMER_STACKS = frozenset({"TransformerEncoder", "TransformerDecoder"})
SEQUENCE_LAYERS = RECURRENT | ATTENTION | TRANSFORMER_LAYERS | TRANSFORMER_STACKS | {"Transformer"}
BATCHNORM1D = frozenset({"BatchNorm1d", "LazyBatchNorm1d"})
# torch.nn layers and functions whose output keeps a batch-first sequence batch-first,
# besides activations and dropouts (`kinds.is_activation`, `kinds.is_dropout`).
LAYOUT_KEEPING_LAYERS = frozenset({"Linear", "LayerNorm", "RMSNorm", "Identity", "AlphaDropout"})


def torch_nn_class(qualified: str | None) -> str | None:
    """`torch.nn.LSTM`, `torch.nn.modules.rnn.LSTM` → "LSTM"; anything else → None."""
    if qualified is None or not qualified.startswith("torch.nn."):
        return None
    parts = qualified.split(".")
    if len(parts) == 3 or (len(parts) in (4, 5) and parts[2] == "modules"):
        return parts[-1]
    return None


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def self_attribute(node: ast.expr) -> str | None:
    """`attr` for `self.attr`, else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "self" else None
    return None


@dataclass(frozen=True)
class Layer:
    """A layer a class builds: its torch.nn class name, its constructor call and whether
    it is batch-first (RNN/attention/Transformer)."""

    kind: str
    call: ast.Call
    batch_first: bool = False
    # An `nn.Sequential` of layers that keep a batch-first sequence batch-first.
    keeps_layout: bool = False
    # A BatchNorm1d that is an item of the `nn.Sequential` the attribute holds.
    in_sequential: bool = False

    @property
    def facts(self) -> tuple[str, bool, bool]:
        return self.kind, self.batch_first, self.keeps_layout

    @property
    def described(self) -> str:
        if self.kind in SEQUENCE_LAYERS and self.batch_first:
            return f"{self.kind}(batch_first=True)"
        return self.kind


def _layer(
    call: ast.Call,
    aliases: Mapping[str, str],
    locals_: Mapping[str, ast.Call],
    built: Mapping[str, Layer],
) -> Layer:
    """What a constructor call in a class's method builds; `locals_` and `built` (the
    method's local names, the class's layers so far) resolve a Transformer stack's layer
    argument."""
    func = call.func
    # nn.Embedding.from_pretrained(weights)
    if isinstance(func, ast.Attribute) and func.attr == "from_pretrained":
        func = func.value
    kind = torch_nn_class(resolve(func, aliases)) or "?"
    if kind == "Sequential":
        # Its input reaches a BatchNorm1d item unchanged when only layout-keeping
        # layers come before it: the Sequential counts as that BatchNorm1d.
        for item in call.args:
            built_item = (
                _layer(item, aliases, locals_, built) if isinstance(item, ast.Call) else None
            )
            if built_item is not None and built_item.kind in BATCHNORM1D:
                return replace(built_item, in_sequential=True)
            if built_item is None or not keeps_layout(built_item):
                return Layer(kind, call)
        return Layer(kind, call, keeps_layout=bool(call.args))
    if kind in RECURRENT:
        return Layer(kind, call, _is_true(argument(call, "batch_first", 4)))
    if kind in ATTENTION or kind in TRANSFORMER_LAYERS or kind == "Transformer":
        return Layer(kind, call, _is_true(argument(call, "batch_first", None)))
    if kind in TRANSFORMER_STACKS:
        parameter = kind.removeprefix("Transformer").lower() + "_layer"
        inner_node = argument(call, parameter, 0)
        if isinstance(inner_node, ast.Name):
            inner_node = locals_.get(inner_node.id)
        inner: Layer | None = None
        if inner_node is not None and self_attribute(inner_node) is not None:
            inner = built.get(self_attribute(inner_node) or "")
        elif isinstance(inner_node, ast.Call):
            inner = _layer(inner_node, aliases, locals_, built)
        batch_first = inner is not None and inner.kind in TRANSFORMER_LAYERS and inner.batch_first
        return Layer(kind, call, batch_first)
    return Layer(kind, call)


def class_layers(node: ast.ClassDef, aliases: Mapping[str, str]) -> dict[str, Layer]:
    """The torch.nn layers a class assigns to `self.<attr>` in its methods. An attribute
    assigned two different layers (or anything else as well) is left out: which one
    runs is unknown."""
    found: dict[str, Layer] = {}
    unknown: set[str] = set()
    for method in node.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        locals_: dict[str, ast.Call] = {}
        for statement in method_statements(method.body):
            if not isinstance(statement, ast.Assign):
                continue
            value = statement.value
            for target in statement.targets:
                if isinstance(target, ast.Name) and isinstance(value, ast.Call):
                    locals_[target.id] = value
                attribute = self_attribute(target)
                if attribute is None:
                    continue
                if not isinstance(value, ast.Call):
                    unknown.add(attribute)
                    continue
                layer = _layer(value, aliases, locals_, found)
                previous = found.setdefault(attribute, layer)
                if previous.facts != layer.facts:
                    unknown.add(attribute)
    return {name: layer for name, layer in found.items() if name not in unknown}


def method_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a function body, into `if`/`for`/`with`/`try` blocks, not into
    nested functions or classes."""
    for statement in body:
        yield statement
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(statement, field, None)
            if isinstance(inner, list):
                yield from method_statements(inner)
        for handler in getattr(statement, "handlers", ()):
            yield from method_statements(handler.body)


def keeps_layout(layer: Layer) -> bool:
    qualified = f"torch.nn.{layer.kind}"
    return (
        layer.kind in LAYOUT_KEEPING_LAYERS
        or kinds.is_activation(qualified)
        or kinds.is_dropout(qualified)
        or layer.keeps_layout
    )
