"""Distributed training with plain BatchNorm on a small per-process batch.

## What it does
The static check reports two things in a training script:

- `DistributedDataParallel(model, ...)` (also imported as `DDP`) of a model with
  trainable BatchNorm, built in the same file by a class or a known torchvision/timm
  factory, when the file never converts to SyncBatchNorm and the training `DataLoader`
  that feeds the wrapped model gives each process at most `small-batch-threshold`
  samples (8 by default). Under DDP every process builds its own loader, so its
  `batch_size` (with or without a `DistributedSampler`) is the per-process batch. The
  batch size must be known: a literal, a module constant (`BATCH_SIZE = 4`) or an
  argparse option's default; a batch from a config file, a function argument or
  arithmetic (`args.batch_size // world_size`) is unknown and stays silent.
- `SyncBatchNorm.convert_sync_batchnorm(model)` applied to a model that the same
  function has already wrapped in `DistributedDataParallel`.

Silent, to stay precise: any mention of SyncBatchNorm in the file (`SyncBatchNorm`,
`convert_sync_batchnorm`, apex's `convert_syncbn_model`, a `--sync-bn` flag), models
without BN or with frozen BN (FrozenBatchNorm2d, torchvision detection models,
`norm_eval`, a BN-eval or `requires_grad_(False)` pass over the model), models built
by a project function (it may convert on its own), and DDP wraps whose model cannot be
tied to the training loop of the small loader.

The runtime check reads, at each training-mode BatchNorm forward, the
`torch.distributed` world size (when a process group is initialised; refreshed when
tracing starts and at every `backward()`), the module's class and the local batch size.
It reports a non-Sync BatchNorm trained with `world_size > 1` on a local batch of at
most `small-batch-threshold` samples.

The conversion after wrapping is reported as an error (it certainly does not do what
was meant, as RULES.md rates it); the small-batch finding is a warning.

## Why is this bad?
Under DistributedDataParallel every process normalises its own mini-batch: with 4
images per GPU the batch statistics are computed from 4 samples whatever the global
batch size, so they are noisy, the running statistics differ between ranks (only rank
0's are saved), and accuracy drops well below what the global batch size suggests
(detection and segmentation models are the usual victims, P20). Converting after the
wrap is the documented misuse: DDP records the module's parameters and buffers when
it is constructed, so the conversion must come first.

## Example
```python
train_loader = DataLoader(train_set, batch_size=4, sampler=DistributedSampler(train_set))
model = DDP(build_model().cuda(rank), device_ids=[rank])   # batch 4 per GPU
```

## Use instead
```python
model = nn.SyncBatchNorm.convert_sync_batchnorm(build_model())
model = DDP(model.cuda(rank), device_ids=[rank])
```

## Fix safety
The static fix inserts `model = nn.SyncBatchNorm.convert_sync_batchnorm(model)` before
the statement that wraps the model (with the file's own name for `torch.nn` or
`torch`; no fix when neither is imported, or when the wrapped model is not a plain
name or attribute). It is unsafe: SyncBatchNorm adds a collective communication at
every BatchNorm forward, needs every rank to run the same BN layers, and does not work
on CPU-only or single-process runs. The conversion after wrapping and the runtime
finding have no automatic fix: move the conversion before the wrap.

## Options
- `small-batch-threshold` (default 8): per-process batches up to this size are reported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Applicability, Severity
from bnlint.index import kinds
from bnlint.index.ast_names import argument, import_aliases, module_chain, resolve
from bnlint.index.functions import key_of
from bnlint.index.modes import (
    DEFAULT_SMALL_BATCH,
    SYNC_BATCHNORM,
    SmallTrainingLoader,
    batchnorm_frozen_in,
    small_batch_threshold,
    small_training_loaders,
)
from bnlint.index.project import ProjectIndex
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuntimeReport

Json = dict[str, Any]

DISTRIBUTED_DATA_PARALLEL = frozenset(
    {
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
    }
)
CONVERT_SYNC_BATCHNORM = frozenset(
    {
        "torch.nn.SyncBatchNorm.convert_sync_batchnorm",
        "torch.nn.modules.SyncBatchNorm.convert_sync_batchnorm",
        "torch.nn.modules.batchnorm.SyncBatchNorm.convert_sync_batchnorm",
        "timm.layers.convert_sync_batchnorm",
        "timm.layers.norm_act.convert_sync_batchnorm",
        "timm.models.layers.convert_sync_batchnorm",
    }
)
_DEPTH = 6
# (id of an if/try/match statement, branch number): two places with the same statement
# and different branches never both run.
Branches = tuple[tuple[int, int], ...]


class DdpWithoutSyncBatchNorm(Rule):
    code = "BN016"
    name = "ddp-without-syncbn"
    severity = Severity.WARNING
    triggers = ("DistributedDataParallel", "DDP(")
    needs_index = True
    syntax = "ast"
    autofix = "unsafe"
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall,)

    VALID = (
        # converted before wrapping
        "import torch.nn as nn\nimport torchvision\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "from torch.utils.data import DataLoader\n"
        "model = nn.SyncBatchNorm.convert_sync_batchnorm(torchvision.models.resnet50())\n"
        "model = DDP(model.cuda(), device_ids=[0])\n"
        "loader = DataLoader(ds, batch_size=4)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
        # a per-process batch of 32
        "import torch.nn as nn\nimport torchvision\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "from torch.utils.data import DataLoader\n"
        "model = DDP(torchvision.models.resnet50().cuda(), device_ids=[0])\n"
        "loader = DataLoader(ds, batch_size=32)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
        # the batch size comes from a config: unknown
        "import torch.nn as nn\nimport torchvision\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "from torch.utils.data import DataLoader\n"
        "model = DDP(torchvision.models.resnet50().cuda(), device_ids=[0])\n"
        "loader = DataLoader(ds, batch_size=cfg['batch_size'])\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\nimport torchvision\n"
            "from torch.nn.parallel import DistributedDataParallel as DDP\n"
            "from torch.utils.data import DataLoader\n"
            "model = torchvision.models.resnet50().cuda()\n"
            "model = DDP(model, device_ids=[0])\n"
            "loader = DataLoader(ds, batch_size=4)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n",
            fixed="import torch.nn as nn\nimport torchvision\n"
            "from torch.nn.parallel import DistributedDataParallel as DDP\n"
            "from torch.utils.data import DataLoader\n"
            "model = torchvision.models.resnet50().cuda()\n"
            "model = nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
            "model = DDP(model, device_ids=[0])\n"
            "loader = DataLoader(ds, batch_size=4)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n",
        ),
        Invalid(
            "import torch\n"
            "model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])\n"
            "model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
        ),
    )

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if (
            not isinstance(event, BatchNormCall)
            or event.world_size <= 1
            or not event.updates_running_stats
            or event.module.class_name == "SyncBatchNorm"
            or not event.input_shape
        ):
            return
        threshold = int(memory.get("options", {}).get("small-batch-threshold", DEFAULT_SMALL_BATCH))
        batch = event.input_shape[0]
        if batch > threshold:
            return
        yield RuntimeReport(
            message=f"`{event.module.path}` ({event.module.class_name}) trains on a local "
            f"batch of {batch} in each of {event.world_size} processes: each process "
            "normalises over its own few samples, not the global batch",
            suggestion="convert with `nn.SyncBatchNorm.convert_sync_batchnorm(model)` before "
            "moving the model to the device and wrapping it in DistributedDataParallel",
            subject=event.module.path,
        )

    # -- static check -------------------------------------------------------------------
    def check_module(self) -> None:
        source = self.context.source
        converts = "convert_sync_batchnorm" in source
        if not converts and SYNC_BATCHNORM.search(source):
            return  # some other SyncBatchNorm use: the file knows about it
        index, _ = self.context.index.with_file(self.context.path, source)
        small: list[SmallTrainingLoader] = []
        if not converts:
            threshold = small_batch_threshold(self.context.options)
            small = list(
                small_training_loaders(
                    index, self.context.path, threshold, parameter_defaults=False
                )
            )
        if not converts and not small:
            return
        aliases = import_aliases(self.context.tree)
        calls = _DistributedCalls(self.context.tree, aliases)
        if converts:
            for conversion, wrap in calls.conversions_after_wrapping():
                self._report_late_conversion(conversion, wrap)
            return
        for wrap in calls.wraps:
            found = self._small_loader_of(index, wrap, small)
            if found is not None:
                self._report_wrap(wrap, found, aliases)

    def _small_loader_of(
        self, index: ProjectIndex, wrap: _Call, small: list[SmallTrainingLoader]
    ) -> SmallTrainingLoader | None:
        """The small training loader whose loop trains the model this call wraps, when
        that model is a BatchNorm model built in this file."""
        if wrap.scope is None:
            return None
        path = self.context.path
        model = wrap.model_key or wrap.target
        if model is None or not _built_bn_model(index, path, wrap.scope, model):
            return None
        facts = index.function_facts(path, wrap.scope)
        if facts is not None and batchnorm_frozen_in(facts, model):
            return None
        for found in small:
            if _trains_wrapped_model(index, path, wrap, found):
                return found
        return None

    def _report_wrap(
        self, wrap: _Call, found: SmallTrainingLoader, aliases: Mapping[str, str]
    ) -> None:
        model = wrap.model_text or wrap.target or "model"
        sync = _sync_batchnorm_name(aliases) or "nn.SyncBatchNorm"
        line = wrap.statement.lineno
        self.report(
            wrap.call,
            message=(
                f"`{model}` trains BatchNorm under DistributedDataParallel without "
                f"SyncBatchNorm, and `{found.key}` (line {found.line}) gives each process "
                f"batches of {found.size}: every process normalises over its own "
                f"{found.size} samples, whatever the global batch"
            ),
            suggestion=(
                f"insert `{model} = {sync}.convert_sync_batchnorm({model})` before line "
                f"{line}, or use a per-process batch above "
                f"{small_batch_threshold(self.context.options)}, GroupNorm, or frozen BN"
            ),
            fix=self._conversion_fix(wrap, aliases),
        )

    def _conversion_fix(self, wrap: _Call, aliases: Mapping[str, str]) -> PendingFix | None:
        sync = _sync_batchnorm_name(aliases)
        model = wrap.model_text
        if sync is None or model is None:
            return None
        statement = wrap.statement
        lines = self.context.source.splitlines()
        text = lines[statement.lineno - 1] if statement.lineno <= len(lines) else ""
        indent = text[: len(text) - len(text.lstrip())]
        if len(indent) != statement.col_offset:
            return None  # `if distributed: model = DDP(model)` on one line
        return PendingFix(
            Applicability.UNSAFE,
            "Convert BatchNorm to SyncBatchNorm before wrapping in DistributedDataParallel",
            (
                NodeEdit(
                    statement,
                    "before",
                    f"{model} = {sync}.convert_sync_batchnorm({model})\n{indent}",
                ),
            ),
        )

    def _report_late_conversion(self, conversion: _Call, wrap: _Call) -> None:
        line = wrap.statement.lineno
        if wrap is conversion:  # `convert_sync_batchnorm(DDP(model))`
            what, where = "a DistributedDataParallel wrapper", "the wrap"
        else:
            what = f"`{conversion.model_text}` after it was wrapped in DistributedDataParallel"
            where = f"line {line}"
        self.report(
            conversion.call,
            message=(
                f"`convert_sync_batchnorm` is applied to {what} (line {line}): DDP has "
                "already recorded the module's parameters and buffers"
            ),
            suggestion=(
                f"convert before {where}: convert the bare model, move it to its device, "
                "then wrap it in DistributedDataParallel"
            ),
            severity=Severity.ERROR,
        )


@dataclass(frozen=True)
class _Call:
    """A DDP wrap or a SyncBatchNorm conversion, with where it stands."""

    call: ast.Call
    statement: ast.stmt  # the statement holding the call (a compound statement's header)
    scope: str | None  # the index's function name, None inside nested functions
    branches: Branches
    target: str | None  # the key the result is assigned to
    model_key: str | None  # the key of the model passed in (`.cuda()`/`.to()` stripped)
    model_text: str | None  # that model as written, for messages and the fix


@dataclass(frozen=True)
class _Assignment:
    statement: ast.stmt
    scope: str | None
    branches: Branches
    key: str
    wraps: bool  # the value is a DistributedDataParallel call


class _DistributedCalls:
    """The DDP wraps, SyncBatchNorm conversions and assignments of a file, in textual
    order, each with its function (named as the index names it) and its branches."""

    def __init__(self, tree: ast.Module, aliases: Mapping[str, str]) -> None:
        self.aliases = aliases
        self.wraps: list[_Call] = []
        self.conversions: list[_Call] = []
        self.assignments: list[_Assignment] = []
        self._body(tree.body, "<module>", (), None)

    def conversions_after_wrapping(self) -> Iterator[tuple[_Call, _Call]]:
        """(conversion, wrap) for each conversion of a model that the same function
        has wrapped in DDP before: the last assignment of the converted key on a path
        that can reach the conversion is the wrap."""
        for conversion in self.conversions:
            argument_call = _model_argument(conversion.call)
            if isinstance(argument_call, ast.Call) and self._wraps(argument_call):
                yield conversion, conversion
                continue
            if conversion.model_key is None or conversion.scope is None:
                continue
            before = [
                assignment
                for assignment in self.assignments
                if assignment.scope == conversion.scope
                and assignment.key == conversion.model_key
                and _position(assignment.statement) < _position(conversion.statement)
                and not _exclusive(assignment.branches, conversion.branches)
            ]
            if not before or not before[-1].wraps:
                continue
            wrap = next((w for w in self.wraps if w.statement is before[-1].statement), None)
            if wrap is not None:
                yield conversion, wrap

    def _wraps(self, call: ast.Call) -> bool:
        return resolve(call.func, self.aliases) in DISTRIBUTED_DATA_PARALLEL

    def _converts(self, call: ast.Call) -> bool:
        return resolve(call.func, self.aliases) in CONVERT_SYNC_BATCHNORM

    def _body(
        self, body: list[ast.stmt], scope: str | None, branches: Branches, owner: str | None
    ) -> None:
        for statement in body:
            self._statement(statement, scope, branches, owner)

    def _statement(
        self, statement: ast.stmt, scope: str | None, branches: Branches, owner: str | None
    ) -> None:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            if owner is not None:
                inner: str | None = f"{owner}.{statement.name}"
            else:
                inner = statement.name if scope == "<module>" else None
            self._body(statement.body, inner, (), None)
        elif isinstance(statement, ast.ClassDef):
            self._body(statement.body, None, (), statement.name if scope == "<module>" else None)
        elif isinstance(statement, ast.If):
            self._expression(statement.test, statement, scope, branches)
            self._body(statement.body, scope, (*branches, (id(statement), 0)), None)
            self._body(statement.orelse, scope, (*branches, (id(statement), 1)), None)
        elif isinstance(statement, ast.For | ast.AsyncFor | ast.While):
            header = statement.test if isinstance(statement, ast.While) else statement.iter
            self._expression(header, statement, scope, branches)
            self._body(statement.body, scope, branches, None)
            self._body(statement.orelse, scope, branches, None)
        elif isinstance(statement, ast.With | ast.AsyncWith):
            for item in statement.items:
                self._expression(item.context_expr, statement, scope, branches)
            self._body(statement.body, scope, branches, None)
        elif isinstance(statement, ast.Try | ast.TryStar):
            self._body(statement.body, scope, (*branches, (id(statement), 0)), None)
            for number, handler in enumerate(statement.handlers, start=1):
                self._body(handler.body, scope, (*branches, (id(statement), number)), None)
            self._body(statement.orelse, scope, (*branches, (id(statement), 0)), None)
            self._body(statement.finalbody, scope, branches, None)
        elif isinstance(statement, ast.Match):
            self._expression(statement.subject, statement, scope, branches)
            for number, case in enumerate(statement.cases):
                self._body(case.body, scope, (*branches, (id(statement), number)), None)
        else:
            self._simple(statement, scope, branches)

    def _simple(self, statement: ast.stmt, scope: str | None, branches: Branches) -> None:
        target = None
        if isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            keys = [key for t in targets for key in _target_keys(t)]
            value = statement.value
            wraps = isinstance(value, ast.Call) and self._wraps(value)
            for key in keys:
                self.assignments.append(_Assignment(statement, scope, branches, key, wraps))
            if len(keys) == 1 and isinstance(value, ast.Call):
                target = keys[0]
        self._expression(statement, statement, scope, branches, target)

    def _expression(
        self,
        node: ast.AST,
        statement: ast.stmt,
        scope: str | None,
        branches: Branches,
        target: str | None = None,
    ) -> None:
        for inner in ast.walk(node):
            if not isinstance(inner, ast.Call):
                continue
            wraps, converts = self._wraps(inner), self._converts(inner)
            if not (wraps or converts):
                continue
            assigned = target if _is_value_of(inner, statement) else None
            model_key, model_text = _model(_model_argument(inner))
            found = _Call(inner, statement, scope, branches, assigned, model_key, model_text)
            (self.wraps if wraps else self.conversions).append(found)


def _model_argument(call: ast.Call) -> ast.expr | None:
    return argument(call, "module", 0)


def _model(node: ast.expr | None) -> tuple[str | None, str | None]:
    """The key and the text of the model an argument names, `.cuda()`/`.to()` stripped;
    (None, None) for anything but a name or an attribute chain."""
    if node is None:
        return None, None
    base, _ = module_chain(node)
    if not isinstance(base, ast.Name | ast.Attribute):
        return None, None
    key = key_of(base)
    return (key, ast.unparse(base)) if key is not None else (None, None)


def _target_keys(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Tuple | ast.List):
        return [key for element in target.elts for key in _target_keys(element)]
    key = key_of(target)
    return [key] if key is not None else []


def _is_value_of(call: ast.Call, statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is call


def _position(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", 0)


def _exclusive(first: Branches, second: Branches) -> bool:
    taken = dict(first)
    return any(taken.get(statement, branch) != branch for statement, branch in second)


def _sync_batchnorm_name(aliases: Mapping[str, str]) -> str | None:
    """`nn.SyncBatchNorm` spelled with the file's own import of `torch.nn` or `torch`."""
    for local, target in aliases.items():
        if target == "torch.nn" and not local.startswith("*"):
            return f"{local}.SyncBatchNorm"
    for local, target in aliases.items():
        if target == "torch" and not local.startswith("*"):
            return f"{local}.nn.SyncBatchNorm"
    return None


def _trains_wrapped_model(
    index: ProjectIndex, path: str, wrap: _Call, found: SmallTrainingLoader
) -> bool:
    """The loader's training loop runs the model this call wraps: the loop is in the
    same function and forwards the wrapped model or the wrapper; or the loader is made
    where the wrap happens and one call hands both on (`train(model, loader)`); or a
    method of the same class trains the `self.` attribute the wrapper is stored in."""
    keys = {key for key in (wrap.target, wrap.model_key) if key is not None}
    same_file = found.loop_path == path
    if same_file and found.loop_function == wrap.scope:
        return found.model in keys
    if found.function == wrap.scope:
        facts = index.function_facts(path, found.function)
        for event in facts["events"] if facts is not None else []:
            if event["k"] != "call":
                continue
            passed = {*event["args"], *event["kwargs"].values()}
            if found.key in passed and keys & passed:
                return True
    owner = (wrap.scope or "").partition(".")[0]
    return (
        same_file
        and "." in (wrap.scope or "")
        and found.loop_function.partition(".")[0] == owner
        and found.model.startswith("self.")
        and found.model in keys
    )


def _built_bn_model(index: ProjectIndex, path: str, function: str, key: str) -> bool:
    """`key` names a model with trainable BatchNorm that this file builds itself."""
    owner, _, method = function.partition(".")
    if method and key.startswith("self.") and index.function_facts(path, function) is None:
        # `__init__` has no mode facts: its `self.<attr>` models are the class's layers.
        layer = index.class_layers(path, owner).get(key.removeprefix("self."))
        return (
            layer is not None
            and index.spec_kind(*layer) == "bn"
            and _spec_built_here(index, *layer)
        )
    return index.key_kind(path, function, key) == "bn" and _built_here(
        index, path, function, key, 0
    )


def _built_here(index: ProjectIndex, path: str, function: str, key: str, depth: int) -> bool:
    """Every binding of `key` is a class constructor or a known library factory (maybe
    through aliases and `.cuda()`): not a project function, which may convert its
    model to SyncBatchNorm where this file cannot see it, nor a parameter."""
    facts = index.function_facts(path, function)
    if facts is None or depth > _DEPTH:
        return False
    bindings = [b for b in facts["bindings"].get(key, []) if b.get("alias") != key]
    if bindings:
        return all(_binding_built_here(index, path, function, b, depth) for b in bindings)
    if key.startswith("self.") and key.count(".") == 1 and facts.get("owner"):
        layer = index.class_layers(path, facts["owner"]).get(key.split(".")[1])
        return layer is not None and _spec_built_here(index, layer[0], layer[1])
    if function != "<module>" and "." not in key and key not in facts["params"]:
        return _built_here(index, path, "<module>", key, depth + 1)
    return False


def _binding_built_here(
    index: ProjectIndex, path: str, function: str, binding: Json, depth: int
) -> bool:
    if "alias" in binding:
        return _built_here(index, path, function, binding["alias"], depth + 1)
    if "spec" in binding:
        return _spec_built_here(index, path, binding["spec"])
    return False


def _spec_built_here(index: ProjectIndex, path: str, spec: Json) -> bool:
    call = spec.get("call")
    if call is None:
        return False
    found = index.lookup(path, call)
    if found is not None:
        return found[1] == "class"
    library = index.library_name(path, call)
    return library is not None and (
        kinds.factory_kind(library, spec.get("arg0")) is not None or library.startswith("torch.nn.")
    )
