"""BatchNorm `momentum` written in the Keras/TensorFlow convention (0.9, 0.99, ...).

## What it does
Checks for a BatchNorm `momentum` literal of at least 0.5 and below 1:

- in a BatchNorm constructor (`nn.BatchNorm1d/2d/3d`, `SyncBatchNorm`,
  `LazyBatchNorm*`, timm's `BatchNormAct2d`), by keyword or by position;
- in `functools.partial(nn.BatchNorm2d, momentum=...)`, the usual `norm_layer`, and in
  keyword dicts unpacked into one (`nn.BatchNorm2d(c, **bn_kwargs)`);
- in an mmcv-style `norm_cfg`: `dict(type="BN", momentum=...)` or
  `{"type": "SyncBN", "momentum": ...}`;
- in `F.batch_norm(..., momentum=...)` / `torch.batch_norm`;
- in `m.momentum = 0.99` under `if isinstance(m, nn.BatchNorm2d):` (the
  "re-initialise every BN" loop);
- through a module-level constant (`BN_MOMENTUM = 0.9`) or a local assigned once;
- through a parameter (`def __init__(self, c, momentum=0.9): ... nn.BatchNorm1d(c,
  momentum=momentum)`, also via `self.momentum = momentum`): reported at the parameter's
  default, and at the calls in the same file that pass such a number for it, directly or
  through their own parameter's default (a `momentum` forwarded from a model to its
  blocks);
- through a project class in another file whose constructor keyword becomes a
  BatchNorm's momentum (`GhostNorm(c, momentum=bn_momentum)`, with `bn_momentum=0.9`
  here): the keyword is followed through the project index;
- through a configuration read (`args.bn_momentum`, `cfg.MODEL.BN_MOMENTUM`,
  `config["bn_momentum"]`) whose one default in the project is Keras-style: an argparse
  `default=`, a yacs-style `_C.MODEL.BN_MOMENTUM = 0.9`, a config class field or a dict
  entry (a key set to different numbers in different places is not guessed).

The runtime check reads the `momentum` of every BatchNorm that runs forward, whatever
built it (a config file, a factory, a checkpoint's hyper-parameters), and points at the
line that constructed the module when tracing was active then.

`momentum=None` (cumulative average) and `momentum=1.0` (keep only the last batch, used
on purpose for per-task statistics) are not reported.

## Why is this bad?
PyTorch updates `running = (1 - momentum) * running + momentum * batch`, default 0.1:
`momentum` is the weight of the *newest* batch. Keras, TensorFlow and MindSpore weight
the *old* value by it. Copying `momentum=0.9` or `0.99` from a Keras model therefore
makes the running statistics roughly the statistics of the last batch: evaluation
becomes noisy and changes from epoch to epoch while training looks fine
(`pytorch/examples#289`, `kazuto1011/deeplab-pytorch#79`, `lukemelas/EfficientNet-PyTorch#3`).
Ported models usually differ in `eps` too (Keras 1e-3, PyTorch 1e-5).

## Example
```python
self.bn = nn.BatchNorm2d(64, momentum=0.99, eps=1e-3)
```

## Use instead
```python
self.bn = nn.BatchNorm2d(64, momentum=0.01, eps=1e-3)  # 1 - 0.99
```

## Fix safety
The fix replaces the literal `m` by the literal `1 - m` and is unsafe: it is what the
ported code meant in nearly every case, but it changes the running statistics of any
model trained from here on, and a deliberate fast-tracking momentum (BN
recalibration) would be undone. A momentum that comes from a constant is reported
without a fix (the constant may have other uses); a parameter's default is fixed in
place, which changes what every caller that relies on it gets.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Applicability, Severity
from bnlint.index.ast_names import (
    FUNCTIONAL_BATCHNORM,
    argument,
    dotted_name,
    is_batchnorm_class,
    keyword_argument,
    partial_target,
    resolve,
)
from bnlint.index.momentum_params import is_momentum_parameter
from bnlint.index.settings import project_setting, setting_key
from bnlint.index.summary import Names
from bnlint.index.values import FileValues, Function, Origin, parameters
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuleContext, RuntimeReport

# Position of `momentum` among the positional parameters, per constructor.
_LAZY_PREFIX = "LazyBatchNorm"
_CONSTRUCTOR_POSITION = 2  # (num_features, eps, momentum, ...)
_LAZY_POSITION = 1  # (eps, momentum, ...)
_FUNCTIONAL_POSITION = 6  # F.batch_norm(input, mean, var, weight, bias, training, momentum)
_BATCHNORM_BASE = "torch.nn.modules.batchnorm._BatchNorm"


def keras_style(value: float) -> bool:
    """The Keras convention shows as a weight of the old value: 0.5 <= m < 1."""
    return 0.5 <= value < 1.0


def pytorch_momentum(text: str) -> str:
    """`1 - m` written as a decimal literal (0.99 -> 0.01), without float noise."""
    return format(Decimal(1) - Decimal(text.replace("_", "")), "f")


def float_literal(node: ast.AST | None) -> float | None:
    """The value of a float literal (`0.9`, `.99`, `9e-1`); None for anything else (an
    int, a bool, `-0.9`, a name)."""
    if isinstance(node, ast.Constant) and type(node.value) is float:
        return node.value
    return None


class KerasMomentum(Rule):
    code = "BN010"
    name = "keras-momentum"
    severity = Severity.WARNING
    triggers = ("momentum",)
    # A decimal in [0.5, 1) on the same line as the word (keyword, constant, assignment),
    # or a momentum keyword given a name (a parameter, a constant, a config read).
    trigger_pattern = r"(?i)momentum(?:[^\n]{0,40}?(?<![\d.])0?\.[5-9]|\s*=\s*[a-z_])"
    autofix = "unsafe"
    engines = ("static", "runtime")
    syntax = "ast"
    # Momentum parameters of project classes in other files (`momentum_params`).
    needs_index = True

    VALID = (
        "import torch.nn as nn\nbn = nn.BatchNorm2d(64, momentum=0.1)\n",
        "import torch.nn as nn\nbn = nn.BatchNorm2d(64, momentum=None)\n",
        "import torch.nn as nn\nbn = nn.BatchNorm2d(64, momentum=1.0)\n",
        "import torch\nopt = torch.optim.SGD(params, lr=0.1, momentum=0.9)\n",
        "from torch import nn\nbn = nn.BatchNorm2d(64, 1e-3, 0.01)\n",
        "import tensorflow as tf\nbn = tf.keras.layers.BatchNormalization(momentum=0.99)\n",
        "for m in model.modules():\n    m.momentum = 0.9\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\nbn = nn.BatchNorm2d(64, momentum=0.9)\n",
            fixed="import torch.nn as nn\nbn = nn.BatchNorm2d(64, momentum=0.1)\n",
        ),
        Invalid(
            "from torch.nn import BatchNorm1d as BN\nbn = BN(32, 1e-3, 0.99)\n",
            fixed="from torch.nn import BatchNorm1d as BN\nbn = BN(32, 1e-3, 0.01)\n",
        ),
        Invalid(
            "import torch.nn as nn\nfrom functools import partial\n"
            "norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.997)\n",
            fixed="import torch.nn as nn\nfrom functools import partial\n"
            "norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.003)\n",
        ),
        Invalid(
            "import torch.nn as nn\nfor m in net.modules():\n"
            "    if isinstance(m, nn.BatchNorm2d):\n        m.momentum = 0.9\n",
            fixed="import torch.nn as nn\nfor m in net.modules():\n"
            "    if isinstance(m, nn.BatchNorm2d):\n        m.momentum = 0.1\n",
        ),
        Invalid(
            "import torch.nn as nn\nBN_MOMENTUM = 0.9\n"
            "bn = nn.BatchNorm2d(8, momentum=BN_MOMENTUM)\n"
        ),
    )

    runtime_events = (BatchNormCall,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormCall):
            return
        momentum = event.module.momentum
        if momentum is None or not keras_style(momentum):
            return
        fixed = round(1.0 - momentum, 6)
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) runs with "
            f"momentum={momentum:g}, the Keras/TF convention: PyTorch weights the newest "
            "batch by `momentum`, so the running statistics follow the last few batches only",
            suggestion=f"use momentum={fixed:g} (PyTorch's momentum is 1 - {momentum:g}); "
            "check `eps` too if the model was ported from Keras/TF",
            subject=event.module.path,
            at="construction",
        )

    def __init__(self, context: RuleContext) -> None:
        super().__init__(context)
        self._values: FileValues | None = None
        # Literals already reported (a default shared by several BatchNorms).
        self._reported: set[int] = set()
        # Assignments inside an `if isinstance(x, <BatchNorm>):` block → the names of x.
        self.guarded: dict[int, set[str]] = {}

    @property
    def values(self) -> FileValues:
        if self._values is None:
            self._values = FileValues(self.context.tree)
        return self._values

    def visit_Call(self, node: ast.Call) -> None:
        qualified = resolve(node.func, self.aliases)
        if is_batchnorm_class(qualified):
            assert qualified is not None
            lazy = qualified.rsplit(".", 1)[-1].startswith(_LAZY_PREFIX)
            position = _LAZY_POSITION if lazy else _CONSTRUCTOR_POSITION
            momentum = argument(node, "momentum", position)
            if momentum is None:
                momentum = self._unpacked_momentum(node)
            self._check(momentum, "this BatchNorm")
        elif qualified in FUNCTIONAL_BATCHNORM:
            self._check(argument(node, "momentum", _FUNCTIONAL_POSITION), "`batch_norm`")
        else:
            target = partial_target(node, self.aliases)
            if target is not None and is_batchnorm_class(resolve(target, self.aliases)):
                keyword = keyword_argument(node, "momentum")
                self._check(None if keyword is None else keyword.value, "this BatchNorm factory")
            elif _is_dict_call(node) and _names_batchnorm_type(node):
                keyword = keyword_argument(node, "momentum")
                self._check(None if keyword is None else keyword.value, "this `norm_cfg`")
            else:
                self._check_project_class(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        """`{"type": "BN", "momentum": 0.9}`: an mmcv-style `norm_cfg`, whose keys
        become the BatchNorm's constructor arguments."""
        entries = _string_keys(node)
        kind = entries.get("type")
        if isinstance(kind, ast.Constant) and kind.value in _MMCV_BATCHNORM_TYPES:
            self._check(entries.get("momentum"), "this `norm_cfg`")

    def _unpacked_momentum(self, node: ast.Call) -> ast.expr | None:
        """`nn.BatchNorm2d(c, **bn_kwargs)` with `bn_kwargs = dict(momentum=0.99)` (or
        a dict literal) bound once in the function or the module."""
        for keyword in node.keywords:
            if keyword.arg is not None or not isinstance(keyword.value, ast.Name):
                continue
            bound = self.values.binding(keyword.value)
            if isinstance(bound, ast.Dict):
                found = _string_keys(bound).get("momentum")
            elif isinstance(bound, ast.Call) and _is_dict_call(bound):
                inner = keyword_argument(bound, "momentum")
                found = None if inner is None else inner.value
            else:
                found = None
            if found is not None:
                return found
        return None

    def _check_project_class(self, node: ast.Call) -> None:
        """`GhostNorm(c, momentum=0.9)`: a project class (here or in another file)
        whose constructor keyword becomes a BatchNorm's momentum."""
        keywords = [k for k in node.keywords if k.arg and "momentum" in k.arg.lower()]
        if not keywords:
            return
        index, summary = self.context.index.with_file(self.context.path, self.context.source)
        local = set(summary.classes) | set(summary.functions)
        callee = Names(summary.imports, local, summary.aliases).qualify(node.func)
        if callee is None:
            return
        for keyword in keywords:
            assert keyword.arg is not None
            if is_momentum_parameter(index, self.context.path, callee, keyword.arg):
                shown = callee.lstrip("~.").rsplit(".", 1)[-1]
                self._check(keyword.value, f"the BatchNorm of `{shown}` (through `{keyword.arg}`)")

    def visit_If(self, node: ast.If) -> None:
        subject = _isinstance_batchnorm(node.test, self.aliases)
        if subject is None:
            return
        # The `if` body only: its `else`/`elif` branches are not BatchNorm-guarded.
        for statement in node.body:
            for inner in ast.walk(statement):
                if isinstance(inner, ast.Assign):
                    self.guarded.setdefault(id(inner), set()).add(subject)

    def visit_Assign(self, node: ast.Assign) -> None:
        names = self.guarded.get(id(node))
        if not names:
            return
        for target in node.targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "momentum"
                and dotted_name(target.value) in names
            ):
                literal = float_literal(node.value)
                if literal is not None and keras_style(literal):
                    self._report_literal(node.value, "this BatchNorm")

    def _check(self, value: ast.expr | None, what: str) -> None:
        if value is None:
            return
        literal = float_literal(value)
        if literal is not None:
            if keras_style(literal):
                self._report_literal(value, what)
            return
        if not isinstance(value, ast.Name | ast.Attribute | ast.Subscript):
            return
        origin = self.values.origin(value)
        if origin is not None and origin.parameter is None:
            # A module-level constant or a local assigned once.
            if keras_style(origin.value) and float_literal(origin.node) is not None:
                self._report_named(value, origin, what)
            return
        # A parameter: its default, and what this file's callers pass for it.
        parameter = origin.parameter if origin is not None else self._parameter(value)
        if parameter is None:
            if origin is None:
                self._check_setting(value, value, what)
            return
        if origin is not None:
            self._report_default(origin, value, what)
        self._follow_callers(*parameter, value, what, depth=0)

    def _parameter(self, value: ast.expr) -> tuple[Function, str] | None:
        """The enclosing function's parameter `value` names (one without a literal
        default), so that its callers' arguments can be followed."""
        function = self.values.scope_of(value)
        if function is None or not isinstance(value, ast.Name):
            return None
        if any(arg.arg == value.id for arg, _ in parameters(function)):
            return function, value.id
        return None

    def _follow_callers(
        self, function: Function, name: str, use: ast.expr, what: str, depth: int
    ) -> None:
        """Report the Keras-style numbers this file's calls pass for `function`'s
        parameter `name`, directly or through their own parameters' defaults."""
        if depth > 3:
            return
        for call in self.values.callers(function):
            argument = self.values.argument_for(call, function, name)
            if argument is None:
                continue
            literal = float_literal(argument)
            if literal is not None:
                if keras_style(literal):
                    self._report_literal(
                        argument, f"`{name}` of `{_callable_name(self.values, function)}`"
                    )
                continue
            if not isinstance(argument, ast.Name | ast.Attribute | ast.Subscript):
                continue
            if self._check_setting(argument, use, what):
                continue
            origin = self.values.origin(argument)
            if origin is not None and origin.parameter is not None:
                self._report_default(origin, use, what)
            forwarded = origin.parameter if origin is not None else self._parameter(argument)
            if forwarded is not None and forwarded != (function, name):
                self._follow_callers(*forwarded, use, what, depth + 1)

    def _check_setting(self, read: ast.expr, use: ast.expr, what: str) -> bool:
        """`args.bn_momentum`, `cfg.MODEL.BN_MOMENTUM`: a configuration key whose one
        default in the project (argparse, yacs, a config class or dict) is Keras-style.
        Reported at the read, naming where the default is set."""
        key = setting_key(read)
        if key is None:
            return False
        setting = project_setting(self.context.index.with_file(*self._file)[0], key)
        if setting is None or not keras_style(setting[0]) or id(read) in self._reported:
            return True
        self._reported.add(id(read))
        number, path, position = setting
        where = "this file" if path == self.context.path else f"`{path}`"
        text = ast.unparse(read)
        fixed = _safe_fixed(format(number, "g"))
        receiver = "the " + what.removeprefix("this ") if what.startswith("this ") else what
        self.report(
            read,
            message=(
                f"`{text}` defaults to {number:g} ({where}, line {position[0]}) and becomes "
                f"the momentum of {receiver} (line {use.lineno}): the Keras/TF convention, "
                "but PyTorch weights the newest batch by `momentum`, so the running "
                "statistics follow the last few batches only"
            ),
            suggestion=f"set the default of `{key}` to {fixed} (PyTorch's momentum is "
            f"1 - {number:g}); check `eps` too if the model was ported from Keras/TF",
        )
        return True

    @property
    def _file(self) -> tuple[str, str]:
        return self.context.path, self.context.source

    def _report_default(self, origin: Origin, use: ast.expr, what: str) -> None:
        """A parameter whose literal default reaches a BatchNorm's momentum."""
        literal = float_literal(origin.node)
        if literal is None or not keras_style(literal) or id(origin.node) in self._reported:
            return
        self._reported.add(id(origin.node))
        assert origin.parameter is not None
        name = origin.parameter[1]
        receiver = "the " + what.removeprefix("this ") if what.startswith("this ") else what
        text = self._spelling(origin.node)
        fixed = _safe_fixed(text)
        self.report(
            origin.node,
            message=(
                f"`{name}` defaults to {text}, which becomes the momentum of {receiver} "
                f"(line {use.lineno}): the Keras/TF convention, but PyTorch weights the "
                "newest batch by `momentum`, so the running statistics follow the last few "
                "batches only"
            ),
            suggestion=f"default `{name}` to {fixed} (PyTorch's momentum is 1 - {text}), and "
            "check the callers that pass it; check `eps` too if the model was ported",
            fix=PendingFix(
                Applicability.UNSAFE,
                f"Replace the default {text} with {fixed}",
                (NodeEdit(origin.node, "replace", fixed),),
            ),
        )

    def _report_named(self, use: ast.expr, origin: Origin, what: str) -> None:
        """A module constant or a local assigned once, reported at its use."""
        if id(use) in self._reported:
            return
        self._reported.add(id(use))
        name = ast.unparse(use)
        text = self._spelling(origin.node)
        fixed = _safe_fixed(text)
        self.report(
            use,
            message=(
                f"{what} gets momentum {name} = {text}, the Keras/TF convention: "
                "PyTorch weights the newest batch by `momentum`, so the running "
                "statistics follow the last few batches only"
            ),
            suggestion=f"set `{name} = {fixed}` (PyTorch's momentum is 1 - m); "
            "check `eps` too if the model was ported from Keras/TF",
        )

    def _spelling(self, node: ast.expr) -> str:
        """The literal as written (`0.99`, `9.9e-1`, `0.9_9`): ast keeps only the value."""
        return ast.get_source_segment(self.context.source, node) or repr(float_literal(node))

    def _report_literal(self, node: ast.expr, what: str) -> None:
        if id(node) in self._reported:
            return
        self._reported.add(id(node))
        text = self._spelling(node)
        fixed = _safe_fixed(text)
        self.report(
            node,
            message=(
                f"{what} uses momentum={text}, the Keras/TF convention: PyTorch weights the "
                "newest batch by `momentum`, so the running statistics follow the last few "
                "batches only"
            ),
            suggestion=f"write momentum={fixed} (PyTorch's momentum is 1 - {text}); check "
            "`eps` too if the model was ported from Keras/TF",
            fix=PendingFix(
                Applicability.UNSAFE,
                f"Replace momentum {text} with {fixed}",
                (NodeEdit(node, "replace", fixed),),
            ),
        )


# mmcv's registered BatchNorm layers (`build_norm_layer(dict(type=..., momentum=...))`).
_MMCV_BATCHNORM_TYPES = frozenset(
    {"BN", "BN1d", "BN2d", "BN3d", "SyncBN", "NaiveSyncBN", "MMSyncBN", "TorchSyncBN"}
)


def _is_dict_call(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Name) and node.func.id == "dict"


def _names_batchnorm_type(node: ast.Call) -> bool:
    kind = keyword_argument(node, "type")
    return (
        kind is not None
        and isinstance(kind.value, ast.Constant)
        and kind.value.value in _MMCV_BATCHNORM_TYPES
    )


def _string_keys(node: ast.Dict) -> dict[str, ast.expr]:
    return {
        key.value: value
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }


def _callable_name(values: FileValues, function: Function) -> str:
    owner = values.class_of(function)
    if owner is None:
        return function.name
    return owner.name if function.name == "__init__" else f"{owner.name}.{function.name}"


def _safe_fixed(text: str) -> str:
    try:
        return pytorch_momentum(text)
    except InvalidOperation:  # pragma: no cover - a float literal's spelling is a decimal
        return f"1 - {text}"


def _isinstance_batchnorm(test: ast.expr, aliases: Mapping[str, str]) -> str | None:
    """`isinstance(m, nn.BatchNorm2d)` (or a tuple holding a BN class) → "m"."""
    if not (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == "isinstance"
        and len(test.args) == 2
        and not test.keywords
    ):
        return None
    subject = dotted_name(test.args[0])
    kinds = test.args[1]
    candidates = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
    if subject is not None and any(
        is_batchnorm_class(resolve(kind, aliases)) or resolve(kind, aliases) == _BATCHNORM_BASE
        for kind in candidates
    ):
        return subject
    return None
