"""The runtime tracer: PyTorch activity → events → rules' runtime checks → findings.

Mechanism (ecosystem.md part 3): *global* module hooks, never per-module ones (those
break `torch.jit.script`, `torch.save(model)` and deepcopy), installed once for all
active tracers and removed when the last one stops:

- a forward pre-hook on every module call; it returns at once unless the module is a
  BatchNorm (a per-type cache), and reads only flags, shapes, dtypes and `_version`
  counters, so it never syncs a device;
- a buffer-registration hook that remembers where each BatchNorm was built;
- wrappers around `nn.Module.train`, `Tensor.backward`/`torch.autograd.backward` and the
  export functions (`torch.jit.trace`, `torch.export.export`, `torch.fx.symbolic_trace`,
  `torch.save`, `torch.onnx.export`), restored on removal;
- a forward hook that exists only while a model's first call is being probed for a
  BatchNorm output (BN001), then is removed again.

Nothing here changes a result: hooks return None and never touch tensor data, except the
sampled running-variance read (the first forward of each module, then every
`sample_every`-th). Every hook body is guarded: an exception becomes a BN999 finding and
the user's program goes on; after `MAX_INTERNAL_ERRORS` the tracer stops checking.
"""

from __future__ import annotations

import atexit
import functools
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.nn.modules.batchnorm import _BatchNorm

from bnlint.events import (
    Backward,
    BatchNormCall,
    BatchNormModule,
    Event,
    ExportCall,
    ModelOutput,
    RunningStatsSample,
    RunningStatsUpdated,
    Site,
)
from bnlint.finding import Finding, Position, Severity, Source
from bnlint.registry import all_rules, default_codes, resolve_selector
from bnlint.rule import Rule, RuntimeReport
from bnlint.trace import sites

F = TypeVar("F", bound=Callable[..., Any])

MAX_INTERNAL_ERRORS = 20
# Mode changes remembered until the BatchNorms they reach run forward again.
MAX_MODE_RECORDS = 64
# Functions that run training-mode BN under no_grad on purpose to re-estimate running
# statistics (torch.optim.swa_utils.update_bn, fvcore/detectron2 update_bn_stats, ...).
STATS_REESTIMATION_FUNCTIONS = frozenset(
    {"update_bn", "update_bn_stats", "recompute_bn_stats", "recalibrate_bn", "bn_update"}
)
_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardtanh,
    nn.PReLU,
    nn.Softplus,
    nn.Softmax,
    nn.LogSoftmax,
)

_OTHER, _BATCHNORM, _ACTIVATION = 0, 1, 2
_KINDS: dict[type, int] = {}


def _kind(cls: type) -> int:
    kind = _KINDS.get(cls)
    if kind is None:
        if issubclass(cls, _BatchNorm):
            kind = _BATCHNORM
        elif issubclass(cls, _ACTIVATIONS):
            kind = _ACTIVATION
        else:
            kind = _OTHER
        _KINDS[cls] = kind
    return kind


# ---------------------------------------------------------------------------------------
# Shared installation: one set of hooks and patches for every active tracer.


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.mode_depth = 0
        self.backward_depth = 0
        self.export_depth = 0


_THREAD = _ThreadState()
_LOCK = threading.RLock()
_ACTIVE: list[Tracer] = []
_HANDLES: list[Any] = []
_PATCHES: list[tuple[Any, str, Any]] = []
# Where each BatchNorm was built: id(module) → (weakref, site). Filled only while a
# tracer is active (construction must happen under tracing to be seen).
_CONSTRUCTION: dict[int, tuple[weakref.ref[Any], Site | None]] = {}
# The last childless module called before a BatchNorm (the producer of its input in a
# plain pipeline). One slot, cleared on removal.
_LAST_LEAF: list[Any] = [None]
# BN001 probing: ids of models whose next call is inspected, and the state of a probe.
_PROBE_TARGETS: dict[int, weakref.ref[Any]] = {}
_PROBE: dict[str, Any] = {}
_ATEXIT_REGISTERED = False


def _forward_pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
    if not _ACTIVE:
        return None
    kind = _KINDS.get(type(module))
    if kind is None:
        kind = _kind(type(module))
    if kind != _BATCHNORM:
        if not module._modules:
            _LAST_LEAF[0] = module
        elif _PROBE_TARGETS and _PROBE_TARGETS.get(id(module), _dead)() is module:
            _start_probe(module)
        return None
    if torch.compiler.is_compiling():
        # Values computed inside a compiled region would be trace-time constants.
        return None
    previous = _LAST_LEAF[0]
    for tracer in tuple(_ACTIVE):
        tracer._guarded(tracer._on_batchnorm, module, args, previous)
    return None


def _dead() -> None:
    return None


def _buffer_registration_hook(module: nn.Module, name: str, buffer: Any) -> None:
    if name != "running_mean" or not _ACTIVE:
        return None
    try:
        if _kind(type(module)) == _BATCHNORM:
            site = sites.walk(sys._getframe(1)).inner
            _CONSTRUCTION[id(module)] = (weakref.ref(module, _forget_construction), site)
    except Exception as error:
        for tracer in tuple(_ACTIVE):
            tracer._internal_error(error)
    return None


def _forget_construction(reference: weakref.ref[Any]) -> None:
    for key, (ref, _) in list(_CONSTRUCTION.items()):
        if ref is reference:
            _CONSTRUCTION.pop(key, None)


def _start_probe(root: nn.Module) -> None:
    _PROBE_TARGETS.pop(id(root), None)
    if _PROBE:
        return
    _PROBE.update(root=root, bn=None, bn_output=None, activation_output=None, activation=None)
    _PROBE["handle"] = module_hooks.register_module_forward_hook(_probe_hook, always_call=True)


def _probe_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    if not _PROBE:
        return None
    try:
        kind = _kind(type(module))
        if kind == _BATCHNORM:
            _PROBE.update(bn=module, bn_output=output, activation_output=None)
        elif (
            kind == _ACTIVATION
            and args
            and _PROBE["bn_output"] is not None
            and args[0] is _PROBE["bn_output"]
        ):
            _PROBE.update(activation_output=output, activation=type(module).__name__)
        if module is _PROBE["root"]:
            bn, through = None, None
            if isinstance(output, torch.Tensor):
                if output is _PROBE["bn_output"]:
                    bn = _PROBE["bn"]
                elif output is _PROBE["activation_output"]:
                    bn, through = _PROBE["bn"], _PROBE["activation"]
            _stop_probe()
            for tracer in tuple(_ACTIVE):
                tracer._guarded(tracer._on_model_output, module, bn, through)
    except Exception as error:
        _stop_probe()
        for tracer in tuple(_ACTIVE):
            tracer._internal_error(error)
    return None


def _stop_probe() -> None:
    handle = _PROBE.get("handle")
    _PROBE.clear()
    if handle is not None:
        handle.remove()


def _patched_train(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(self: nn.Module, mode: bool = True) -> Any:
        depth = _THREAD.mode_depth
        _THREAD.mode_depth = depth + 1
        try:
            result = original(self, mode)
        finally:
            _THREAD.mode_depth = depth
        if depth == 0 and _ACTIVE:
            for tracer in tuple(_ACTIVE):
                tracer._guarded(tracer._on_mode_change, self, bool(mode))
        return result

    return train


def _patched_backward(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def backward(*args: Any, **kwargs: Any) -> Any:
        depth = _THREAD.backward_depth
        if depth == 0 and _ACTIVE:
            for tracer in tuple(_ACTIVE):
                tracer._guarded(tracer._emit, Backward(), None)
        _THREAD.backward_depth = depth + 1
        try:
            return original(*args, **kwargs)
        finally:
            _THREAD.backward_depth = depth

    return backward


def _patched_export(original: Callable[..., Any], function: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def export(*args: Any, **kwargs: Any) -> Any:
        depth = _THREAD.export_depth
        if depth == 0 and _ACTIVE and args and isinstance(args[0], nn.Module):
            onnx_training = kwargs.get("training") if function == "torch.onnx.export" else None
            for tracer in tuple(_ACTIVE):
                tracer._guarded(tracer._on_export, function, args[0], onnx_training)
        _THREAD.export_depth = depth + 1
        try:
            return original(*args, **kwargs)
        finally:
            _THREAD.export_depth = depth

    return export


def _export_targets() -> list[tuple[Any, str, str]]:
    targets: list[tuple[Any, str, str]] = [
        (torch.jit, "trace", "torch.jit.trace"),
        (torch, "save", "torch.save"),
    ]
    for owner_name, attribute in (
        ("torch.export", "export"),
        ("torch.fx", "symbolic_trace"),
        ("torch.onnx", "export"),
    ):
        owner = sys.modules.get(owner_name)
        if owner is None:
            try:
                owner = __import__(owner_name, fromlist=["_"])
            except Exception:
                continue
        targets.append((owner, attribute, f"{owner_name}.{attribute}"))
    return targets


def _patch(owner: Any, attribute: str, replacement: Any) -> None:
    _PATCHES.append((owner, attribute, owner.__dict__[attribute]))
    setattr(owner, attribute, replacement)


def _install() -> None:
    global _ATEXIT_REGISTERED
    _HANDLES.append(module_hooks.register_module_forward_pre_hook(_forward_pre_hook))
    _HANDLES.append(
        module_hooks.register_module_buffer_registration_hook(_buffer_registration_hook)
    )
    _patch(nn.Module, "train", _patched_train(nn.Module.train))
    _patch(torch.Tensor, "backward", _patched_backward(torch.Tensor.backward))
    _patch(torch.autograd, "backward", _patched_backward(torch.autograd.backward))
    for owner, attribute, function in _export_targets():
        if attribute in owner.__dict__:
            _patch(owner, attribute, _patched_export(getattr(owner, attribute), function))
    if not _ATEXIT_REGISTERED:
        atexit.register(_uninstall)
        _ATEXIT_REGISTERED = True


def _uninstall() -> None:
    with _LOCK:
        _ACTIVE.clear()
        while _HANDLES:
            _HANDLES.pop().remove()
        while _PATCHES:
            owner, attribute, original = _PATCHES.pop()
            setattr(owner, attribute, original)
        _stop_probe()
        _PROBE_TARGETS.clear()
        _CONSTRUCTION.clear()
        _LAST_LEAF[0] = None


def installed() -> bool:
    """True while any tracer's hooks or patches are in place (for tests)."""
    return bool(_HANDLES or _PATCHES)


# ---------------------------------------------------------------------------------------
# One tracer: its scope, its rules, its findings.


@dataclass
class _ModuleState:
    """What the tracer remembers about one BatchNorm module (held by id, not by ref)."""

    reference: weakref.ref[Any]
    description: BatchNormModule
    forwards: int = 0
    pending_call: BatchNormCall | None = None  # a frozen training forward to confirm
    pending_version: tuple[int, int] | None = None  # (id(num_batches_tracked), _version)
    mode_seq: int = 0  # the last mode record applied
    mode_root: int | None = None  # id of the module the last train()/eval() was called on
    mode_training: bool | None = None
    mode_site: Site | None = None
    frozen_eval_site: Site | None = None


@dataclass(frozen=True)
class _ModeRecord:
    """An outermost `train(mode)`/`eval()` call on `root` (ids of its subtree kept)."""

    seq: int
    root: int
    subtree: frozenset[int]
    training: bool
    site: Site | None


@dataclass
class _Entry:
    """One finding being counted."""

    code: str
    name: str
    severity: Severity
    site: Site | None
    message: str
    suggestion: str
    notes: list[str]
    subject: str
    count: int = 1


@dataclass
class _Rules:
    by_event: dict[type, list[type[Rule]]] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)


def _select_rules(
    rules: Iterable[type[Rule]] | None,
    select: Iterable[str] | None,
    ignore: Iterable[str] | None,
) -> list[type[Rule]]:
    if rules is not None:
        return list(rules)
    if select is None:
        codes = set(default_codes())
    else:
        codes = set()
        for selector in select:
            codes |= resolve_selector(selector)
    for selector in ignore or ():
        codes -= resolve_selector(selector)
    return [rule for code, rule in all_rules().items() if code in codes and rule.runtime_events]


class Tracer:
    """Watches PyTorch while active; `findings` holds what the rules reported.

    Use `bnlint.trace()` to make one. Active between `start()` and `stop()`, as a
    context manager, or around each call of a function it decorates; findings
    accumulate over every active period.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        select: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
        rules: Iterable[type[Rule]] | None = None,
        sample_every: int | None = 50,
    ) -> None:
        self._model_ref = weakref.ref(model) if model is not None else None
        self._rules = _Rules()
        for rule in _select_rules(rules, select, ignore):
            self._rules.memory[rule.code] = {}
            for event_type in rule.runtime_events:
                self._rules.by_event.setdefault(event_type, []).append(rule)
        self._rule_names = {rule.code: rule.name for rule in _select_rules(rules, select, ignore)}
        self._severities = {
            rule.code: rule.severity for rule in _select_rules(rules, select, ignore)
        }
        self.sample_every = sample_every
        self._modules: dict[int, _ModuleState] = {}
        self._names: dict[int, tuple[weakref.ref[Any], str]] = {}
        self._named_roots: dict[int, weakref.ref[Any]] = {}
        self._subtrees: dict[int, tuple[weakref.ref[Any], frozenset[int]]] = {}
        self._mode_records: list[_ModeRecord] = []
        self._mode_seq = 0
        self._scope: set[int] | None = None
        self._entries: dict[tuple[str, str, str, Site | None], _Entry] = {}
        self._lock = threading.Lock()
        self._depth = 0
        self._internal_errors = 0
        self.disabled = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Tracer:
        with _LOCK:
            self._depth += 1
            if self._depth > 1:
                return self
            model = self._model_ref() if self._model_ref is not None else None
            if model is not None:
                self._learn_names(model)
                self._scope = {id(sub) for sub in model.modules()}
                _PROBE_TARGETS[id(model)] = weakref.ref(model)
            if not _ACTIVE:
                _install()
            _ACTIVE.append(self)
        return self

    def stop(self) -> None:
        with _LOCK:
            if self._depth == 0:
                return
            self._depth -= 1
            if self._depth > 0:
                return
            self._guarded(self._flush_pending)
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            if not _ACTIVE:
                _uninstall()

    def __enter__(self) -> Tracer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __call__(self, function: F) -> F:
        @functools.wraps(function)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return traced  # type: ignore[return-value]

    # -- findings ------------------------------------------------------------------------

    @property
    def findings(self) -> list[Finding]:
        """One finding per code and user line; repeated events add to its count, and
        the same misuse in several modules at one line is one finding listing them."""
        with self._lock:
            entries = list(self._entries.values())
        grouped: dict[tuple[str, Severity, Site | None], list[_Entry]] = {}
        for entry in entries:
            grouped.setdefault((entry.code, entry.severity, entry.site), []).append(entry)
        findings = [self._finding(group) for group in grouped.values()]
        return sorted(findings, key=Finding.sort_key)

    def _finding(self, group: list[_Entry]) -> Finding:
        first = group[0]
        notes = list(first.notes)
        others = [entry.subject for entry in group[1:] if entry.subject]
        if others:
            notes.append("the same in " + ", ".join(f"`{name}`" for name in others))
        site = first.site
        position = Position(site.line if site else 1, 1)
        return Finding(
            code=first.code,
            name=first.name,
            severity=first.severity,
            path=site.path if site else "<runtime>",
            start=position,
            end=position,
            message=first.message,
            suggestion=first.suggestion,
            source=Source.RUNTIME,
            count=sum(entry.count for entry in group),
            notes=tuple(notes),
        )

    # -- guarded dispatch ----------------------------------------------------------------

    def _guarded(self, handler: Callable[..., None], *args: Any) -> None:
        if self.disabled:
            return
        try:
            handler(*args)
        except Exception as error:
            self._internal_error(error)

    def _internal_error(self, error: Exception) -> None:
        self._internal_errors += 1
        if self._internal_errors >= MAX_INTERNAL_ERRORS:
            self.disabled = True
        try:
            site = sites.walk(sys._getframe(1)).entry
        except Exception:
            site = None
        description = f"{type(error).__name__}: {error}"
        key = ("BN999", description, "internal", None)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.count += 1
                return
            self._entries[key] = _Entry(
                code="BN999",
                name="internal-error",
                severity=Severity.ERROR,
                site=site,
                message=f"the bnlint tracer failed: {description}",
                suggestion="a bug in bnlint, not in your code: please report it; "
                "your program ran unchanged",
                notes=["the tracer stopped checking after repeated errors"]
                if self.disabled
                else [],
                subject="",
            )

    def _emit(self, event: Event, state: _ModuleState | None) -> None:
        for rule in self._rules.by_event.get(type(event), ()):
            for report in rule.check_runtime(event, self._rules.memory[rule.code]):
                self._record(rule.code, report, state)

    def _record(self, code: str, report: RuntimeReport, state: _ModuleState | None) -> None:
        severity = report.severity or self._severities[code]
        key = (code, report.subject, report.at, report.site)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.count += 1
                return
        # A new finding: now, and only now, walk the stack.
        stack = sites.walk(sys._getframe(1))
        notes = list(report.notes)
        site: Site | None
        if report.at == "site" and report.site is not None:
            site = report.site
        elif report.at == "construction" and state and state.description.construction:
            site = state.description.construction
        else:
            site = stack.entry
            if stack.inner is not None and stack.inner != stack.entry:
                notes.append(f"inside {stack.inner.function} at {stack.inner}")
        if state is not None:
            description = state.description
            built = (
                f"built at {description.construction}"
                if description.construction
                else "built before tracing began"
            )
            notes.append(f"module `{description.path}` ({description.class_name}) {built}")
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.count += 1
                return
            self._entries[key] = _Entry(
                code=code,
                name=self._rule_names[code],
                severity=severity,
                site=site,
                message=report.message,
                suggestion=report.suggestion,
                notes=notes,
                subject=report.subject,
            )

    # -- module knowledge ----------------------------------------------------------------

    def _learn_names(self, root: nn.Module) -> None:
        known = self._named_roots.get(id(root))
        if known is not None and known() is root:
            return
        self._named_roots[id(root)] = weakref.ref(root)
        for name, sub in root.named_modules():
            if self._name_of(sub) is None:
                self._names[id(sub)] = (weakref.ref(sub), name or type(sub).__name__)

    def _name_of(self, module: nn.Module) -> str | None:
        known = self._names.get(id(module))
        if known is not None and known[0]() is module:
            return known[1]
        return None

    def _state_for(self, module: Any) -> _ModuleState | None:
        state = self._modules.get(id(module))
        if state is not None and state.reference() is module:
            return state
        if self._scope is not None and id(module) not in self._scope:
            return None
        name = self._name_of(module)
        if name is None:
            root = sites.walk(sys._getframe(1)).root
            if isinstance(root, nn.Module) and root is not module:
                self._learn_names(root)
                _PROBE_TARGETS[id(root)] = weakref.ref(root)
                name = self._name_of(module)
        construction = _CONSTRUCTION.get(id(module))
        site = construction[1] if construction and construction[0]() is module else None
        momentum = module.momentum
        state = _ModuleState(
            reference=weakref.ref(module, self._forget_module(id(module))),
            description=BatchNormModule(
                path=name or type(module).__name__,
                class_name=type(module).__name__,
                num_features=int(module.num_features),
                momentum=float(momentum) if momentum is not None else None,
                affine=bool(module.affine),
                construction=site,
            ),
        )
        self._modules[id(module)] = state
        return state

    def _forget_module(self, key: int) -> Callable[[weakref.ref[Any]], None]:
        modules = self._modules

        def forget(reference: weakref.ref[Any]) -> None:
            state = modules.get(key)
            if state is not None and state.reference is reference:
                del modules[key]

        return forget

    # -- event sources -------------------------------------------------------------------

    def _on_batchnorm(self, module: _BatchNorm, args: tuple[Any, ...], previous: Any) -> None:
        state = self._state_for(module)
        if state is None:
            return
        if state.mode_seq != self._mode_seq:
            self._apply_mode_records(state, id(module))
        # The module's own dicts: nn.Module.__getattr__ costs microseconds per lookup.
        buffers, parameters = module._buffers, module._parameters
        nbt = buffers.get("num_batches_tracked")
        if state.pending_call is not None:
            self._confirm_pending(state, nbt)
        x = args[0] if args else None
        shape, dtype = (
            (tuple(x.shape), str(x.dtype)) if isinstance(x, torch.Tensor) else (None, None)
        )
        training = module.training
        grad_enabled = torch.is_grad_enabled()
        weight, bias = parameters.get("weight"), parameters.get("bias")
        affine_frozen = (
            weight is not None
            and not weight.requires_grad
            and (bias is None or not bias.requires_grad)
        )
        running_var = buffers.get("running_var")
        previous_name = None
        if previous is not None:
            previous_name = self._name_of(previous) or type(previous).__name__
        call = BatchNormCall(
            module=state.description,
            training=training,
            track_running_stats=module.track_running_stats,
            grad_enabled=grad_enabled,
            inference_mode=torch.is_inference_mode_enabled(),
            affine_frozen=affine_frozen,
            input_shape=shape,
            input_dtype=dtype,
            buffer_dtype=str(running_var.dtype) if running_var is not None else None,
            stats_reestimation=training
            and not grad_enabled
            and sites.on_stack(STATS_REESTIMATION_FUNCTIONS),
            previous_module=previous_name,
            mode_site=state.mode_site,
            frozen_eval_site=state.frozen_eval_site,
        )
        self._emit(call, state)
        if affine_frozen and call.updates_running_stats and nbt is not None:
            state.pending_call = call
            state.pending_version = (id(nbt), nbt._version)
        state.forwards += 1
        if (
            self.sample_every
            and running_var is not None
            and (state.forwards - 1) % self.sample_every == 0
            and not running_var.is_meta
            and _THREAD.export_depth == 0
            and not torch.jit.is_tracing()  # type: ignore[no-untyped-call,attr-defined]
        ):
            self._sample(call, running_var, state)

    def _confirm_pending(self, state: _ModuleState, nbt: Any) -> None:
        call, version = state.pending_call, state.pending_version
        state.pending_call = state.pending_version = None
        if call is None or version is None or nbt is None:
            return
        if id(nbt) == version[0] and nbt._version != version[1]:
            self._emit(RunningStatsUpdated(call=call), state)

    def _flush_pending(self) -> None:
        for state in list(self._modules.values()):
            module = state.reference()
            if module is not None and state.pending_call is not None:
                self._confirm_pending(state, module.num_batches_tracked)

    def _sample(self, call: BatchNormCall, running_var: torch.Tensor, state: _ModuleState) -> None:
        # The one value read, on sampled forwards only: it syncs an accelerator.
        with torch.no_grad():
            finite = bool(torch.isfinite(running_var).all())
            positive = bool((running_var > 0).all())
        self._emit(RunningStatsSample(call, finite, positive), state)

    def _on_mode_change(self, root: nn.Module, training: bool) -> None:
        # Cheap on purpose (loops call `model.train()` every step): one record per call;
        # each BatchNorm applies the records it has not seen at its next forward.
        if self._scope is not None and id(root) not in self._scope:
            return
        subtree = self._subtree(root)
        self._mode_seq += 1
        site = sites.first_user_site(sys._getframe(1))
        self._mode_records.append(_ModeRecord(self._mode_seq, id(root), subtree, training, site))
        if len(self._mode_records) > MAX_MODE_RECORDS:
            del self._mode_records[0]

    def _subtree(self, root: nn.Module) -> frozenset[int]:
        known = self._subtrees.get(id(root))
        if known is not None and known[0]() is root:
            return known[1]
        subtree = frozenset(id(sub) for sub in root.modules())
        self._subtrees[id(root)] = (weakref.ref(root), subtree)
        return subtree

    def _apply_mode_records(self, state: _ModuleState, key: int) -> None:
        unseen = self._mode_seq - state.mode_seq
        for record in self._mode_records[-unseen:]:
            if record.seq <= state.mode_seq or key not in record.subtree:
                continue
            overridden = (
                record.training
                and state.mode_training is False
                and state.mode_root is not None
                and state.mode_root != record.root
                and state.mode_root in record.subtree
            )
            state.frozen_eval_site = state.mode_site if overridden else None
            state.mode_root, state.mode_training = record.root, record.training
            state.mode_site = record.site
        state.mode_seq = self._mode_seq

    def _on_export(self, function: str, module: nn.Module, onnx_training: Any) -> None:
        if self._scope is not None and id(module) not in self._scope:
            return
        self._learn_names(module)
        training = tuple(
            (self._name_of(sub) or type(sub).__name__)
            for sub in module.modules()
            if _kind(type(sub)) == _BATCHNORM and sub.training
        )
        onnx = None
        if onnx_training is not None:
            onnx = getattr(onnx_training, "name", str(onnx_training))
        self._emit(ExportCall(function, type(module).__name__, training, onnx), None)

    def _on_model_output(self, model: nn.Module, bn: Any, through: str | None) -> None:
        if self._scope is not None and id(model) not in self._scope:
            return
        state = self._state_for(bn) if isinstance(bn, _BatchNorm) else None
        description = state.description if state is not None else None
        self._emit(ModelOutput(type(model).__name__, description, through), state)
