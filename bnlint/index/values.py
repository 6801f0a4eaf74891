"""Where a number passed to a layer comes from, within one file: a literal, a module-level
constant, a local assigned once, a function parameter's default, an attribute set once
from one of those (`self.rate = rate`), or the arguments the file's own callers pass for
a parameter. Pure functions over the standard library's `ast`.

BN010 reads momentum values and BN011 dropout rates through it. A value it cannot
follow is unknown (None): the rules stay silent on it rather than guess.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from bnlint.index.flow import self_attribute

Function = ast.FunctionDef | ast.AsyncFunctionDef
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@dataclass(frozen=True)
class Origin:
    """A number and the literal that wrote it: `node` is where a maintainer changes it."""

    value: float
    node: ast.expr
    # How the value reached the use: "" (written there), "parameter `p` defaults to",
    # "`NAME` =", ... — for messages.
    via: str
    # The function parameter it is the default of, if any.
    parameter: tuple[Function, str] | None = None


def number(node: ast.AST | None) -> float | None:
    """An int or float literal's value (not a bool); None for anything else."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        assert isinstance(node.value, int | float)
        return float(node.value)
    return None


def parameters(function: Function) -> Iterator[tuple[ast.arg, ast.expr | None]]:
    """Each parameter with its default (None when it has none)."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    yield from zip(positional, defaults, strict=True)
    yield from zip(args.kwonlyargs, args.kw_defaults, strict=True)


class FileValues:
    """One file's scopes: each node's enclosing function and class, the module-level
    numeric constants, and lookups of a name's value at a use."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        counts: dict[str, int] = {}
        constants: dict[str, ast.expr] = {}
        for statement in tree.body:
            for target, value in _assignments(statement):
                counts[target] = counts.get(target, 0) + 1
                # An annotated module-level name (`RATE: float = 0.9`) is a setting more
                # often than a constant (dataclass-like configs): not followed.
                if isinstance(statement, ast.Assign) and number(value) is not None:
                    assert value is not None
                    constants[target] = value
        self.constants = {name: node for name, node in constants.items() if counts[name] == 1}
        bound = {
            target: value
            for statement in tree.body
            for target, value in _assignments(statement)
            if value is not None and counts[target] == 1
        }
        self._module_bindings = bound
        self._classes: dict[str, ast.ClassDef] = {}
        self._functions: dict[str, Function] = {}
        for statement in tree.body:
            if isinstance(statement, ast.ClassDef):
                self._classes[statement.name] = statement
            elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                self._functions[statement.name] = statement

    def scope_of(self, node: ast.AST) -> Function | None:
        """The function whose body holds `node` (not a lambda or a nested class)."""
        current = self.parent.get(node)
        while current is not None and not isinstance(current, _SCOPES):
            current = self.parent.get(current)
        return current if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef) else None

    def class_of(self, function: Function) -> ast.ClassDef | None:
        owner = self.parent.get(function)
        return owner if isinstance(owner, ast.ClassDef) else None

    def origin(self, node: ast.expr, depth: int = 0) -> Origin | None:
        """Where the number `node` evaluates to is written, when that can be followed."""
        value = number(node)
        if value is not None:
            return Origin(value, node, "")
        if depth > 3:
            return None
        function = self.scope_of(node)
        if isinstance(node, ast.Name):
            if function is not None:
                return self._in_function(node.id, function, depth)
            return self._constant(node.id)
        attribute = self_attribute(node)
        if attribute is not None and function is not None:
            owner = self.class_of(function)
            if owner is not None:
                return self._attribute(attribute, owner, depth)
        return None

    def binding(self, node: ast.Name) -> ast.expr | None:
        """The one value a name is bound to where it is used: a local assigned once in
        the enclosing function (not a parameter), else a module-level name assigned
        once; None when that is not known."""
        function = self.scope_of(node)
        if function is not None:
            if any(arg.arg == node.id for arg, _ in parameters(function)):
                return None
            assigned = [v for target, v in _local_assignments(function) if target == node.id]
            if assigned:
                return assigned[0] if len(assigned) == 1 else None
        return self._module_bindings.get(node.id)

    def _constant(self, name: str) -> Origin | None:
        constant = self.constants.get(name)
        value = number(constant)
        if constant is None or value is None:
            return None
        return Origin(value, constant, f"`{name}` =")

    def _in_function(self, name: str, function: Function, depth: int) -> Origin | None:
        for arg, default in parameters(function):
            if arg.arg != name:
                continue
            if _rebound(function, name):
                return None
            value = number(default)
            if default is None or value is None:
                return None
            return Origin(value, default, f"parameter `{name}` defaults to", (function, name))
        assigned = [value for target, value in _local_assignments(function) if target == name]
        if assigned:
            if len(assigned) == 1 and assigned[0] is not None:
                return self.origin(assigned[0], depth + 1)
            return None
        if any(isinstance(n, ast.Global | ast.Nonlocal) for n in ast.walk(function)):
            return None
        return self._constant(name)

    def _attribute(self, attribute: str, owner: ast.ClassDef, depth: int) -> Origin | None:
        """`self.<attribute>` set exactly once in the class's methods."""
        values: list[ast.expr | None] = []
        for method in owner.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(method):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if self_attribute(target) == attribute:
                            values.append(node.value if len(node.targets) == 1 else None)
                elif (
                    isinstance(node, ast.AnnAssign | ast.AugAssign)
                    and self_attribute(node.target) == attribute
                ):
                    values.append(node.value if isinstance(node, ast.AnnAssign) else None)
        if len(values) != 1 or values[0] is None:
            return None
        return self.origin(values[0], depth + 1)

    def callers(self, function: Function) -> Iterator[ast.Call]:
        """Calls of `function` in this file: `name(...)` for a module-level function,
        `Class(...)` for a class's `__init__`, `self.name(...)` in its class for another
        method."""
        owner = self.class_of(function)
        if owner is not None and function.name != "__init__":
            for node in ast.walk(owner):
                if isinstance(node, ast.Call) and self_attribute(node.func) == function.name:
                    yield node
            return
        if owner is not None:
            if self._classes.get(owner.name) is not owner:
                return
            name = owner.name
        elif self._functions.get(function.name) is function:
            name = function.name
        else:
            return
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == name
            ):
                yield node

    def argument_for(self, call: ast.Call, function: Function, name: str) -> ast.expr | None:
        """The expression `call` passes for `function`'s parameter `name`, if written."""
        for keyword in call.keywords:
            if keyword.arg == name:
                return keyword.value
        positional = [*function.args.posonlyargs, *function.args.args]
        names = [arg.arg for arg in positional]
        if self.class_of(function) is not None:
            names = names[1:]  # `self`
        if name in names:
            position = names.index(name)
            if position < len(call.args) and not any(
                isinstance(arg, ast.Starred) for arg in call.args[: position + 1]
            ):
                return call.args[position]
        return None

    def guarded_positive(self, node: ast.AST, subject: ast.expr) -> bool:
        """Whether `node` runs only where `subject` is set: inside `if subject > 0:`,
        `if subject:`, `if subject is not None:` or `X if subject > 0 else Y` (its
        `X`), within the same function."""
        text = ast.dump(subject)
        child: ast.AST = node
        current = self.parent.get(node)
        while current is not None and not isinstance(current, _SCOPES):
            if (
                isinstance(current, ast.If | ast.IfExp)
                and _in_body(current, child)
                and _asserts_set(current.test, text)
            ):
                return True
            child, current = current, self.parent.get(current)
        return False


def _in_body(node: ast.If | ast.IfExp, child: ast.AST) -> bool:
    if isinstance(node, ast.IfExp):
        return node.body is child
    return any(statement is child for statement in node.body)


def _asserts_set(test: ast.expr, subject: str) -> bool:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_asserts_set(value, subject) for value in test.values)
    if ast.dump(test) == subject:
        return True
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if ast.dump(left) == subject:
            if isinstance(op, ast.IsNot) and isinstance(right, ast.Constant):
                return right.value is None
            if isinstance(op, ast.Gt | ast.NotEq) and number(right) == 0:
                return True
        if ast.dump(right) == subject and isinstance(op, ast.Lt) and number(left) == 0:
            return True
    return False


def _assignments(statement: ast.stmt) -> Iterator[tuple[str, ast.expr | None]]:
    """Names a statement binds, with the value when it binds exactly that value."""
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if isinstance(target, ast.Name):
                yield target.id, statement.value if len(statement.targets) == 1 else None
            else:
                for inner in ast.walk(target):
                    if isinstance(inner, ast.Name):
                        yield inner.id, None
    elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        yield statement.target.id, statement.value
    elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
        yield statement.target.id, None
    elif isinstance(statement, ast.For | ast.AsyncFor | ast.With | ast.AsyncWith):
        targets = (
            [statement.target]
            if isinstance(statement, ast.For | ast.AsyncFor)
            else [item.optional_vars for item in statement.items if item.optional_vars]
        )
        for target in targets:
            for inner in ast.walk(target):
                if isinstance(inner, ast.Name):
                    yield inner.id, None


def _local_assignments(function: Function) -> Iterator[tuple[str, ast.expr | None]]:
    """Every binding of a name in a function's own body (not in nested scopes)."""
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, _SCOPES):
            continue
        if isinstance(node, ast.stmt):
            yield from _assignments(node)
        if isinstance(node, ast.NamedExpr):
            yield node.target.id, None
        stack.extend(ast.iter_child_nodes(node))


def _rebound(function: Function, name: str) -> bool:
    return any(target == name for target, _ in _local_assignments(function))
