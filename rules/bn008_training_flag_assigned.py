"""`model.training = False` instead of `model.eval()`, and `train()` overrides that
only set `self.training`.

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
deliberate "whole model in eval, this head's own flag on" trick); `self.training` in
classes that are not modules (no `forward`, no `nn.Module` base: validators, trainers,
datasets); receivers that are configuration objects (`args`, `cfg`, `opt`, ...).

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

from dataclasses import dataclass, field

from bnlint.finding import Applicability, Severity
from bnlint.index.names import dotted_name, import_aliases, resolve
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuleContext, cst

MODE_METHODS = frozenset({"train", "eval"})
CHILD_ITERATORS = frozenset({"children", "modules", "named_children", "named_modules"})
# Objects that carry a `training` option, not a module's mode.
CONFIG_NAMES = frozenset(
    {"args", "opt", "opts", "cfg", "config", "conf", "hparams", "hp", "params", "options"}
    | {"settings", "flags", "FLAGS", "state", "namespace", "ns", "kwargs", "hyp"}
)
MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})


@dataclass
class _Scope:
    name: str
    is_mode_override: bool
    # Receivers (as written) of `.eval()` / `.train(...)` calls seen so far.
    mode_receivers: set[str] = field(default_factory=set)
    propagates: bool = False
    sets_own_flag: bool = False


@dataclass
class _Class:
    name: str
    is_module: bool


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _bool_literal(node: cst.BaseExpression) -> bool | None:
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return node.value == "True"
    return None


class TrainingFlagAssigned(Rule):
    code = "BN008"
    name = "training-flag-assigned"
    severity = Severity.WARNING
    triggers = (".training =", ".training=", "def train(", "def eval(")
    autofix = "unsafe"

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
    )
    INVALID = (
        Invalid("model.training = False\n", fixed="model.eval()\n"),
        Invalid(
            "def fit(net):\n    net.training = True  # back to training\n",
            fixed="def fit(net):\n    net.train()  # back to training\n",
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
        self.aliases: dict[str, str] = {}
        self.classes: list[_Class] = []
        self.scopes: list[_Scope] = [_Scope("<module>", is_mode_override=False)]
        # Innermost first: does the enclosing class body directly hold this function?
        self.function_owner: list[bool] = []
        self.child_loop_targets: list[str | None] = []

    def visit_Module(self, node: cst.Module) -> None:
        self.aliases = import_aliases(node)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        defines_forward = any(
            isinstance(statement, cst.FunctionDef) and statement.name.value == "forward"
            for statement in node.body.body
        )
        module_base = any(resolve(base.value, self.aliases) in MODULE_BASES for base in node.bases)
        self.classes.append(_Class(node.name.value, defines_forward or module_base))
        self.function_owner.append(True)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.classes.pop()
        self.function_owner.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        in_class_body = bool(self.function_owner) and self.function_owner[-1]
        override = (
            in_class_body
            and self.classes[-1].is_module
            and node.name.value in MODE_METHODS
            and _mode_signature(node)
        )
        self.scopes.append(_Scope(node.name.value, is_mode_override=override))
        self.function_owner.append(False)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        scope = self.scopes.pop()
        self.function_owner.pop()
        if scope.is_mode_override and scope.sets_own_flag and not scope.propagates:
            owner = self.classes[-1].name
            self.report(
                original_node.name,
                message=(
                    f"`{owner}.{scope.name}()` sets only `self.training`: its submodules "
                    "(BatchNorm, Dropout) keep their mode on every train()/eval() call"
                ),
                suggestion=(
                    f"call `super().train(mode)` in `{owner}.{scope.name}` instead of "
                    "assigning `self.training`, then re-freeze what must stay in eval"
                ),
            )

    def visit_For(self, node: cst.For) -> None:
        iterated = node.iter
        target: str | None = None
        if (
            isinstance(iterated, cst.Call)
            and isinstance(iterated.func, cst.Attribute)
            and iterated.func.attr.value in CHILD_ITERATORS
        ):
            self.scopes[-1].propagates = True
            loop_target: cst.BaseExpression = node.target
            if isinstance(loop_target, cst.Tuple) and loop_target.elements:
                loop_target = loop_target.elements[-1].value
            target = dotted_name(loop_target)
        self.child_loop_targets.append(target)

    def leave_For(self, original_node: cst.For) -> None:
        self.child_loop_targets.pop()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in MODE_METHODS:
            scope = self.scopes[-1]
            scope.mode_receivers.add(_code(func.value))
            if func.attr.value == "train" or _is_super_call(func.value):
                scope.propagates = True

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            attribute = target.target
            if isinstance(attribute, cst.Attribute) and attribute.attr.value == "training":
                self._check_assignment(node, attribute)

    def _check_assignment(self, node: cst.Assign, attribute: cst.Attribute) -> None:
        scope = self.scopes[-1]
        receiver = _code(attribute.value)
        if scope.is_mode_override and receiver == "self":
            scope.sets_own_flag = True
            return
        if scope.is_mode_override and receiver in self.child_loop_targets:
            return
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


def _is_super_call(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value == "super"
    )


def _mode_signature(node: cst.FunctionDef) -> bool:
    """`train(self, mode=True)` / `train(self, mode: bool = True)` / `eval(self)`: the
    signature of `nn.Module`'s mode methods, not a trainer's `train(self, epochs)`."""
    params = node.params.params
    if not params or params[0].name.value != "self":
        return False
    rest = params[1:]
    if node.name.value == "eval":
        return not rest
    return len(rest) == 1 and (rest[0].name.value == "mode" or rest[0].default is not None)
