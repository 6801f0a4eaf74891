"""Which model a name means where it is used, for rules that walk the standard library's
`ast` and ask the project index about it: shared by BN018 (AveragedModel), BN035
(fusable Conv→BN at export) and BN039 (per-sample gradients).

`ScopeWalk` is a mixin that keeps, during the rule's own walk, the function scope of the
current statement: its name in the project index ("<module>", "f", "Class.method"; None
for nested functions and methods of nested classes), the enclosing scope, the class whose
`self` it sees, and the names it binds (parameters and assignments). `ModelKinds` then
answers, once the walk is over, what the index knows about a model expression there: a
constructor or factory call through its layer spec, a name through its bindings in the
nearest function the index knows (when no nested function rebinds it), `self.<attr>`
through the class's layers. Unknown stays None: callers report only on "bn".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bnlint.index import ProjectIndex, related
from bnlint.index.ast_names import argument, dotted_name, module_chain
from bnlint.index.summary import LayerBuilder, Names, Positions

Json = dict[str, Any]

if TYPE_CHECKING:
    from bnlint.rule import RuleContext


@dataclass(eq=False)
class Scope:
    """A function (or the module) as the index names it; see the module docstring."""

    key: str | None
    parent: Scope | None
    owner: str | None
    bound: set[str] = field(default_factory=set)

    def enter(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, classes: list[str | None]
    ) -> Scope:
        """The scope of a function defined here inside `classes` (the classes around it
        since this scope began; None for a class the index does not name)."""
        key, owner = None, self.owner
        if classes:
            owner = classes[-1]
            if self.parent is None and len(classes) == 1 and owner:
                key = f"{owner}.{node.name}"
        elif self.parent is None:
            key = node.name
        scope = Scope(key, self, owner)
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [star for star in (arguments.vararg, arguments.kwarg) if star is not None]
        scope.bound.update(arg.arg for arg in every)
        return scope

    def indexed(self, name: str) -> Scope | None:
        """The nearest scope the index has facts for in which `name` means what it
        means here (None when a nested function binds it itself)."""
        scope: Scope | None = self
        while scope is not None and scope.key is None:
            if name in scope.bound:
                return None
            scope = scope.parent
        return scope

    def sees(self, binder: Scope, name: str) -> bool:
        """`name` here refers to the binding made in the enclosing scope `binder`."""
        scope: Scope | None = self
        while scope is not None and scope is not binder:
            if name in scope.bound:
                return False
            scope = scope.parent
        return scope is binder


class ScopeWalk:
    """Mixin for a `Rule` with `syntax = "ast"`: `self.scope` is the scope of the node
    being visited. A rule that defines `visit_Name` or `visit_FunctionDef` itself calls
    this class's method too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scope = Scope("<module>", None, None)
        # Class names around the current statement, reset inside each function: a
        # method is a scope of the index only when its class is at the top level.
        self._classes: list[str | None] = []
        self._saved_classes: list[list[str | None]] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        at_top = self.scope.parent is None and not self._classes
        self._classes.append(node.name if at_top else None)

    def leave_ClassDef(self, original_node: ast.ClassDef) -> None:
        self._classes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope = self.scope.enter(node, self._classes)
        self._saved_classes.append(self._classes)
        self._classes = []

    def leave_FunctionDef(self, original_node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        assert self.scope.parent is not None
        self.scope = self.scope.parent
        self._classes = self._saved_classes.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_FunctionDef(node)

    def leave_AsyncFunctionDef(self, original_node: ast.AsyncFunctionDef) -> None:
        self.leave_FunctionDef(original_node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.scope.bound.add(node.id)


class EvalWalk:
    """Mixin for a `Rule` with `syntax = "ast"`: `self.evaluated` collects the names the
    file puts in eval mode anywhere (`x.eval()`, `x.train(False)`, `x = Net().eval()`).
    The rule's `visit_Call` calls `self.note_eval(node)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.evaluated: set[str] = set()

    def visit_Assign(self, node: ast.Assign) -> None:
        if "eval" in module_chain(node.value)[1]:
            for target in node.targets:
                name = dotted_name(target)
                if name is not None:
                    self.evaluated.add(name)

    def note_eval(self, call: ast.Call) -> bool:
        """Record `x.eval()`/`x.train(False)`; True when `call` is one."""
        if mode_switch(call) != "eval":
            return False
        assert isinstance(call.func, ast.Attribute)
        receiver = dotted_name(call.func.value)
        if receiver is not None:
            self.evaluated.add(receiver)
        return True

    def in_eval(self, expression: ast.expr) -> bool:
        """`expression` (through `.eval()` chains), a part or an owner of it is put in
        eval somewhere in the file."""
        base, methods = module_chain(expression)
        key = dotted_name(base)
        return "eval" in methods or (
            key is not None and any(related(key, seen) for seen in self.evaluated)
        )


def mode_switch(call: ast.Call) -> str | None:
    """ "eval" for `x.eval()` / `x.train(False)`, "train" for another `x.train(...)`."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr == "eval":
        return "eval"
    if func.attr != "train":
        return None
    mode = argument(call, "mode", 0)
    return "eval" if isinstance(mode, ast.Constant) and mode.value is False else "train"


class ModelKinds:
    """What the project index knows about model expressions of one file."""

    def __init__(self, context: RuleContext, tree: ast.Module) -> None:
        self.path = context.path
        self.index: ProjectIndex
        self.index, summary = context.index.with_file(context.path, context.source)
        local = {
            statement.name
            for statement in tree.body
            if isinstance(statement, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        }
        names = Names(summary.imports, local, summary.aliases)
        self.builder = LayerBuilder(names, Positions(context.source))

    def kind(self, expression: ast.expr, scope: Scope) -> str | None:
        """ "bn", "frozen", "none" or None (unknown) for the module tree `expression`
        evaluates to in `scope` (through `.to()`/`.cuda()`/`.eval()` chains)."""
        base, _ = module_chain(expression)
        if isinstance(base, ast.Call):
            spec = self.builder.spec(base)
            return None if spec is None else self.index.spec_kind(self.path, spec)
        key = dotted_name(base)
        if key is None:
            return None
        indexed = scope.indexed(key.split(".")[0])
        kind = None if indexed is None else self.index.key_kind(self.path, str(indexed.key), key)
        layer = self._own_layer(key, scope) if kind is None else None
        return kind if layer is None else self.index.spec_kind(*layer)

    def specs(self, expression: ast.expr, scope: Scope) -> list[tuple[str, Json]]:
        """The layer specs (with the path they are read in) that may have built the
        module `expression` evaluates to: its constructor, or the constructors bound
        to its name in the function (through `name = other.to(...)` aliases) or at
        module level."""
        base, _ = module_chain(expression)
        if isinstance(base, ast.Call):
            spec = self.builder.spec(base)
            return [] if spec is None else [(self.path, spec)]
        key = dotted_name(base)
        if key is None:
            return []
        layer = self._own_layer(key, scope)
        if layer is not None:
            return [layer]
        indexed = scope.indexed(key.split(".")[0])
        facts = None if indexed is None else self.index.function_facts(self.path, str(indexed.key))
        if facts is None or key not in facts["bindings"]:
            facts = self.index.function_facts(self.path, "<module>")
        if facts is None:
            return []
        specs: list[tuple[str, Json]] = []
        seen = {key}
        todo = list(facts["bindings"].get(key, []))
        while todo:
            binding = todo.pop()
            if "spec" in binding:
                specs.append((self.path, binding["spec"]))
            elif "alias" in binding and binding["alias"] not in seen:
                seen.add(binding["alias"])
                todo.extend(facts["bindings"].get(binding["alias"], []))
        return specs

    def _own_layer(self, key: str, scope: Scope) -> tuple[str, Json] | None:
        """`self.<attr>` in a method: the layer the class (or a project base) builds."""
        owner = scope.owner
        if not (owner and key.startswith("self.") and key.count(".") == 1):
            return None
        summary = self.index.summaries.get(self.path)
        if summary is None or owner not in summary.classes:
            return None
        return self.index.class_layers(self.path, owner).get(key[5:])
