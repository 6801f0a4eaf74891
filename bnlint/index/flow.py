"""Forward data flow: which layer's output feeds which layer, and what `forward` returns.

Declaration order in `__init__` lies (`self.conv` may be declared before `self.bn` and
never feed it), so the flow follows `forward` itself: `x = self.conv(x); x = self.bn(x)`,
nested calls `self.bn(self.conv(x))`, branches (both sides), loops (twice, so values
carried to the next iteration are seen) and every other use of a value (a skip
connection, `torch.cat`, a `return`, a method call) as a use by "something else".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.index.summary import Names, Positions

# Functions and tensor methods that reshape or globally pool a value without mixing its
# channels: a BatchNorm before them still makes the returned units (`fn:shape`/`fn:pool`).
_RESHAPES = frozenset(
    {
        "flatten",
        "squeeze",
        "mean",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool3d",
        "avg_pool1d",
        "avg_pool2d",
        "avg_pool3d",
        "adaptive_max_pool2d",
        "max_pool2d",
    }
)
_RESHAPE_METHODS = frozenset({"view", "reshape", "flatten", "squeeze", "contiguous", "mean"})
# A value's use that is not the direct input of a `self.<layer>(...)` call.
OTHER = "<other>"
_CHAIN = 6
# Expressions whose parts may not run: short-circuit operators, lambdas, comprehensions.
_MAYBE_SKIPPED = (ast.BoolOp, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class _Value:
    producer: str | None
    chain: tuple[str, ...]
    uses: set[str] = field(default_factory=set)


class ForwardFlow:
    """Run over one `forward`: `feeds` maps each layer attribute to the one layer that
    consumes all of its outputs (None when its outputs go anywhere else too);
    `returns` lists, per returned value, the chain of layers/functions that produced it
    (newest first: `["act", "bn", "fc"]`); `reused` maps each layer attribute called
    at two or more places that every run of `forward` executes (straight-line code, not
    under an `if`, a loop, a `try`, a conditional expression, a short-circuit operator or
    a lambda/comprehension) to those calls: `[position, source of its input]`, the
    source being the layer attribute that produced the input, "<input>" for a `forward`
    argument, or "?"."""

    def __init__(self, names: Names, positions: Positions | None = None) -> None:
        self.names = names
        self.positions = positions
        self.values: list[_Value] = []
        self.returns: list[list[str]] = []
        # Local name → the values it may hold at this point.
        self.env: dict[str, set[int]] = {}
        # How many conditionally executed constructs enclose the current node.
        self.conditional = 0
        self.straight_calls: dict[str, list[list[Any]]] = {}

    def run(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, Any]:
        for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]:
            self.env[arg.arg] = {self._new(None, ("<input>",))}
        self._block(function.body)
        feeds: dict[str, str | None] = {}
        for value in self.values:
            if value.producer is None or not value.uses:
                continue
            consumer = next(iter(value.uses)) if len(value.uses) == 1 else None
            if consumer == OTHER:
                consumer = None
            if value.producer in feeds and feeds[value.producer] != consumer:
                consumer = None
            feeds[value.producer] = consumer
        reused = {attr: calls for attr, calls in self.straight_calls.items() if len(calls) > 1}
        return {"feeds": feeds, "returns": self.returns, "reused": reused}

    def _new(self, producer: str | None, chain: tuple[str, ...]) -> int:
        self.values.append(_Value(producer, chain[:_CHAIN]))
        return len(self.values) - 1

    def _use(self, ids: set[int], consumer: str) -> None:
        for i in ids:
            self.values[i].uses.add(consumer)

    def _block(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self._statement(statement)

    def _statement(self, statement: ast.stmt) -> None:
        env = self.env
        if isinstance(statement, ast.Assign):
            ids = self._expr(statement.value, None)
            for target in statement.targets:
                self._assign(target, ids)
        elif isinstance(statement, ast.AnnAssign):
            if statement.value is not None:
                self._assign(statement.target, self._expr(statement.value, None))
        elif isinstance(statement, ast.AugAssign):
            ids = self._expr(statement.value, OTHER)
            if isinstance(statement.target, ast.Name):
                self._use(env.get(statement.target.id, set()), OTHER)
                env[statement.target.id] = {self._new(None, ("?",))}
            else:
                self._expr(statement.target, OTHER)
            del ids
        elif isinstance(statement, ast.Return):
            value = statement.value
            if isinstance(value, ast.Tuple | ast.List) and value.elts:
                # `return logits, features`: by convention the first result is the
                # prediction; the others are auxiliary outputs.
                for element in value.elts[1:]:
                    self._expr(element, OTHER)
                value = value.elts[0]
            if value is not None:
                ids = self._expr(value, OTHER)
                for i in ids:
                    self.returns.append(list(self.values[i].chain))
        elif isinstance(statement, ast.Expr):
            self._expr(statement.value, OTHER)
        elif isinstance(statement, ast.If):
            self._expr(statement.test, OTHER)
            before = _copy(env)
            self.conditional += 1
            self._block(statement.body)
            after_body, self.env = self.env, before
            self._block(statement.orelse)
            self.conditional -= 1
            _merge(self.env, after_body)
        elif isinstance(statement, ast.For | ast.AsyncFor | ast.While):
            if isinstance(statement, ast.For | ast.AsyncFor):
                self._expr(statement.iter, OTHER)
                self._assign(statement.target, {self._new(None, ("?",))})
            else:
                self._expr(statement.test, OTHER)
            before = _copy(env)
            self.conditional += 1
            self._block(statement.body)
            self._block(statement.body)
            self._block(statement.orelse)
            self.conditional -= 1
            _merge(self.env, before)
        elif isinstance(statement, ast.With | ast.AsyncWith):
            for item in statement.items:
                ids = self._expr(item.context_expr, OTHER)
                if item.optional_vars is not None:
                    self._assign(item.optional_vars, ids)
            self._block(statement.body)
        elif isinstance(statement, ast.Try):
            self.conditional += 1
            self._block(statement.body)
            for handler in statement.handlers:
                self._block(handler.body)
            self._block(statement.orelse)
            self._block(statement.finalbody)
            self.conditional -= 1
        else:
            for child in ast.iter_child_nodes(statement):
                if isinstance(child, ast.expr):
                    self._expr(child, OTHER)

    def _assign(self, target: ast.expr, ids: set[int]) -> None:
        env = self.env
        if isinstance(target, ast.Name):
            env[target.id] = set(ids)
        elif isinstance(target, ast.Tuple | ast.List):
            # Unpacking hides which part is which: the value escapes.
            self._use(ids, OTHER)
            for element in target.elts:
                self._assign(element, {self._new(None, ("?",))})
        else:
            self._use(ids, OTHER)
            self._expr(target, OTHER)

    def _expr(self, node: ast.expr, consumer: str | None) -> set[int]:
        """The values `node` evaluates to; each is marked as used by `consumer` (None:
        the value is only passed on, as in an assignment or a return)."""
        ids = self._evaluate(node)
        if consumer is not None:
            self._use(ids, consumer)
        return ids

    def _evaluate(self, node: ast.expr) -> set[int]:
        env = self.env
        if isinstance(node, ast.Name):
            return set(env.get(node.id, set()))
        if isinstance(node, ast.Call):
            return {self._call(node)}
        if isinstance(node, ast.IfExp):
            self._expr(node.test, OTHER)
            self.conditional += 1
            ids = self._expr(node.body, None) | self._expr(node.orelse, None)
            self.conditional -= 1
            return ids
        if isinstance(node, ast.NamedExpr):
            ids = self._expr(node.value, None)
            env[node.target.id] = set(ids)
            return ids
        deferred = isinstance(node, _MAYBE_SKIPPED)
        self.conditional += deferred
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child, OTHER)
        self.conditional -= deferred
        return {self._new(None, ("?",))}

    def _call(self, node: ast.Call) -> int:
        layer = self_attribute(node.func)
        if layer is not None:
            inputs: set[int] = set()
            for index, arg in enumerate(node.args):
                if index == 0 and not isinstance(arg, ast.Starred):
                    inputs = self._expr(arg, layer)
                else:
                    self._expr(arg, OTHER)
            for keyword in node.keywords:
                self._expr(keyword.value, OTHER)
            if not self.conditional and self.positions is not None:
                self.straight_calls.setdefault(layer, []).append(
                    [self.positions.of(node), self._source_of(inputs)]
                )
            return self._new(layer, (layer, *self._chain_of(inputs)))
        # Activations keep the chain (`return torch.sigmoid(self.bn(x))` ends in BN).
        function = (
            self.names.qualify(node.func)
            if not isinstance(node.func, ast.Attribute) or _root(node.func) != "self"
            else None
        )
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if isinstance(node.func, ast.Attribute) and function is None:
            receiver = self._expr(node.func.value, OTHER)
        else:
            receiver = set()
        inputs = set()
        for index, arg in enumerate(node.args):
            ids = self._expr(arg.value if isinstance(arg, ast.Starred) else arg, OTHER)
            if index == 0:
                inputs = ids
        for keyword in node.keywords:
            self._expr(keyword.value, OTHER)
        from bnlint.index.kinds import is_activation

        if function is not None and is_activation(function):
            return self._new(None, ("fn:" + function.rsplit(".", 1)[-1], *self._chain_of(inputs)))
        if function is not None and function.rsplit(".", 1)[-1] in _RESHAPES:
            # `torch.flatten(x, 1)`, `F.adaptive_avg_pool2d(x, 1)`: the same units.
            step = "fn:pool" if "pool" in function or function.endswith("mean") else "fn:shape"
            return self._new(None, (step, *self._chain_of(inputs)))
        if method in ("sigmoid", "tanh", "relu", "softmax") and not node.args:
            return self._new(None, ("fn:" + method, *self._chain_of(receiver)))
        if function is None and method in _RESHAPE_METHODS:
            step = "fn:pool" if method == "mean" else "fn:shape"
            return self._new(None, (step, *self._chain_of(receiver)))
        return self._new(None, ("?",))

    def _source_of(self, ids: set[int]) -> str:
        """The layer attribute (or "<input>") that produced a call's input, else "?"."""
        sources = {
            self.values[i].producer
            or next((c for c in self.values[i].chain if not c.startswith("fn:")), "?")
            for i in ids
        }
        return sources.pop() if len(sources) == 1 else "?"

    def _chain_of(self, ids: set[int]) -> tuple[str, ...]:
        chains = {self.values[i].chain for i in ids}
        return chains.pop() if len(chains) == 1 else ("?",)


def _copy(env: dict[str, set[int]]) -> dict[str, set[int]]:
    return {key: set(ids) for key, ids in env.items()}


def _merge(env: dict[str, set[int]], other: dict[str, set[int]]) -> None:
    for key, ids in other.items():
        env[key] = env.get(key, set()) | ids


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def self_attribute(node: ast.AST) -> str | None:
    """`attr` for `self.attr` (a direct child module), else None."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return node.attr
    return None
