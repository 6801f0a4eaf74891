"""Which BatchNorm models a call receives in training mode, decided from the calling
function's own code: shared by BN009 (export, trace, save) and BN037 (summary and FLOP
utilities).

A model is *known to train* at a call when, in the same function (or at module level):

- its name was bound by a constructor or factory call (`Net()`, `resnet50(weights=...)`,
  `timm.create_model("resnet50")`, a project helper that returns a fresh model), or
  derived from such a name (`net.to(device)`, `nn.DataParallel(net)`,
  `torch.compile(net)`, `copy.deepcopy(net)`), and the project index knows that name as
  a BatchNorm model;
- on every path to the call, nothing could have switched it to eval: no
  `.eval()`/`.train(False)` (or `.training = False`) on it, on a part of it or on a
  name bound to the same object; no project helper that leaves it in eval; and no call
  of unknown effect that receives it (a library function other than torch's, a helper
  the index cannot follow, a method of the model bnlint does not know: after those the
  mode is unknown). A `.train()` call puts it back into training mode.

Everything else is unknown and yields nothing: parameters (the caller decides the
mode), attributes such as `self.model`, modules loaded from disk (`torch.load`,
`*load*` helpers: the pickled mode is unknown), and code in nested functions. A named
part of a followed model (`model.depth_net`) is in the mode of the whole, and a
BatchNorm model when the index knows that attribute of the model's class as one.
Branches are joined conservatively: a model trains after an `if` only if it trains on
both sides; a loop body may run zero times, except in a
training loop (one that takes optimizer steps or calls something named for training).
Only functions whose text names one of the calls a rule asks about are walked.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bnlint.index import ProjectIndex, mode_before, related
from bnlint.index.ast_names import import_aliases, is_local_bn_model, resolve
from bnlint.index.functions import key_of
from bnlint.index.kinds import factory_kind
from bnlint.index.modes import part_kind
from bnlint.index.module_evidence import MODULE_ONLY_METHODS
from bnlint.index.project import argument_key, call_parameters
from bnlint.index.summary import Positions

Json = dict[str, Any]
# A followed model's mode; "unknown" after a call bnlint cannot follow (a later
# `.train()`/`.eval()` makes it known again).
Mode = Literal["train", "eval", "unknown"]
# What a call does to a model's mode: sets it, or leaves it as it was (None).
Effect = Mode | None

# Methods that return the module they are called on (`model = net.cuda().eval()`).
SAME_MODULE_METHODS = frozenset(
    {
        "to",
        "cuda",
        "cpu",
        "float",
        "half",
        "double",
        "bfloat16",
        "train",
        "eval",
        "requires_grad_",
        "to_empty",
    }
)
# Methods of a model that never change its mode: the module-only methods (but `apply`,
# whose function may call `eval()`), `forward`, and tensor-like reads.
_MODE_KEEPING_METHODS = (
    SAME_MODULE_METHODS
    | (MODULE_ONLY_METHODS - {"apply"})
    | {
        "forward",
        "get_parameter",
        "share_memory",
        "size",
        "numel",
        "dim",
        "item",
        "tolist",
        "detach",
        "clone",
        "data",
    }
)
# Wrappers whose result is the same module object (mode calls on it reach the model).
_SAME_OBJECT_WRAPPERS = frozenset(
    {
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
        "torch.compile",
        "torch.nn.SyncBatchNorm.convert_sync_batchnorm",
    }
)
_COPIES = frozenset({"copy.deepcopy"})
# `LitModel.load_from_checkpoint(path)`: a classmethod that constructs the class (in
# training mode, like any new module) and loads the checkpoint's weights into it.
CHECKPOINT_CONSTRUCTOR = "load_from_checkpoint"
# Libraries whose functions, given a model, never leave it in another mode: torch's own
# (`torch.onnx.export` restores the mode it switched), and the summary/FLOP utilities
# that run in the current mode or restore it (thop, torchinfo).
_MODE_KEEPING_LIBRARIES = frozenset(
    {
        "torch",
        "copy",
        "logging",
        "pprint",
        "torchsummary",
        "torchsummaryX",
        "torchscan",
        "torchinfo",
        "thop",
        "fvcore",
        "torchviz",
    }
)
_BUILTINS = frozenset(
    {
        "print",
        "len",
        "str",
        "repr",
        "format",
        "type",
        "id",
        "hash",
        "isinstance",
        "hasattr",
        "getattr",
        "setattr",
        "vars",
        "dir",
        "sum",
        "list",
        "tuple",
        "dict",
        "set",
        "sorted",
        "enumerate",
        "zip",
        "iter",
        "next",
        "callable",
    }
)
# Methods of other objects (loggers, writers, EMA helpers, lists) that receive a model
# without changing its mode.
_MODE_KEEPING_RECEIVERS = frozenset(
    {
        "info",
        "debug",
        "warning",
        "error",
        "exception",
        "log",
        "write",
        "print",
        "append",
        "extend",
        "add",
        "update",
        "watch",
        "add_graph",
        "add_text",
        "set_description",
        "set_postfix",
    }
)
_TRAINING_STEPS = frozenset({"backward", "step"})
_DEPTH = 4

if TYPE_CHECKING:
    from bnlint.rule import RuleContext


@dataclass(frozen=True)
class TrainingUse:
    """A call that receives a BatchNorm model known to be in training mode."""

    call: ast.Call
    statement: ast.stmt
    model: str  # the model's local name, as written at the call
    what: str  # what the call does with it, in the rule's words (`Used.what`)
    in_training_loop: bool  # inside a loop whose body calls backward()/step()


@dataclass(frozen=True)
class Used:
    """A call the rule asks about, and the model expression it receives."""

    model: ast.expr
    what: str
    # The call itself puts the model into training mode (ONNX `TrainingMode.TRAINING`):
    # a BN model bound here is reported whatever mode it was in.
    forces_training: bool = False


@dataclass(frozen=True)
class Site:
    """Where a call is: the file's imports and the `with` statements around the call."""

    aliases: Mapping[str, str]
    withs: Sequence[ast.With | ast.AsyncWith]

    def qualified(self, node: ast.expr) -> str | None:
        return resolve(node, self.aliases)


# Given a call and its site: the model it receives when it is a call the rule asks
# about, else None.
Subject = Callable[[ast.Call, Site], Used | None]


def training_bn_uses(
    context: RuleContext, subject: Subject, words: re.Pattern[str]
) -> Iterator[TrainingUse]:
    """Every call `subject` picks out whose model is a BatchNorm model known to be in
    training mode there, in source order. Only functions whose text matches `words`
    (the names of the calls `subject` picks out) are walked."""
    tree = context.tree
    lines = context.source.splitlines()
    files: _File | None = None
    found: list[TrainingUse] = []
    for scope, body in _scopes(tree):
        statements = [s for s in body if scope != "<module>" or not _is_definition(s)]
        if not any(words.search("\n".join(_text(lines, s))) for s in statements):
            continue
        if files is None:
            index, _ = context.index.with_file(context.path, context.source)
            aliases = import_aliases(tree)
            files = _File(context.path, index, aliases, Positions(context.source))
        # Module-level names that a function of the file switches (`model.eval()` on a
        # global inside `evaluate()`): any call may do it, so they are not followed.
        untracked = frozenset(_switched_names(tree)) if scope == "<module>" else frozenset()
        found.extend(_Walk(files, scope, subject, untracked).run(body))
    found.sort(key=lambda use: (use.call.lineno, use.call.col_offset))
    yield from found


def _scopes(tree: ast.Module) -> Iterator[tuple[str, list[ast.stmt]]]:
    """(the index's name of the scope, its statements): module code, top-level functions
    and methods of top-level classes. Nested functions are not judged."""
    yield "<module>", tree.body
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            yield statement.name, statement.body
        elif isinstance(statement, ast.ClassDef):
            for member in statement.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{statement.name}.{member.name}", member.body


def _is_definition(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)


def _text(lines: list[str], statement: ast.stmt) -> list[str]:
    return lines[statement.lineno - 1 : statement.end_lineno]


def _switched_names(tree: ast.Module) -> Iterator[str]:
    """Global names a function or method of the file calls `.eval()`/`.train()` on."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        local = {a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]}
        declared_global: set[str] = set()
        for inner in ast.walk(node):
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                local.add(inner.id)
            elif isinstance(inner, ast.Global):
                declared_global.update(inner.names)
        for inner in ast.walk(node):
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Attribute)
                and inner.func.attr in ("eval", "train")
            ):
                key = key_of(inner.func.value)
                root = key.split(".")[0] if key is not None else None
                if root is not None and (root not in local or root in declared_global):
                    yield root


@dataclass(frozen=True)
class _File:
    path: str
    index: ProjectIndex
    aliases: dict[str, str]
    positions: Positions


@dataclass
class _Model:
    mode: Mode
    family: int  # names bound to the same module object share a family
    built: ast.Call | None = None  # the constructor or factory call, when seen here

    def copy(self) -> _Model:
        return _Model(self.mode, self.family, self.built)


@dataclass
class _State:
    """The models known at one point of a function: name → mode and object."""

    models: dict[str, _Model] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State({name: model.copy() for name, model in self.models.items()})

    def mode_of(self, name: str) -> Mode | None:
        model = self.models.get(name)
        return model.mode if model else None

    def set_mode(self, name: str, mode: Mode) -> None:
        """Set the mode of the object `name` is bound to, under all its names."""
        model = self.models.get(name)
        if model is None:
            return
        for other in self.models.values():
            if other.family == model.family:
                other.mode = mode

    def join(self, other: _State) -> _State:
        """What is known after either of two paths: a name bound to the same object on
        both, in the same mode or else "unknown"."""
        joined = _State()
        for name, model in self.models.items():
            theirs = other.models.get(name)
            if theirs is not None and theirs.family == model.family:
                joined.models[name] = model.copy()
                if theirs.mode != model.mode:
                    joined.models[name].mode = "unknown"
        return joined


class _Walk:
    """One function's statements in order, with the models' modes along the way."""

    def __init__(
        self, file: _File, scope: str, subject: Subject, untracked: frozenset[str]
    ) -> None:
        self.file = file
        self.scope = scope
        self.subject = subject
        facts = file.index.function_facts(file.path, scope)
        self.facts: Json | None = facts
        self.calls: dict[tuple[int, ...], Json] = {}
        if facts is not None:
            for event in facts["events"]:
                if event["k"] == "call":
                    self.calls[tuple(event["pos"])] = event
        self.untracked = set(untracked)
        self.withs: list[ast.With | ast.AsyncWith] = []
        self.loops: list[bool] = []
        self.statement: ast.stmt | None = None
        # id(call) → its use, or None when the model is not known to train there; a
        # loop body is walked twice and the second walk has the last word.
        self.uses: dict[int, TrainingUse | None] = {}
        self._families = 0

    def run(self, body: list[ast.stmt]) -> list[TrainingUse]:
        self._block(body, _State())
        return [use for use in self.uses.values() if use is not None]

    def _is_bn(self, name: str, model: _Model) -> bool:
        """The project index knows `name` as a BatchNorm model here, or (for functions
        the index keeps no facts of) the call that built it is a known BN model."""
        index, path = self.file.index, self.file.path
        bindings = (self.facts or {}).get("bindings", {}).get(name)
        if not bindings:
            return model.built is not None and self._built_kind(model.built) == "bn"
        if index.key_kind(path, self.scope, name) != "bn":
            return False
        # `model = Net()` then `model = MLP()`: the index joins both bindings; a binding
        # known to hold no trainable BN leaves the question open.
        return all(
            index.spec_kind(path, binding["spec"]) in ("bn", None)
            for binding in bindings
            if "spec" in binding
        )

    def _built_kind(self, call: ast.Call) -> str | None:
        """A library factory (`resnet50()`, `timm.create_model("resnet50")`), a BN layer
        or `nn.Sequential` holding one, or a class of this file, by the index."""
        qualified = resolve(call.func, self.file.aliases)
        if qualified is not None:
            first = call.args[0] if call.args else None
            literal = first.value if isinstance(first, ast.Constant) else None
            kind = factory_kind(qualified, literal)
            if kind is not None:
                return None if any(k.arg == "norm_layer" for k in call.keywords) else kind
            return "bn" if is_local_bn_model(call, self.file.aliases, set()) else None
        summary = self.file.index.summaries.get(self.file.path)
        if isinstance(call.func, ast.Name) and summary and call.func.id in summary.classes:
            return self.file.index.class_kind(self.file.path, call.func.id)
        return None

    # -- statements -------------------------------------------------------------------
    def _block(self, body: list[ast.stmt], state: _State) -> _State:
        for statement in body:
            state = self._statement(statement, state)
        return state

    def _statement(self, statement: ast.stmt, state: _State) -> _State:
        self.statement = statement
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self._forget_mode_calls(statement, state)
        elif isinstance(statement, ast.Assign):
            self._expression(statement.value, state)
            model = self._origin(statement.value, state)
            for target in statement.targets:
                self._bind(target, model, state)
        elif isinstance(statement, ast.AnnAssign):
            if statement.value is not None:
                self._expression(statement.value, state)
                self._bind(statement.target, self._origin(statement.value, state), state)
        elif isinstance(statement, ast.AugAssign):
            self._expression(statement.value, state)
            self._unbind(statement.target, state)
        elif isinstance(statement, ast.If):
            self._expression(statement.test, state)
            after_body = self._block(statement.body, state.copy())
            after_else = self._block(statement.orelse, state.copy())
            return after_body.join(after_else)
        elif isinstance(statement, ast.For | ast.AsyncFor):
            self._expression(statement.iter, state)
            return self._loop(statement, state)
        elif isinstance(statement, ast.While):
            self._expression(statement.test, state)
            return self._loop(statement, state)
        elif isinstance(statement, ast.With | ast.AsyncWith):
            return self._with(statement, state)
        elif isinstance(statement, ast.Try | ast.TryStar):
            return self._try(statement, state)
        elif isinstance(statement, ast.Match):
            self._expression(statement.subject, state)
            joined = state
            for case in statement.cases:
                joined = joined.join(self._block(case.body, state.copy()))
            return joined
        elif isinstance(statement, ast.Delete):
            for target in statement.targets:
                self._unbind(target, state)
        elif isinstance(statement, ast.Global | ast.Nonlocal):
            self.untracked.update(statement.names)
            for name in statement.names:
                state.models.pop(name, None)
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            for alias in statement.names:
                state.models.pop((alias.asname or alias.name).split(".")[0], None)
        else:
            for child in ast.iter_child_nodes(statement):
                if isinstance(child, ast.expr):
                    self._expression(child, state)
        return state

    def _loop(self, loop: ast.For | ast.AsyncFor | ast.While, state: _State) -> _State:
        """The body runs any number of times: walked from the state before the loop, then
        again from what either leaves (the second walk's uses count). A training loop
        (one that takes optimizer steps) is taken to run at least once; any other loop
        may be skipped."""
        trains = _trains(loop.body)
        self.loops.append(trains)
        entry = state.copy()
        if isinstance(loop, ast.For | ast.AsyncFor):
            self._unbind(loop.target, entry)
        once = self._block(loop.body, entry.copy())
        any_start = entry.join(once)
        again = self._block(loop.body, any_start.copy())
        self.loops.pop()
        after = once.join(again) if trains else any_start.join(again)
        return self._block(loop.orelse, after)

    def _with(self, statement: ast.With | ast.AsyncWith, state: _State) -> _State:
        for item in statement.items:
            self._expression(item.context_expr, state)
            if item.optional_vars is not None:
                self._unbind(item.optional_vars, state)
        self.withs.append(statement)
        state = self._block(statement.body, state)
        self.withs.pop()
        return state

    def _try(self, statement: ast.Try | ast.TryStar, state: _State) -> _State:
        body = self._block(statement.body, state.copy())
        handler_entry = state.join(body)
        after = self._block(statement.orelse, body)
        for handler in statement.handlers:
            after = after.join(self._block(handler.body, handler_entry.copy()))
        return self._block(statement.finalbody, after)

    def _forget_mode_calls(self, definition: ast.AST, state: _State) -> None:
        """A nested function or class may switch a model whenever it is called."""
        for node in ast.walk(definition):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("eval", "train")
            ):
                key = key_of(node.func.value)
                if key is not None:
                    state.set_mode(key.split(".")[0], "unknown")

    # -- bindings ---------------------------------------------------------------------
    def _bind(self, target: ast.expr, model: _Model | None, state: _State) -> None:
        """Bind `target` to `model` (None: a value the walk does not follow)."""
        if isinstance(target, ast.Name):
            state.models.pop(target.id, None)
            if model is not None and target.id not in self.untracked:
                state.models[target.id] = model.copy()
        elif isinstance(target, ast.Attribute) and target.attr == "training":
            # `model.training = False` flips only the top flag (BN008 reports that line);
            # take the author's intent, as the index does.
            owner = key_of(target.value)
            if owner is not None:
                state.set_mode(owner.split(".")[0], "eval")
        else:
            self._expression(target, state)
            self._unbind(target, state)

    def _unbind(self, target: ast.expr, state: _State) -> None:
        """Forget the names a target binds (`a`, `a, *b`; not `a.x` or `a[i]`)."""
        if isinstance(target, ast.Name):
            state.models.pop(target.id, None)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._unbind(element, state)
        elif isinstance(target, ast.Starred):
            self._unbind(target.value, state)

    def _origin(self, value: ast.expr, state: _State) -> _Model | None:
        """The model a name is bound to, when it is one the walk can follow."""
        base, chained = _strip_chain(value)
        model: _Model | None = None
        if isinstance(base, ast.Name) and base.id in state.models:
            known = state.models[base.id]
            model = known.copy()
        elif isinstance(base, ast.Call):
            model = self._called_origin(base, state)
        if model is not None and chained is not None:
            model.mode = chained
        return model

    def _called_origin(self, call: ast.Call, state: _State) -> _Model | None:
        qualified = resolve(call.func, self.file.aliases)
        if (qualified in _SAME_OBJECT_WRAPPERS or qualified in _COPIES) and call.args:
            inner = self._origin(call.args[0], state)
            if inner is not None and qualified in _COPIES:
                inner.family = self._new_family()
            return inner
        written = key_of(call.func)
        if written is None or written.split(".")[0] in state.models:
            return None  # a forward or another method of a model: not a module
        if written.rsplit(".", 1)[-1] == CHECKPOINT_CONSTRUCTOR:
            # Lightning builds the class anew and loads its weights: training mode.
            return _Model("train", self._new_family(), call)
        if "load" in written.rsplit(".", 1)[-1].lower():
            # A module unpickled in whatever mode it was saved.
            return _Model("unknown", self._new_family())
        target = self._project_function(call)
        if target is not None:
            return _Model(self._returned_mode(*target), self._new_family())
        # A constructor or factory: modules are built in training mode.
        return _Model("train", self._new_family(), call)

    def _new_family(self) -> int:
        self._families += 1
        return self._families

    # -- expressions ------------------------------------------------------------------
    def _expression(self, node: ast.expr, state: _State) -> None:
        """Every call inside `node`, inner calls first (evaluation order)."""
        if isinstance(node, ast.Lambda):
            self._forget_mode_calls(node, state)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expression(child, state)
            elif isinstance(child, ast.keyword | ast.comprehension):
                for inner in ast.iter_child_nodes(child):
                    if isinstance(inner, ast.expr):
                        self._expression(inner, state)
        if isinstance(node, ast.NamedExpr):
            self._unbind(node.target, state)
        elif isinstance(node, ast.Call):
            self._judge(node, state)
            self._effect(node, state)

    def _judge(self, call: ast.Call, state: _State) -> None:
        used = self.subject(call, Site(self.file.aliases, tuple(self.withs)))
        if used is None:
            return
        base, chained = _strip_chain(used.model)
        key = key_of(base)  # `model.module` (DataParallel) is `model`
        name = key if key is not None and "." not in key else None
        model = state.models.get(name) if name is not None and chained is None else None
        trains = model is not None and (model.mode == "train" or used.forces_training)
        if model is None and key is not None and chained is None and "." in key:
            # A named part of a model followed here (`model.depth_net`): in the mode
            # of the whole, which a mode call on any part makes unknown.
            whole = state.models.get(key.split(".")[0])
            trains_whole = whole is not None and (whole.mode == "train" or used.forces_training)
            if trains_whole and part_kind(self.file.index, self.file.path, self.scope, key) == "bn":
                assert self.statement is not None
                self.uses[id(call)] = TrainingUse(
                    call, self.statement, key, used.what, any(self.loops)
                )
                return
        if trains and model is not None and name is not None and self._is_bn(name, model):
            assert self.statement is not None
            self.uses[id(call)] = TrainingUse(
                call, self.statement, name, used.what, any(self.loops)
            )
        else:
            self.uses[id(call)] = None

    def _effect(self, call: ast.Call, state: _State) -> None:
        """What a call does to the modes of the models it touches."""
        func = call.func
        if isinstance(func, ast.Attribute):
            receiver = key_of(func.value)
            if receiver is not None and receiver.split(".")[0] in state.models:
                self._method(receiver, func.attr, call, state)
        passed = [
            key.split(".")[0]
            for argument in [*call.args, *(k.value for k in call.keywords)]
            for key in [key_of(_strip_chain(_unstarred(argument))[0])]
            if key is not None and key.split(".")[0] in state.models
        ]
        if not passed:
            return
        event = self.calls.get(tuple(self.file.positions.of(call)))
        target = self._project_function(call)
        if target is None or event is None:
            if not self._keeps_mode(call):
                for name in passed:
                    state.set_mode(name, "unknown")
            return
        for name in passed:
            mode = self._mode_after_call(*target, event, name)
            if mode == "unknown":
                state.set_mode(name, "unknown")
            elif mode is not None:
                state.set_mode(name, mode)

    def _method(self, receiver: str, method: str, call: ast.Call, state: _State) -> None:
        root = receiver.split(".")[0]
        whole = receiver == root
        mode: Mode | None = None
        if method == "eval":
            mode = "eval"
        elif method == "train":
            flag = _train_flag(call)
            mode = "train" if flag is True else "eval" if flag is False else "unknown"
        if mode is not None:
            # On a part of the model (`model.backbone.eval()`) the whole is mixed.
            state.set_mode(root, mode if whole or state.mode_of(root) == mode else "unknown")
        elif method not in _MODE_KEEPING_METHODS and not method.endswith("_"):
            # `model.fuse()`, `model.switch_to_deploy()`: bnlint cannot see inside.
            state.set_mode(root, "unknown")

    def _keeps_mode(self, call: ast.Call) -> bool:
        func = call.func
        if isinstance(func, ast.Name) and func.id in _BUILTINS:
            return func.id not in self.file.aliases
        qualified = resolve(func, self.file.aliases)
        if qualified is not None and qualified.split(".")[0] in _MODE_KEEPING_LIBRARIES:
            return True
        return isinstance(func, ast.Attribute) and func.attr in _MODE_KEEPING_RECEIVERS

    # -- project functions ------------------------------------------------------------
    def _project_function(self, call: ast.Call) -> tuple[str, str] | None:
        event = self.calls.get(tuple(self.file.positions.of(call)))
        if event is None:
            return None
        return self.file.index.resolve_function(self.file.path, self.scope, event["fn"])

    def _mode_after_call(self, path: str, function: str, event: Json, name: str) -> Effect:
        facts = self.file.index.function_facts(path, function)
        if facts is None:
            return "unknown"
        params = call_parameters(facts)
        result: Effect = None
        matched = False
        for parameter in params:
            passed = argument_key(event, params, parameter)
            if passed is None or not related(passed, name):
                continue
            matched = True
            mode = self._leaves(path, function, parameter, 0)
            if mode is not None:
                result = mode
        # Passed in a way no parameter accounts for (`f(model.cuda())`, `*args`).
        return result if matched else "unknown"

    def _leaves(self, path: str, function: str, parameter: str, depth: int) -> Effect:
        """The mode a project function leaves the object passed to `parameter` in:
        "eval"/"train", None when it does not change it, "unknown" when it hands the
        object on to code the index cannot follow."""
        index = self.file.index
        final = index.final_mode(path, function, parameter)
        if final in ("eval", "train"):
            return "eval" if final == "eval" else "train"
        facts = index.function_facts(path, function)
        if facts is None or depth > _DEPTH:
            return "unknown"
        for event in facts["events"]:
            if event["k"] != "call":
                continue
            keys = [*event.get("args", []), *event.get("kwargs", {}).values()]
            if not any(key is not None and related(key, parameter) for key in keys):
                continue
            callee = index.resolve_function(path, function, event["fn"])
            inner = index.function_facts(*callee) if callee is not None else None
            if callee is None or inner is None:
                return "unknown"
            params = call_parameters(inner)
            for inner_parameter in params:
                passed = argument_key(event, params, inner_parameter)
                if (
                    passed is not None
                    and related(passed, parameter)
                    and self._leaves(*callee, inner_parameter, depth + 1) == "unknown"
                ):
                    return "unknown"
        return None

    def _returned_mode(self, path: str, function: str) -> Mode:
        """The mode of the model a project helper returns: "train" for a freshly built
        one, "eval" when the helper switched it."""
        index = self.file.index
        facts = index.function_facts(path, function)
        if facts is None or not facts["returns"]:
            return "unknown"
        modes: set[Mode] = set()
        for returned in facts["returns"]:
            if "spec" in returned:
                modes.add("train")
                continue
            key = returned["key"]
            bindings = facts["bindings"].get(key, [])
            if key.split(".")[0] in facts["params"] or not bindings:
                return "unknown"
            if not all("spec" in binding for binding in bindings):
                return "unknown"
            if self._leaves(path, function, key, 0) == "unknown":
                return "unknown"
            events = facts["events"]
            mode = mode_before(index, path, function, events, len(events), key)
            modes.add("eval" if mode == "eval" else "train")
        return modes.pop() if len(modes) == 1 else "unknown"


def _trains(body: list[ast.stmt]) -> bool:
    """A loop body that takes training steps: `backward()`/`step()`, or a call of
    something named for training (`train_one_epoch(...)`, `trainer.train()`)."""
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if isinstance(node.func, ast.Name):
                callee = node.func.id
            if callee in _TRAINING_STEPS or "train" in callee.lower():
                return True
    return False


def _strip_chain(node: ast.expr) -> tuple[ast.expr, Mode | None]:
    """`net.cuda().eval()` → (`net`, "eval"): the module under same-module calls, and the
    mode the outermost mode call in the chain leaves it in (None: no mode call)."""
    mode: Mode | None = None
    while (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SAME_MODULE_METHODS
    ):
        if mode is None and node.func.attr == "eval":
            mode = "eval"
        elif mode is None and node.func.attr == "train":
            flag = _train_flag(node)
            mode = "train" if flag is True else "eval" if flag is False else "unknown"
        node = node.func.value
    return node, mode


def _train_flag(call: ast.Call) -> bool | None:
    """The literal mode of `.train(...)`: True without arguments, None when computed."""
    values = [*call.args, *(k.value for k in call.keywords if k.arg == "mode")]
    if not values:
        return None if call.keywords else True
    value = values[0]
    return (
        value.value if isinstance(value, ast.Constant) and isinstance(value.value, bool) else None
    )


def _unstarred(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Starred) else node
