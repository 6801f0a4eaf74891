"""`model.training = False` instead of `model.eval()`; `train()` overrides that skip children.

## What it does
Checks for:

- an assignment of `True` or `False` to `<expr>.training`, such as
  `model.training = False` before an evaluation loop;
- a `train(self, mode=True)` (or `eval(self)`) override in an `nn.Module` that sets
  `self.training` but never calls `super().train(mode)`, never calls `.train(...)` on
  anything and never iterates `self.children()`/`self.modules()`.

Not reported: `self.training = mode` inside such an override (the override itself is
what is checked); a flag restored or copied from another value
(`module.training = was_training`); a submodule's flag tweaked after the code
already called `.eval()`/`.train()` on another object in the same function (the
deliberate "whole model in eval, this head's own flag on" trick); a flag followed by
a real `.eval()`/`.train()` on the same object before its next forward; a flag set on
each module of a loop over `.modules()` (it reaches every submodule; `.children()`
reaches only the direct children);
`self.training` in
classes that are not modules (no `forward`, no `nn.Module` base: validators, trainers,
datasets); receivers that are configuration objects (`args`, `cfg`, `opt`, ...);
and objects the code does not show to be modules. Outside a `train()` override the
receiver must be known as an `nn.Module` where the assignment is: `self` (or
`self.<attr>`) in a module class, or a name that the function (the class, for
`self.<attr>`) binds to a module (a `torch.nn` class, a torchvision/timm model, a
call with `pretrained=`/`weights=`, a module class of the file), calls like a module
(`model(x)`) or calls a module-only method on (`parameters()`, `state_dict()`,
`load_state_dict()`, `modules()`, ...), or a part of such a name (`model.head`).
`env.training = False` on a stable-baselines3 `VecNormalize` is that object's own
switch, not a module's mode.

## Why is this bad?
`training` is a plain attribute of one module. `nn.Module.train(mode)` is what sets it
on every submodule, so after `model.training = False` the model's BatchNorm layers
still normalise with batch statistics (and overwrite their running statistics with
evaluation data) and Dropout stays on. An override of `train()` that only assigns
`self.training` has the same effect on every `model.train()`/`model.eval()` call,
which is how frozen BNs stayed in training mode in `roytseng-tw/Detectron.pytorch#104`.

## Example
```python
model.training = False
with torch.no_grad():
    preds = model(images)


class Backbone(nn.Module):
    def train(self, mode=True):
        self.training = mode
        return self
```

## Use instead
```python
model.eval()
with torch.no_grad():
    preds = model(images)


class Backbone(nn.Module):
    def train(self, mode=True):
        super().train(mode)
        return self
```

## Fix safety
The fix replaces `x.training = False` with `x.eval()` (and `= True` with `x.train()`)
and is unsafe: it changes the mode of every submodule, which is the intended change,
but code that read the top-level flag on purpose would now behave differently. The
override finding has no autofix: where to re-freeze submodules after
`super().train(mode)` is the author's decision.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from bnlint.finding import Applicability, Severity
from bnlint.index.ast_names import dotted_name, resolve
from bnlint.index.module_evidence import (
    MODULE_BASES,
    is_known_module,
    module_classes,
    module_names,
)
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuleContext

MODE_METHODS = frozenset({"train", "eval"})
CHILD_ITERATORS = frozenset({"children", "modules", "named_children", "named_modules"})
# Objects that carry a `training` option, not a module's mode.
CONFIG_NAMES = frozenset(
    {"args", "opt", "opts", "cfg", "config", "conf", "hparams", "hp", "params", "options"}
    | {"settings", "flags", "FLAGS", "state", "namespace", "ns", "kwargs", "hyp"}
)
# The lines as Python's parser numbers them: only \r\n, \r and \n end a line.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class _Scope:
    name: str
    is_mode_override: bool
    node: ast.AST | None = None
    # Receivers (as written) of `.eval()` / `.train(...)` calls seen so far.
    mode_receivers: set[str] = field(default_factory=set)
    propagates: bool = False
    sets_own_flag: bool = False


@dataclass
class _Class:
    name: str
    is_module: bool
    node: ast.ClassDef | None = None


class _Source:
    """The text of ast nodes as written; the file is split into lines once, on first use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._lines: list[str] | None = None

    def _split(self) -> list[str]:
        if self._lines is None:
            self._lines = _LINE.findall(self.text)
        return self._lines

    def line_count(self) -> int:
        return len(self._split())

    def line(self, number: int) -> bytes:
        return self._split()[number - 1].encode("utf-8")

    def of(self, node: ast.expr) -> str:
        """`ast.get_source_segment` without re-splitting the file on every call."""
        first, last = node.lineno, node.end_lineno or node.lineno
        start, end = node.col_offset, node.end_col_offset or 0
        if first == last:
            return self.line(first)[start:end].decode("utf-8")
        parts = [self.line(first)[start:]]
        parts += [self.line(number) for number in range(first + 1, last)]
        parts.append(self.line(last)[:end])
        return b"".join(parts).decode("utf-8")

    def receiver(self, attribute: ast.Attribute) -> str:
        """`model` in `model.training`, as written; a parenthesised receiver keeps its
        parentheses (`(a or b).eval()` must not become `a or b.eval()`)."""
        value = attribute.value
        written = self.of(value)
        if (value.lineno, value.col_offset) != (attribute.lineno, attribute.col_offset):
            return f"({written})"
        return written

    def name_of(self, node: FunctionNode) -> ast.AST:
        """A node spanning the function's name (ast has none): where the finding points.
        Only spaces and backslash continuations separate `def` from the name, and the
        name is not a keyword, so its first occurrence after the node's start is it."""
        name = node.name.encode("utf-8")
        word = re.compile(rb"(?<![\w\x80-\xff])" + re.escape(name) + rb"(?![\w\x80-\xff])")
        offset = node.col_offset
        for number in range(node.lineno, min(node.lineno + 8, self.line_count() + 1)):
            found = word.search(self.line(number), offset)
            if found is not None:
                return ast.Name(
                    id=node.name,
                    lineno=number,
                    col_offset=found.start(),
                    end_lineno=number,
                    end_col_offset=found.end(),
                )
            offset = 0
        return node


def _bool_literal(node: ast.expr) -> bool | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    return None


class TrainingFlagAssigned(Rule):
    code = "BN008"
    name = "training-flag-assigned"
    severity = Severity.WARNING
    triggers = (".training =", ".training=", "def train(", "def eval(")
    # Every finding is an assignment to an attribute named `training`: `x.training = ...`,
    # also spelled `x . training  =`, `(x.training) = ...` or across a backslash.
    trigger_pattern = r"\.[\s\\]*training[\s\\)]*=(?!=)"
    autofix = "unsafe"
    syntax = "ast"

    VALID = (
        "model.eval()\n",
        "for module, was_training in saved:\n    module.training = was_training\n",
        "import torch.nn as nn\nclass Net(nn.Module):\n"
        "    def train(self, mode=True):\n        super().train(mode)\n"
        "        self.backbone.eval()\n        return self\n",
        "import torch.nn as nn\nclass Net(nn.Module):\n"
        "    def train(self, mode=True):\n        self.training = mode\n"
        "        for child in self.children():\n            child.train(mode)\n"
        "        return self\n",
        "class Validator:\n    def __init__(self):\n        self.training = True\n",
        "args.training = False\n",
        "def setup(model):\n    model.eval()\n    model[-1].training = True\n",
        "class Trainer:\n    def train(self):\n        self.training = True\n",
        "env = VecNormalize.load(path, env)\nenv.training = False\n",
    )
    INVALID = (
        Invalid(
            "model.training = False\nprint(model(x))\n",
            fixed="model.eval()\nprint(model(x))\n",
        ),
        Invalid(
            "def fit(net):\n    net.training = True  # back to training\n    return net(x)\n",
            fixed="def fit(net):\n    net.train()  # back to training\n    return net(x)\n",
        ),
        Invalid(
            "import torch.nn as nn\nclass Net(nn.Module):\n"
            "    def train(self, mode=True):\n        self.training = mode\n        return self\n"
        ),
        Invalid(
            "import torch.nn as nn\nclass Net(nn.Module):\n    def forward(self, x):\n"
            "        return x\n    def freeze(self):\n        self.training = False\n",
            fixed="import torch.nn as nn\nclass Net(nn.Module):\n    def forward(self, x):\n"
            "        return x\n    def freeze(self):\n        self.eval()\n",
        ),
    )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self.source = _Source(context.source)
        self.classes: list[_Class] = []
        self.scopes: list[_Scope] = [_Scope("<module>", is_mode_override=False)]
        # Innermost first: does the enclosing class body directly hold this function?
        self.function_owner: list[bool] = []
        self.child_loop_targets: list[str | None] = []
        # Targets of loops over `.modules()`/`.named_modules()`: every module in turn.
        self.all_module_loop_targets: list[str | None] = []
        # id(scope node) → the names that scope shows to be modules (computed on use).
        self._modules_in: dict[int, set[str]] = {}
        self._module_classes: frozenset[str] | None = None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        defines_forward = any(
            isinstance(statement, FunctionNode) and statement.name == "forward"
            for statement in node.body
        )
        module_base = any(resolve(base, self.aliases) in MODULE_BASES for base in node.bases)
        self.classes.append(_Class(node.name, defines_forward or module_base, node))
        self.function_owner.append(True)

    def leave_ClassDef(self, original_node: ast.ClassDef) -> None:
        self.classes.pop()
        self.function_owner.pop()

    def visit_FunctionDef(self, node: FunctionNode) -> None:
        in_class_body = bool(self.function_owner) and self.function_owner[-1]
        override = (
            in_class_body
            and self.classes[-1].is_module
            and node.name in MODE_METHODS
            and _mode_signature(node)
        )
        self.scopes.append(_Scope(node.name, is_mode_override=override, node=node))
        self.function_owner.append(False)

    def leave_FunctionDef(self, original_node: FunctionNode) -> None:
        scope = self.scopes.pop()
        self.function_owner.pop()
        if scope.is_mode_override and scope.sets_own_flag and not scope.propagates:
            owner = self.classes[-1].name
            self.report(
                self.source.name_of(original_node),
                message=(
                    f"`{owner}.{scope.name}()` sets only `self.training`: its submodules "
                    "(BatchNorm, Dropout) keep their mode on every train()/eval() call"
                ),
                suggestion=(
                    f"call `super().train(mode)` in `{owner}.{scope.name}` instead of "
                    "assigning `self.training`, then re-freeze what must stay in eval"
                ),
            )

    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        iterated = node.iter
        target: str | None = None
        if (
            isinstance(iterated, ast.Call)
            and isinstance(iterated.func, ast.Attribute)
            and iterated.func.attr in CHILD_ITERATORS
        ):
            self.scopes[-1].propagates = True
            loop_target = node.target
            if isinstance(loop_target, ast.Tuple) and loop_target.elts:
                loop_target = loop_target.elts[-1]
                if isinstance(loop_target, ast.Starred):
                    loop_target = loop_target.value
            target = dotted_name(loop_target)
        every = (
            isinstance(iterated, ast.Call)
            and isinstance(iterated.func, ast.Attribute)
            and iterated.func.attr in ("modules", "named_modules")
        )
        self.child_loop_targets.append(target)
        self.all_module_loop_targets.append(target if every else None)

    def leave_For(self, original_node: ast.For | ast.AsyncFor) -> None:
        self.child_loop_targets.pop()
        self.all_module_loop_targets.pop()

    visit_AsyncFor = visit_For
    leave_AsyncFor = leave_For

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in MODE_METHODS:
            scope = self.scopes[-1]
            scope.mode_receivers.add(self.source.receiver(func))
            if func.attr == "train" or _is_super_call(func.value):
                scope.propagates = True

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Attribute) and target.attr == "training":
                self._check_assignment(node, target)

    def _check_assignment(self, node: ast.Assign, attribute: ast.Attribute) -> None:
        scope = self.scopes[-1]
        receiver = self.source.receiver(attribute)
        if scope.is_mode_override and receiver == "self":
            scope.sets_own_flag = True
            return
        if scope.is_mode_override and receiver in self.child_loop_targets:
            return
        if receiver in self.all_module_loop_targets:
            return  # `for m in model.modules(): m.training = ...` reaches every submodule
        value = _bool_literal(node.value)
        if value is None:
            return  # a flag restored or copied from elsewhere
        dotted = dotted_name(attribute.value)
        if dotted is not None and CONFIG_NAMES & set(dotted.split(".")):
            return
        if receiver == "self" and not (self.classes and self.classes[-1].is_module):
            return
        if not scope.is_mode_override and scope.mode_receivers - {receiver, "super()"}:
            return  # the mode was set with eval()/train(); this flag is tweaked on purpose
        if not scope.is_mode_override and not self._known_module(attribute.value):
            return  # `env.training = False` on a VecNormalize: not every flag is a module's
        if not scope.is_mode_override and self._mode_call_comes_first(node, attribute.value):
            return  # a real `.eval()`/`.train()` sets the mode before the next use
        method = "train()" if value else "eval()"
        replacement = f"{receiver}.{method}"
        fix = None
        if len(node.targets) == 1:
            fix = PendingFix(
                Applicability.UNSAFE,
                f"Replace the assignment with `{replacement}`",
                (NodeEdit(node, "replace", replacement),),
            )
        self.report(
            attribute,
            message=(
                f"`{receiver}.training = {value}` sets the flag of `{receiver}` only: "
                "its BatchNorm and Dropout submodules stay in "
                f"{'eval' if value else 'training'} mode"
            ),
            suggestion=f"call `{replacement}` instead, which sets the mode of every submodule",
            fix=fix,
        )

    def _known_module(self, receiver: ast.expr) -> bool:
        """The code shows `receiver` to be an `nn.Module` (see `module_evidence`):
        `self` in a module class, or a name the function (the class, for
        `self.<attr>`) binds to a module, calls like one or calls module-only methods
        on."""
        key = _receiver_key(receiver)
        if key is None:
            return False
        in_module_class = bool(self.classes) and self.classes[-1].is_module
        if key == "self":
            return in_module_class
        scope: ast.AST = self.context.tree
        if key.startswith("self.") and self.classes and self.classes[-1].node is not None:
            scope = self.classes[-1].node
        else:
            for outer in reversed(self.scopes):
                if outer.node is not None:
                    scope = outer.node
                    break
        if key.startswith("self.") and in_module_class:
            return True  # an attribute of a module: a submodule
        if id(scope) not in self._modules_in:
            if self._module_classes is None:
                self._module_classes = module_classes(self.context.tree, self.aliases)
            self._modules_in[id(scope)] = module_names(scope, self.aliases, self._module_classes)
        return is_known_module(key, self._modules_in[id(scope)])

    def _mode_call_comes_first(self, assignment: ast.Assign, receiver: ast.expr) -> bool:
        """After the assignment, the next call that runs the receiver (`model(x)`) or
        sets its mode is a `.eval()`/`.train(...)` on it: the flag never matters."""
        key = _receiver_key(receiver)
        scope = next((s.node for s in reversed(self.scopes) if s.node is not None), None)
        if key is None or scope is None:
            return False
        after = (assignment.end_lineno or assignment.lineno, assignment.end_col_offset or 0)
        uses: list[tuple[int, int, bool]] = []
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if dotted_name(func) == key:
                uses.append((node.lineno, node.col_offset, False))
            elif (
                isinstance(func, ast.Attribute)
                and func.attr in MODE_METHODS
                and _receiver_key(func.value) == key
            ):
                uses.append((node.lineno, node.col_offset, True))
        later = sorted(use for use in uses if (use[0], use[1]) > after)
        return bool(later) and later[0][2]


def _receiver_key(node: ast.expr) -> str | None:
    """`model.layers` for `model.layers[0]`: the dotted name under subscripts."""
    while isinstance(node, ast.Subscript):
        node = node.value
    return dotted_name(node)


def _is_super_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def _mode_signature(node: FunctionNode) -> bool:
    """`train(self, mode=True)` / `train(self, mode: bool = True)` / `eval(self)`: the
    signature of `nn.Module`'s mode methods, not a trainer's `train(self, epochs)`."""
    params = node.args.args
    if not params or params[0].arg != "self":
        return False
    rest = params[1:]
    if node.name == "eval":
        return not rest
    # Defaults belong to the last parameters: the only one after `self` has one if any.
    return len(rest) == 1 and (rest[0].arg == "mode" or bool(node.args.defaults))
