"""Layer-to-layer edges that `graph.direct_edges` leaves out, for rules that ask whether
one layer's output can reach the next one with nothing in between (BN011):

- in `forward`, a layer whose output reaches another layer on *some* path, not only
  on all of them: `if self.drop is not None: x = self.drop(x)` followed by
  `if self.bn is not None: x = self.bn(x)` puts the dropout's output into the BN
  whenever both exist;
- in containers filled in a loop (`layers.append(...)` then `nn.Sequential(*layers)`,
  `seq = nn.Sequential()` then `seq.add_module(name, ...)`): neighbours in the order the
  code appends them, and across iterations the last layer a loop appends feeds the first
  one it appends on the next pass.

Pure functions over the standard library's `ast`; a layer whose kind is unknown (a
Name, a helper's result) still occupies its place, so it separates its neighbours.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from bnlint.index.flow import OTHER, ForwardFlow, self_attribute
from bnlint.index.graph import Edge, leaf
from bnlint.index.project import ProjectIndex
from bnlint.index.summary import Json, LayerBuilder, Names, Positions, dotted_name
from bnlint.word_search import has_word_match

Function = ast.FunctionDef | ast.AsyncFunctionDef
Branches = tuple[tuple[int, str], ...]
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_SEQUENTIAL = "Sequential"
# Text a function that fills a container one layer at a time must contain.
_FILLING = (".append(", ".add_module(", ".extend(", "+=")
_DROPOUT_APPENDED = re.compile(r"(?s)(?:\.(?:append|add_module|extend)\(|\+=\s*\[).{0,160}?Dropout")


@dataclass(frozen=True)
class OrderedEdge(Edge):
    """An edge from the order a container is filled in; `next_pass` when it links the
    last layer of one loop iteration to the first layer of the next."""

    next_pass: bool = False

    def describe(self, consumer: str, verb: str = "feeds") -> str:
        container = self.names[0]
        if self.next_pass:
            return (
                f"the loop that fills `{container}` appends it last, and the next pass "
                f"starts with `{consumer}`"
            )
        return f"it is appended to `{container}` right before `{consumer}`"


@dataclass(frozen=True)
class FlowEdge(Edge):
    """An edge from `forward`: `at` and `consumer_at` are the positions of the two
    calls there (`x = self.drop(x)`, `x = self.bn(x)`), where the order is written."""

    at: tuple[int, ...] = ()
    consumer_at: tuple[int, ...] = ()


@dataclass
class _Append:
    node: ast.expr  # the appended layer expression
    loops: tuple[ast.AST, ...]  # enclosing loops, outermost first
    branches: Branches  # (id of an enclosing If, "body" | "orelse")


def _names_of(index: ProjectIndex, path: str) -> Names | None:
    summary = index.summaries.get(path)
    if summary is None:
        return None
    local = set(summary.classes) | {name for name in summary.functions if name != "<module>"}
    return Names(summary.imports, local, summary.aliases)


def _forwards(
    index: ProjectIndex, path: str, tree: ast.Module, classes: Collection[str] | None = None
) -> Iterator[tuple[ast.ClassDef, Function]]:
    """Each top-level class of the file that the index summarised, with its `forward`
    (`classes`: only those)."""
    summary = index.summaries.get(path)
    if summary is None:
        return
    for statement in tree.body:
        if not isinstance(statement, ast.ClassDef) or statement.name not in summary.classes:
            continue
        if classes is not None and statement.name not in classes:
            continue
        forward = _forward_of(statement)
        if forward is not None:
            yield statement, forward


def reaching_edges(
    index: ProjectIndex,
    path: str,
    tree: ast.Module,
    text: str,
    classes: Collection[str] | None = None,
) -> Iterator[FlowEdge]:
    """`self.a`'s output goes into `self.b` on some path through a class's `forward`,
    where both rebind one variable (`x = self.a(x)` ... `x = self.b(x)`): on the path
    through both, `self.b` is all that reads `self.a`'s output. A value also kept for
    later (`h = self.a(x); return h + self.b(h)`) is not such an edge. `classes`
    limits the search to those classes."""
    names = _names_of(index, path)
    if names is None:
        return
    positions = Positions(text)
    for statement, forward in _forwards(index, path, tree, classes):
        rebinding = _rebinding_calls(forward)
        if len(rebinding) < 2:
            continue
        flow = ForwardFlow(names, positions)
        flow.run(forward)
        layers = index.class_layers(path, statement.name)
        pairs: set[tuple[str, str]] = set()
        for value in flow.values:
            if value.producer is None or value.producer not in layers:
                continue
            for consumer in value.uses:
                if consumer == OTHER or consumer not in layers or consumer == value.producer:
                    continue
                if value.producer in rebinding and consumer in rebinding:
                    pairs.add((value.producer, consumer))
        for producer, consumer in sorted(pairs):
            calls = _ordered_calls(rebinding[producer], rebinding[consumer])
            if calls is None:
                continue
            producer_path, producer_spec = layers[producer]
            consumer_path, consumer_spec = layers[consumer]
            for last in _choices(leaf(producer_spec, last=True)):
                for first in _choices(leaf(consumer_spec, last=False)):
                    yield FlowEdge(
                        last,
                        first,
                        producer_path,
                        consumer_path,
                        statement.name,
                        (producer, consumer),
                        tuple(positions.of(calls[0])),
                        tuple(positions.of(calls[1])),
                    )


def _ordered_calls(
    producers: list[tuple[str, ast.Call]], consumers: list[tuple[str, ast.Call]]
) -> tuple[ast.Call, ast.Call] | None:
    """The first consumer call with a producer call on the same variable before it,
    and the last such producer call: where the order is written."""
    for variable, consumer in consumers:
        before = [
            call
            for name, call in producers
            if name == variable
            and (call.lineno, call.col_offset) < (consumer.lineno, consumer.col_offset)
        ]
        if before:
            return before[-1], consumer
    return None


def _rebinding_calls(forward: Function) -> dict[str, list[tuple[str, ast.Call]]]:
    """Layer attribute → [(variable, call)] for each `x = self.<attr>(x)` in `forward`,
    in the order of the text."""
    found: dict[str, list[tuple[str, ast.Call]]] = {}
    for node in ast.walk(forward):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, call = node.targets[0], node.value
        if not (isinstance(target, ast.Name) and isinstance(call, ast.Call) and call.args):
            continue
        attribute = self_attribute(call.func)
        first = call.args[0]
        if attribute is not None and isinstance(first, ast.Name) and first.id == target.id:
            found.setdefault(attribute, []).append((target.id, call))
    for calls in found.values():
        calls.sort(key=lambda item: (item[1].lineno, item[1].col_offset))
    return found


def _choices(spec: Json | None) -> list[Json]:
    """A spec, or the layers of `A(...) if c else B(...)`: each one may be built."""
    if spec is None:
        return []
    if "alts" in spec:
        return [alt for alt in spec["alts"] if alt is not None]
    return [spec]


def appended_edges(index: ProjectIndex, path: str, tree: ast.Module, text: str) -> Iterator[Edge]:
    """Neighbours in containers filled by `append`/`add_module`/`extend`/`+=` that
    become (or are) an `nn.Sequential`, including across loop iterations."""
    names = _names_of(index, path)
    if names is None:
        return
    if not fills_a_sequential(text):
        return
    lines = text.splitlines()
    builder = LayerBuilder(names, Positions(text))
    for owner, function in _functions(tree):
        if not fills_a_sequential("\n".join(lines[function.lineno - 1 : function.end_lineno])):
            continue
        for name, container in _containers(function, names).items():
            yield from _edges(name, container, builder, path, owner)


def fills_a_sequential(text: str) -> bool:
    """Whether code may fill an `nn.Sequential` one layer at a time (a text check that
    spares the ast walk of nearly every file)."""
    return _SEQUENTIAL in text and any(word in text for word in _FILLING)


def fills_a_sequential_with_dropout(text: str) -> bool:
    """`fills_a_sequential`, with a dropout among what is appended: BN011's gate before
    it parses a file."""
    return fills_a_sequential(text) and _DROPOUT_APPENDED.search(text) is not None


def _functions(tree: ast.Module) -> Iterator[tuple[str | None, Function]]:
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            yield None, statement
        elif isinstance(statement, ast.ClassDef):
            for method in statement.body:
                if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield statement.name, method


@dataclass
class _Container:
    appends: list[_Append]
    # The loops around the statement that created it: a list made afresh on each pass
    # starts empty again, so its last layer feeds nothing of the next pass.
    created_in: tuple[ast.AST, ...]


def _containers(function: Function, names: Names) -> dict[str, _Container]:
    """Container name (`layers`, `self.encoder`) → what is appended to it, in order,
    for the containers that are Sequentials: built as `nn.Sequential()` in this
    function, or unpacked into one (`nn.Sequential(*layers)`)."""
    appends: dict[str, list[_Append]] = {}
    created: dict[str, tuple[ast.AST, ...]] = {}
    sequential: set[str] = set()
    text_of = ast.unparse

    def visit(body: list[ast.stmt], loops: tuple[ast.AST, ...], branches: Branches) -> None:
        for statement in body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for node in _expressions(statement):
                if isinstance(node, ast.Call) and _is_sequential(node, names):
                    for arg in node.args:
                        if isinstance(arg, ast.Starred):
                            sequential.add(text_of(arg.value))
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                value = statement.value
                target = dotted_name(statement.targets[0])
                if target is not None and isinstance(value, ast.Call):
                    if _is_sequential(value, names) and not value.args:
                        sequential.add(target)
                        appends[target] = []
                        created[target] = loops
                elif target is not None and isinstance(value, ast.List):
                    appends[target] = [_Append(e, loops, branches) for e in value.elts]
                    created[target] = loops
            elif isinstance(statement, ast.AugAssign) and isinstance(statement.op, ast.Add):
                target = dotted_name(statement.target)
                if target in appends and isinstance(statement.value, ast.List):
                    appends[target].extend(
                        _Append(e, loops, branches) for e in statement.value.elts
                    )
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                _record(statement.value, appends, loops, branches)
            if isinstance(statement, _LOOPS):
                visit(statement.body, (*loops, statement), branches)
                visit(statement.orelse, loops, branches)
            elif isinstance(statement, ast.If):
                visit(statement.body, loops, (*branches, (id(statement), "body")))
                visit(statement.orelse, loops, (*branches, (id(statement), "orelse")))
            elif isinstance(statement, ast.With | ast.AsyncWith | ast.Try):
                visit(statement.body, loops, branches)

    visit(function.body, (), ())
    return {
        name: _Container(items, created[name])
        for name, items in appends.items()
        if name in sequential and items
    }


def _expressions(statement: ast.stmt) -> Iterator[ast.AST]:
    """The expression nodes of one statement, not of the statements nested in it."""
    stack: list[ast.AST] = [
        child for child in ast.iter_child_nodes(statement) if isinstance(child, ast.expr)
    ]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _record(
    call: ast.Call,
    appends: dict[str, list[_Append]],
    loops: tuple[ast.AST, ...],
    branches: Branches,
) -> None:
    if not isinstance(call.func, ast.Attribute):
        return
    container = dotted_name(call.func.value)
    if container not in appends:
        return
    method, args = call.func.attr, call.args
    if method == "append" and len(args) == 1:
        appends[container].append(_Append(args[0], loops, branches))
    elif method == "add_module" and len(args) == 2:
        appends[container].append(_Append(args[1], loops, branches))
    elif method == "extend" and len(args) == 1 and isinstance(args[0], ast.List | ast.Tuple):
        appends[container].extend(_Append(e, loops, branches) for e in args[0].elts)
    elif method in ("append", "add_module", "extend", "insert"):
        # Something unreadable was added: the order is no longer known.
        del appends[container]


def _is_sequential(call: ast.Call, names: Names) -> bool:
    qualified = names.qualify(call.func) or ""
    return qualified.startswith("torch.") and qualified.rsplit(".", 1)[-1] == _SEQUENTIAL


def _exclusive(a: _Append, b: _Append) -> bool:
    """Two appends on different sides of the same `if`: never both in one pass."""
    sides = dict(a.branches)
    return any(sides.get(branch, side) != side for branch, side in b.branches)


def _edges(
    name: str,
    container: _Container,
    builder: LayerBuilder,
    path: str,
    owner: str | None,
) -> Iterator[Edge]:
    appends = container.appends
    specs = [
        builder.spec(item.node) if isinstance(item.node, ast.Call) else None for item in appends
    ]

    def edge(i: int, j: int, next_pass: bool) -> Iterator[Edge]:
        before, after = specs[i], specs[j]
        if before is None or after is None or _exclusive(appends[i], appends[j]):
            return
        yield OrderedEdge(before, after, path, path, owner, (name, name), next_pass)

    for position in range(len(appends) - 1):
        yield from edge(position, position + 1, False)
    # The last append of each loop body feeds the first one of its next pass.
    loops: dict[int, list[int]] = {}
    for position, item in enumerate(appends):
        for loop in item.loops:
            if not any(loop is outer for outer in container.created_in):
                loops.setdefault(id(loop), []).append(position)
    for positions in loops.values():
        if len(positions) > 1:
            yield from edge(positions[-1], positions[0], True)


# torch's functional dropouts: p is the second argument, `training` decides whether it
# drops (its default, True, drops in eval too: no train/eval shift then).
FUNCTIONAL_DROPOUTS = frozenset(
    {f"torch.nn.functional.{name}" for name in ("dropout", "dropout1d", "dropout2d", "dropout3d")}
    | {"torch.dropout"}
)
# Searched at word starts (`\bdropout`, see `word_search`).
_FUNCTIONAL_DROPOUT_TEXT = re.compile(r"dropout[123]?d?\(")


@dataclass(frozen=True)
class FunctionalEdge(FlowEdge):
    """`x = F.dropout(x, p, training=self.training)` followed by `x = self.bn(x)`."""

    def describe(self, consumer: str, verb: str = "feeds") -> str:
        return f"its output goes straight into `self.{self.names[1]}`"


def calls_functional_dropout(text: str) -> bool:
    """A text check before parsing: a `dropout(...)` call with a `training=` flag."""
    return "training" in text and has_word_match(_FUNCTIONAL_DROPOUT_TEXT, text)


def functional_dropout_edges(
    index: ProjectIndex, path: str, tree: ast.Module, text: str
) -> Iterator[FunctionalEdge]:
    """In a class's `forward`, `x = F.dropout(x, ..., training=self.training)` whose
    next use of `x` in the same block is a layer call on it (`x = self.bn(x)`,
    `return self.bn(x)`), or `self.bn(F.dropout(x, ...))`."""
    names = _names_of(index, path)
    if names is None:
        return
    positions = Positions(text)
    for statement, forward in _forwards(index, path, tree):
        layers = index.class_layers(path, statement.name)
        for dropout, layer_call in _functional_pairs(forward, names):
            attribute = self_attribute(layer_call.func)
            if attribute is None or attribute not in layers:
                continue
            consumer_path, consumer_spec = layers[attribute]
            producer = _functional_spec(dropout, names, positions)
            for first in _choices(leaf(consumer_spec, last=False)):
                yield FunctionalEdge(
                    producer,
                    first,
                    path,
                    consumer_path,
                    statement.name,
                    ("dropout", attribute),
                    tuple(positions.of(dropout)),
                    tuple(positions.of(layer_call)),
                )


def _is_functional_dropout(node: ast.AST, names: Names) -> bool:
    if not (isinstance(node, ast.Call) and names.qualify(node.func) in FUNCTIONAL_DROPOUTS):
        return False
    training = next((k.value for k in node.keywords if k.arg == "training"), None)
    if training is None and len(node.args) > 2:
        training = node.args[2]
    # Missing or a literal: the dropout acts the same in train and eval.
    return training is not None and not isinstance(training, ast.Constant)


def _functional_spec(call: ast.Call, names: Names, positions: Positions) -> Json:
    rate = next((k.value for k in call.keywords if k.arg == "p"), None)
    if rate is None and len(call.args) > 1:
        rate = call.args[1]
    p: Any = 0.5 if rate is None else _literal_number(rate)
    return {
        "call": names.qualify(call.func),
        "kw": {"p": p},
        "pos": positions.of(call),
        "functional": True,
    }


def _literal_number(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    return "?"


def _functional_pairs(forward: Function, names: Names) -> Iterator[tuple[ast.Call, ast.Call]]:
    for node in ast.walk(forward):
        # self.bn(F.dropout(x, ...))
        inner = node.args[0] if isinstance(node, ast.Call) and node.args else None
        if (
            isinstance(node, ast.Call)
            and self_attribute(node.func)
            and isinstance(inner, ast.Call)
            and _is_functional_dropout(inner, names)
        ):
            yield inner, node
        body = getattr(node, "body", None)
        for block in (body, getattr(node, "orelse", None)):
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield from _pairs_in_block(block, names)


def _pairs_in_block(block: list[ast.stmt], names: Names) -> Iterator[tuple[ast.Call, ast.Call]]:
    for position, statement in enumerate(block):
        if not (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(statement.value, ast.Call)
            and _is_functional_dropout(statement.value, names)
        ):
            continue
        dropout = statement.value
        variable = statement.targets[0].id
        for later in block[position + 1 :]:
            uses = [
                n
                for n in ast.walk(later)
                if isinstance(n, ast.Name) and n.id == variable and isinstance(n.ctx, ast.Load)
            ]
            if not uses:
                if any(isinstance(n, ast.Name) and n.id == variable for n in ast.walk(later)):
                    break  # rebound before it is read
                continue
            # The next statement reading `x` passes it, and only it, to one layer.
            layer_calls = [
                n
                for n in ast.walk(later)
                if isinstance(n, ast.Call)
                and self_attribute(n.func) is not None
                and n.args
                and isinstance(n.args[0], ast.Name)
                and n.args[0].id == variable
            ]
            if isinstance(later, ast.Assign | ast.Return) and len(uses) == len(layer_calls) == 1:
                yield dropout, layer_calls[0]
            break


def _forward_of(node: ast.ClassDef) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The class's own `forward`, if it defines one."""
    for statement in node.body:
        if (
            isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
            and statement.name == "forward"
        ):
            return statement
    return None
