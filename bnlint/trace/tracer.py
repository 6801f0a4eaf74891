"""The runtime tracer: PyTorch activity → events → rules' runtime checks → findings.

Mechanism (ecosystem.md part 3): class-level patches and global hooks, never per-module
hooks (those break `torch.jit.script`, `torch.save(model)` and deepcopy), installed once
for all active tracers and removed when the last one stops:

- a wrapper around `nn.Module._call_impl` that looks at every module call before it
  runs, as a global forward pre-hook would, but keeps torch's hook-free fast path; it
  returns at once unless the module is a BatchNorm (a per-type cache), and reads only
  flags, shapes, dtypes and `_version` counters, so it never syncs a device;
- a buffer-registration hook that remembers where each BatchNorm was built;
- wrappers around `nn.Module.train`, `Tensor.backward`/`torch.autograd.backward` and the
  export functions (`torch.jit.trace`, `torch.export.export`, `torch.fx.symbolic_trace`,
  `torch.save`, `torch.onnx.export`), restored on removal;
- a forward hook that exists only while a model's first call is being probed for a
  BatchNorm output (BN001), then is removed again.

Nothing here changes a result: hooks return None and never touch tensor data, except the
sampled value reads (the first forward of each module, then every `sample_every`-th,
backing off while they find the same thing: running-variance health, and in eval the
initial-buffer check and the input shift of a model's first BatchNorm). Every hook
body is guarded: an exception becomes a BN999 finding and the user's program goes on;
after `MAX_INTERNAL_ERRORS` the tracer stops checking.

The hot path, one BatchNorm forward, is kept to a few attribute reads: each tracer
knows per event type which rules subscribe (fixed when it is built); a module's static
facts (qualified name, construction site, class facts) are computed once; and a call
whose flags, shapes and dtypes equal the module's previous call is not rebuilt or
re-checked: the findings it produced are counted again (the contract in
`bnlint.events`). In the steady state that comparison is one tuple of what a single call
can show (mode flag, grad mode, input shape and dtype, producer, the tracer's stamp);
the facts only persistent findings read are compared at a doubling interval. Stack
walks happen only when a finding is new.
"""

from __future__ import annotations

import atexit
import functools
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
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
    BatchNormReuse,
    Event,
    ExportCall,
    InputShiftSample,
    ModelOutput,
    RunningStatsSample,
    RunningStatsUpdated,
    Site,
    StateDictLoaded,
    TrainingLoaderEpoch,
)
from bnlint.finding import INTERNAL_ERROR, Finding, Position, Severity, Source
from bnlint.registry import all_rules, default_codes, resolve_selector
from bnlint.rule import Rule, RuntimeReport
from bnlint.trace import sites
from bnlint.trace.timeline import Timeline

F = TypeVar("F", bound=Callable[..., Any])

MAX_INTERNAL_ERRORS = 20
# A module's value reads back off while they find the same thing: the interval between
# two samples doubles up to this many times `sample_every` (see `Tracer._sampled`).
MAX_SAMPLE_BACKOFF = 8
# The facts of a BatchNorm call that only persistent findings read and that change only
# by an assignment the tracer cannot see (`requires_grad` of the affine parameters,
# `track_running_stats`, the buffers' dtype) are read at least every this many calls.
MAX_FULL_INTERVAL = 32
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
# Bound once: attribute lookups through `torch.` cost on every forward.
_is_grad_enabled = torch.is_grad_enabled
_is_inference_mode_enabled = torch.is_inference_mode_enabled
_is_compiling = torch.compiler.is_compiling
_Tensor = torch.Tensor
_module_setattr = nn.Module.__setattr__
# Modules whose output feeds the *last* dimension of the next tensor (BN015), and how
# to read that feature size.
_LAST_DIM_FEATURES: tuple[tuple[type, Callable[[Any], int | None]], ...] = (
    (nn.Linear, lambda m: int(m.out_features)),
    (nn.Embedding, lambda m: int(m.embedding_dim)),
    (nn.EmbeddingBag, lambda m: int(m.embedding_dim)),
    (nn.LayerNorm, lambda m: int(m.normalized_shape[-1]) if m.normalized_shape else None),
    (nn.MultiheadAttention, lambda m: int(m.embed_dim)),
    (
        nn.RNNBase,
        lambda m: (
            int(m.proj_size or m.hidden_size) * (2 if m.bidirectional else 1)
            if m.batch_first
            else None
        ),
    ),
)


def _last_dim_features(module: Any) -> int | None:
    for cls, features in _LAST_DIM_FEATURES:
        if isinstance(module, cls):
            return features(module)
    return None


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
        self.load_depth = 0


_THREAD = _ThreadState()
_LOCK = threading.RLock()
_ACTIVE: list[Tracer] = []
# An immutable copy of _ACTIVE read by the hooks (no copy per call); set under _LOCK.
_ACTIVE_NOW: list[tuple[Tracer, ...]] = [()]
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


def _patched_call_impl(original: Callable[..., Any]) -> Callable[..., Any]:
    """`nn.Module._call_impl` with the tracer's look at the call first.

    A wrapper rather than a global forward pre-hook: any global hook takes every module
    call off `_call_impl`'s hook-free fast path, which alone cost 10-19% of a small
    model's eval forward (bench/RESULTS.md); this costs one dict lookup per non-BatchNorm
    call. Like a pre-hook it returns nothing and touches neither args nor outputs.
    Named `_call_impl` so that `sites.walk` treats its frame as a module call.
    """

    def _call_impl(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        active = _ACTIVE_NOW[0]
        if active:
            kind = _KINDS.get(type(self))
            if kind is None:
                kind = _kind(type(self))
            if kind == _BATCHNORM:
                # Values computed inside a compiled region would be trace-time constants.
                if not _is_compiling():
                    previous = _LAST_LEAF[0]
                    if _PROBE:
                        _probe_producer(self, previous)
                    for tracer in active:
                        if not tracer.disabled:
                            try:
                                tracer._on_batchnorm(self, args, previous)
                            except Exception as error:
                                tracer._internal_error(error)
            elif not self._modules:
                _LAST_LEAF[0] = self
            elif _PROBE_TARGETS and _PROBE_TARGETS.get(id(self), _dead)() is self:
                _start_probe(self)
        return original(self, *args, **kwargs)

    return _call_impl


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
    _PROBE.update(
        root=root,
        bn=None,
        bn_output=None,
        activation_output=None,
        activation=None,
        producers={},
    )
    _PROBE["handle"] = module_hooks.register_module_forward_hook(_probe_hook, always_call=True)


def _probe_producer(module: nn.Module, previous: Any) -> None:
    """During a probed forward: which modules fed each BatchNorm call (BN019)."""
    try:
        calls = _PROBE["producers"].setdefault(id(module), [module, 0, {}])
        calls[1] += 1
        if previous is not None:
            calls[2][id(previous)] = previous
    except Exception as error:
        for tracer in _ACTIVE_NOW[0]:
            tracer._internal_error(error)


def _reused_batchnorms() -> list[tuple[Any, int, list[Any]]]:
    return [
        (module, count, list(producers.values()))
        for module, count, producers in _PROBE.get("producers", {}).values()
        if count > 1 and len(producers) > 1
    ]


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
            reused = _reused_batchnorms()
            _stop_probe()
            for tracer in _ACTIVE_NOW[0]:
                tracer._guarded(tracer._on_model_output, module, bn, through)
                for bn_module, count, producers in reused:
                    tracer._guarded(tracer._on_reuse, bn_module, count, producers)
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
        thread = _THREAD
        if thread.mode_depth:
            # The recursion into children: only the outermost call is recorded.
            return original(self, mode)
        thread.mode_depth = 1
        try:
            if isinstance(mode, bool):
                _set_mode(self, mode, train)
                result = self
            else:
                result = original(self, mode)  # torch's ValueError
        finally:
            thread.mode_depth = 0
        active = _ACTIVE_NOW[0]
        if active:
            try:
                # One walk for every tracer: the user line that switched the mode.
                site = sites.first_user_site(sys._getframe(1))
            except Exception:
                site = None
            for tracer in active:
                tracer._guarded(tracer._on_mode_change, self, bool(mode), site)
        return result

    return train


def _set_mode(root: nn.Module, mode: bool, train: Callable[..., Any]) -> None:
    """What `nn.Module.train(root, mode)` does (set `training`, then call each child's
    `train(mode)`, depth first), without a Python call per child whose class keeps
    nn.Module's `train` (`train` is the installed wrapper), and without re-assigning a
    flag that already has the value: the wrapper's frame on every child cost ~2.5% of
    a small model's eval forward when the loop calls `model.eval()` each step. A child
    that overrides `train` (a frozen-BatchNorm module, a LightningModule) is called as
    torch would call it, in the same order."""
    pending: list[nn.Module] = [root]
    while pending:
        module = pending.pop()
        if module is not root and type(module).train is not train:
            module.train(mode)
            continue
        # Assigning the value a module already has changes nothing unless its class
        # overrides __setattr__ (nn.Module's stores a bool flag as a plain attribute).
        if module.__dict__.get("training") is not mode or (
            type(module).__setattr__ is not _module_setattr
        ):
            module.training = mode
        children = list(module.children())
        if children:
            children.reverse()
            pending += children


def _patched_backward(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def backward(*args: Any, **kwargs: Any) -> Any:
        depth = _THREAD.backward_depth
        if depth == 0:
            for tracer in _ACTIVE_NOW[0]:
                tracer._guarded(tracer._on_backward)
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
            for tracer in _ACTIVE_NOW[0]:
                tracer._guarded(tracer._on_export, function, args[0], onnx_training)
        _THREAD.export_depth = depth + 1
        try:
            return original(*args, **kwargs)
        finally:
            _THREAD.export_depth = depth

    return export


def _patched_load_state_dict(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def load_state_dict(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        depth = _THREAD.load_depth
        _THREAD.load_depth = depth + 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            _THREAD.load_depth = depth
        if depth == 0:
            for tracer in _ACTIVE_NOW[0]:
                tracer._guarded(tracer._on_load, self, result)
        return result

    return load_state_dict


def _patched_loader_iter(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __iter__(self: Any) -> Any:
        iterator = original(self)
        for tracer in _ACTIVE_NOW[0]:
            tracer._guarded(tracer._on_loader_iter, self, iterator)
        return iterator

    return __iter__


def _world_size() -> int:
    """torch.distributed's world size, 1 when no process group is initialised."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 1
    return int(dist.get_world_size())


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
    _patch(nn.Module, "_call_impl", _patched_call_impl(nn.Module._call_impl))
    _HANDLES.append(
        module_hooks.register_module_buffer_registration_hook(_buffer_registration_hook)
    )
    _patch(nn.Module, "train", _patched_train(nn.Module.train))
    _patch(torch.Tensor, "backward", _patched_backward(torch.Tensor.backward))
    _patch(torch.autograd, "backward", _patched_backward(torch.autograd.backward))
    _patch(nn.Module, "load_state_dict", _patched_load_state_dict(nn.Module.load_state_dict))
    loader = torch.utils.data.DataLoader
    _patch(loader, "__iter__", _patched_loader_iter(loader.__iter__))
    for owner, attribute, function in _export_targets():
        if attribute in owner.__dict__:
            _patch(owner, attribute, _patched_export(getattr(owner, attribute), function))
    if not _ATEXIT_REGISTERED:
        atexit.register(_uninstall)
        _ATEXIT_REGISTERED = True


def _uninstall() -> None:
    with _LOCK:
        _ACTIVE.clear()
        _ACTIVE_NOW[0] = ()
        while _HANDLES:
            _HANDLES.pop().remove()
        while _PATCHES:
            owner, attribute, original = _PATCHES.pop()
            replacement = owner.__dict__.get(attribute)
            setattr(owner, attribute, original)
            if owner is nn.Module and attribute == "_call_impl":
                _restore_dynamo_reference(replacement, original)
        _stop_probe()
        _PROBE_TARGETS.clear()
        _CONSTRUCTION.clear()
        _LAST_LEAF[0] = None


def _restore_dynamo_reference(wrapper: Any, original: Any) -> None:
    """torch._dynamo remembers `nn.Module._call_impl` when it is first imported (to
    skip straight to `forward`); imported while tracing, it remembered the wrapper."""
    for name in ("torch._dynamo.utils", "torch._dynamo.variables.nn_module"):
        module = sys.modules.get(name)
        if module is not None and module.__dict__.get("unpatched_nn_module_call_impl") is wrapper:
            module.__dict__["unpatched_nn_module_call_impl"] = original


def installed() -> bool:
    """True while any tracer's hooks or patches are in place (for tests)."""
    return bool(_HANDLES or _PATCHES)


# ---------------------------------------------------------------------------------------
# One tracer: its scope, its rules, its findings.


@dataclass(slots=True)
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
    # The previous call's facts and the finding keys its checks produced: an identical
    # next call only counts those findings again (see `Tracer._on_batchnorm`).
    memo_key: tuple[Any, ...] | None = None
    memo_findings: tuple[tuple[str, str, str, Site | None], ...] = ()
    last_call: BatchNormCall | None = None
    # The facts of the previous call that can change without an event the tracer sees
    # (flags, grad mode, input shape and dtype, producer) and the tracer's stamp; set
    # only when nothing else is needed per call (see `Tracer._on_batchnorm`).
    quick_key: tuple[Any, ...] | None = None
    # The quick path runs while `forwards` is below this: then the full path runs (a
    # value read is due, or the facts outside the quick key are read again).
    next_full: int = 0
    full_gap: int = 1
    # Value reads: the forward count of the next one, the current interval, and what
    # the last one found (finding keys) with the training flag it ran under.
    next_sample: int = 1
    sample_gap: int = 0
    sample_found: tuple[tuple[str, str, str, Site | None], ...] | None = None
    sample_training: bool | None = None
    initial_checked: bool = False  # BN017's initial-buffer read done
    in_averaged_model: bool = False  # description.in_averaged_model, read per forward
    # BN021's (statistics versions, (1/std, -mean/std)) at the last input-shift sample.
    z_terms: tuple[tuple[int, int, int, int], tuple[Any, Any]] | None = None
    # The last running-variance read: (the tensor, its _version, finite, positive).
    variance_seen: tuple[weakref.ref[Any], int, bool, bool] | None = None


@dataclass(slots=True)
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
    clock: int = 0  # the timeline's clock when first seen (0 without a timeline)


@dataclass
class _Rules:
    by_event: dict[type, list[type[Rule]]] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)

    def wants(self, *event_types: type) -> bool:
        return any(self.by_event.get(event_type) for event_type in event_types)


@dataclass(frozen=True)
class _LoaderIteration:
    iterator: weakref.ref[Any]
    batch_size: int
    drop_last: bool
    samples: int
    site: Site | None


# Codes `transductive-batchnorm = true` turns off (RULES.md: BN kept in training mode at
# test time on purpose).
TRANSDUCTIVE_CODES = frozenset({"BN002", "BN005", "BN012"})


def _select_rules(
    rules: Iterable[type[Rule]] | None,
    select: Iterable[str] | None,
    ignore: Iterable[str] | None,
    options: Mapping[str, Any],
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
    if options.get("transductive-batchnorm"):
        codes -= TRANSDUCTIVE_CODES
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
        options: Mapping[str, Any] | None = None,
        timeline: bool = False,
    ) -> None:
        self._model_ref = weakref.ref(model) if model is not None else None
        # The run's picture (`bnlint run --html`); None: nothing recorded.
        self.timeline: Timeline | None = Timeline() if timeline else None
        self.options: Mapping[str, Any] = dict(options or {})
        self._rules = _Rules()
        selected = _select_rules(rules, select, ignore, self.options)
        for rule in selected:
            # A rule's scratch memory; "options" holds the [tool.bnlint] settings.
            self._rules.memory[rule.code] = {"options": self.options}
            for event_type in rule.runtime_events:
                self._rules.by_event.setdefault(event_type, []).append(rule)
        self._rule_names = {rule.code: rule.name for rule in selected}
        self._severities = {rule.code: rule.severity for rule in selected}
        # What the BatchNorm hot path has to produce, decided once.
        self._call_rules = tuple(self._rules.by_event.get(BatchNormCall, ()))
        self._wants_updates = self._rules.wants(RunningStatsUpdated)
        self._wants_samples = self._rules.wants(RunningStatsSample, InputShiftSample)
        self._wants_batchnorm = bool(
            self._call_rules or self._wants_updates or self._wants_samples or timeline
        )
        self._wants_loaders = self._rules.wants(TrainingLoaderEpoch)
        self._loader_iterations: list[_LoaderIteration] = []
        self._world = 1
        # Moves whenever a BatchNorm call's facts can change through a tracer-level
        # event (a train()/eval() record, the world size): part of each quick key.
        self._stamp = 0
        self._averaged: dict[int, weakref.ref[Any]] = {}
        # BN018: per module, (num_batches_tracked, its version) when last made fresh.
        self._stats_fresh: dict[int, tuple[weakref.ref[Any], int]] = {}
        self._first_batchnorms: dict[int, weakref.ref[Any]] = {}
        self.sample_every = sample_every
        # Every how many forwards a module's values are read; 0: never.
        self._sampling = (sample_every or 0) if self._wants_samples else 0
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
            self._set_world(_world_size())
            if not _ACTIVE:
                _install()
            _ACTIVE.append(self)
            _ACTIVE_NOW[0] = tuple(_ACTIVE)
        return self

    def stop(self) -> None:
        with _LOCK:
            if self._depth == 0:
                return
            self._depth -= 1
            if self._depth > 0:
                return
            self._guarded(self._flush_pending)
            self._guarded(self._final_samples)
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            _ACTIVE_NOW[0] = tuple(_ACTIVE)
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
        code, name = INTERNAL_ERROR
        key = (code, description, "internal", None)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.count += 1
                return
            self._entries[key] = _Entry(
                code=code,
                name=name,
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

    def _emit(
        self,
        event: Event,
        state: _ModuleState | None,
        rules: Iterable[type[Rule]] | None = None,
    ) -> list[tuple[str, str, str, Site | None]]:
        """Hand `event` to the rules that read its type; the keys of what they found."""
        found = []
        memory = self._rules.memory
        for rule in self._rules.by_event.get(type(event), ()) if rules is None else rules:
            for report in rule.check_runtime(event, memory[rule.code]):
                found.append(self._record(rule.code, report, state))
        return found

    def _record(
        self, code: str, report: RuntimeReport, state: _ModuleState | None
    ) -> tuple[str, str, str, Site | None]:
        severity = report.severity or self._severities[code]
        key = (code, report.subject, report.at, report.site)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.count += 1
                return key
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
                return key
            self._entries[key] = _Entry(
                code=code,
                name=self._rule_names[code],
                severity=severity,
                site=site,
                message=report.message,
                suggestion=report.suggestion,
                notes=notes,
                subject=report.subject,
                clock=self.timeline.clock if self.timeline is not None else 0,
            )
        return key

    def _count_again(self, keys: Iterable[tuple[str, str, str, Site | None]]) -> None:
        with self._lock:
            for key in keys:
                self._entries[key].count += 1

    # -- module knowledge ----------------------------------------------------------------

    def _learn_names(self, root: nn.Module) -> None:
        known = self._named_roots.get(id(root))
        if known is not None and known() is root:
            return
        self._named_roots[id(root)] = weakref.ref(root)
        first = True
        for name, sub in root.named_modules():
            if self._name_of(sub) is None:
                self._names[id(sub)] = (weakref.ref(sub), name or type(sub).__name__)
            if first and _kind(type(sub)) == _BATCHNORM:
                self._first_batchnorms[id(sub)] = weakref.ref(sub)
                first = False
            if _is_averaged_without_buffers(sub):
                for inner in sub.modules():
                    if _kind(type(inner)) == _BATCHNORM:
                        self._averaged[id(inner)] = weakref.ref(inner)

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
        first = self._first_batchnorms.get(id(module))
        averaged = self._averaged.get(id(module))
        state = _ModuleState(
            reference=weakref.ref(module, self._forget_module(id(module))),
            description=BatchNormModule(
                path=name or type(module).__name__,
                class_name=type(module).__name__,
                num_features=int(module.num_features),
                momentum=float(momentum) if momentum is not None else None,
                affine=bool(module.affine),
                construction=site,
                first_in_model=first is not None and first() is module,
                in_averaged_model=averaged is not None and averaged() is module,
            ),
        )
        state.in_averaged_model = state.description.in_averaged_model
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

    def _on_batchnorm(self, module: Any, args: tuple[Any, ...], previous: Any) -> None:
        state = self._modules.get(id(module))
        if state is None or state.reference() is not module:
            # First sight: names the module and arms the model's output probe.
            state = self._state_for(module)
            if state is None:
                return
        x = args[0] if args else None
        quick = state.quick_key
        if quick is not None and state.forwards < state.next_full:
            # The steady state (an eval loop, a training loop): the facts that can
            # change with no event the tracer sees and that a single call can show
            # (mode flag, grad mode, input shape and dtype, producer) in one tuple,
            # compared with the previous call's. The rest is read again by the full
            # path: on a stamp change (mode records, world size), and every
            # `next_full`-th call for the facts that only persistent findings read.
            shape: Any = None
            dtype: Any = None
            if isinstance(x, _Tensor):
                shape, dtype = x.shape, x.dtype
            if quick == (
                self._stamp,
                module.training,
                _is_grad_enabled(),
                _is_inference_mode_enabled(),
                shape,
                dtype,
                id(previous),
            ):
                state.forwards += 1
                if state.memo_findings:
                    self._count_again(state.memo_findings)
                return
        self._on_batchnorm_call(state, module, x, previous)

    def _on_batchnorm_call(self, state: _ModuleState, module: Any, x: Any, previous: Any) -> None:
        """A BatchNorm call that the quick key did not match: read every fact, build
        the call event if it differs from the module's previous one, run the checks."""
        if not self._wants_batchnorm:
            return
        if state.mode_seq != self._mode_seq:
            self._apply_mode_records(state, id(module))
        # The module's own dicts: nn.Module.__getattr__ costs microseconds per lookup.
        # `num_batches_tracked` is read only where it is needed (rare cases).
        buffers, parameters = module._buffers, module._parameters
        if state.pending_call is not None:
            self._confirm_pending(state, buffers.get("num_batches_tracked"))
        shape, dtype = (x.shape, x.dtype) if isinstance(x, _Tensor) else (None, None)
        training = module.training
        grad_enabled = _is_grad_enabled()
        inference_mode = _is_inference_mode_enabled()
        affine_frozen = _affine_frozen(parameters)
        track_running_stats = module.track_running_stats
        running_var = buffers.get("running_var")
        buffer_dtype = running_var.dtype if running_var is not None else None
        # Only in the rare training-without-grad case: is update_bn (or the like) running?
        no_grad_training = training and (inference_mode or not grad_enabled)
        reestimation = no_grad_training and sites.on_stack(STATS_REESTIMATION_FUNCTIONS)
        averaged_stale = state.in_averaged_model and self._averaged_stats_stale(
            module, buffers.get("num_batches_tracked"), training
        )
        key = (
            training,
            track_running_stats,
            grad_enabled,
            inference_mode,
            affine_frozen,
            shape,
            dtype,
            buffer_dtype,
            id(previous),  # an id: the key must not keep a module alive
            reestimation,
            averaged_stale,
            self._world,
        )
        if self.timeline is not None:
            # Before the checks: a finding this call produces is placed on this call.
            self._record_timeline(state, module, training, shape)
        repeated = key == state.memo_key
        if repeated:
            # The same call as last time: count what it found again, build nothing.
            if state.memo_findings:
                self._count_again(state.memo_findings)
        else:
            call = self._call(state, module, key, previous)
            state.memo_key = None  # not memoised if a check raises
            state.memo_findings = tuple(self._emit(call, state, self._call_rules))
            state.memo_key = key
            state.last_call = call
        pending = self._wants_updates and affine_frozen and training and track_running_stats
        if pending:
            nbt = buffers.get("num_batches_tracked")
            if nbt is not None:
                state.pending_call = state.last_call
                state.pending_version = (id(nbt), nbt._version)
        if training is not state.sample_training and state.sample_found is not None:
            self._sample_soon(state)  # a new phase (training ↔ eval)
        state.forwards += 1
        if state.forwards >= state.next_sample:
            self._sampled(state, module, x)
        if (
            pending
            or no_grad_training
            or state.in_averaged_model
            or self.timeline is not None
            or state.memo_key is None
        ):
            state.quick_key = None
            return
        # Nothing but the facts in the quick key can change this call from one call to
        # the next; the others (affine parameters frozen, track_running_stats, the
        # buffers' dtype) are read here again after an interval that doubles while the
        # call stays the same, up to `MAX_FULL_INTERVAL` calls.
        if repeated:
            state.full_gap = min(state.full_gap * 2, MAX_FULL_INTERVAL)
        else:
            state.full_gap = 1
        state.next_full = min(state.next_sample, state.forwards + state.full_gap) - 1
        state.quick_key = (
            self._stamp,
            training,
            grad_enabled,
            inference_mode,
            shape,
            dtype,
            id(previous),
        )

    def _sample_soon(self, state: _ModuleState) -> None:
        """Something a value read depends on changed (the module switched between
        training and eval, statistics were loaded): read within `sample_every`
        forwards again, never sooner than that after the previous read."""
        if self._sampling:
            state.sample_gap = self._sampling
            state.next_sample = min(state.next_sample, state.forwards + self._sampling)
            state.next_full = min(state.next_full, state.next_sample - 1)

    def _sampled(self, state: _ModuleState, module: Any, x: Any) -> None:
        """A forward due for value reads: read them if they can be read, and plan the
        next. The interval starts at `sample_every`, doubles (up to
        `MAX_SAMPLE_BACKOFF` times) while each read finds what the previous one found,
        and goes back to `sample_every` when a read finds something else or the module
        switches between training and eval. A condition that persists (non-finite
        statistics, shifted eval inputs) is still read within that many forwards; a
        finding that only a single forward shows can be read later than every
        `sample_every`-th forward, or not at all (bench/RESULTS.md, issue 12)."""
        sampling = self._sampling
        if not sampling:
            state.next_sample = sys.maxsize
            return
        gap = state.sample_gap or sampling
        state.next_sample = state.forwards + gap
        running_var = module._buffers.get("running_var")
        if running_var is None:
            state.next_sample = sys.maxsize  # no statistics, nothing to read
            return
        if running_var.is_meta or _THREAD.export_depth:
            return
        if torch.jit.is_tracing():  # type: ignore[no-untyped-call,attr-defined]
            return
        call = state.last_call
        assert call is not None
        found = self._sample(call, module, x, state)
        if found == state.sample_found and call.training is state.sample_training:
            gap = min(gap * 2, sampling * MAX_SAMPLE_BACKOFF)
        else:
            gap = sampling
        state.sample_gap, state.sample_found = gap, found
        state.sample_training = call.training
        state.next_sample = state.forwards + gap

    def _record_timeline(
        self, state: _ModuleState, module: _BatchNorm, training: bool, shape: Any
    ) -> None:
        timeline = self.timeline
        assert timeline is not None
        description = state.description
        batch = int(shape[0]) if shape is not None and len(shape) > 1 else None
        timeline.observe(description.path, description.class_name, training, batch)
        every, forwards = self.sample_every, state.forwards + 1  # counting this call
        # Sampled forwards: 1, 2, 4, ... up to `sample_every` (a short run still shows
        # its shape), then every `sample_every`-th; and once more when tracing stops.
        if (
            every
            and (
                (forwards - 1) % every == 0 or (forwards < every and forwards & (forwards - 1) == 0)
            )
            and not torch.jit.is_tracing()  # type: ignore[no-untyped-call,attr-defined]
        ):
            self._sample_statistics(description.path, module)

    def _sample_statistics(self, path: str, module: Any) -> None:
        timeline = self.timeline
        mean, variance = module._buffers.get("running_mean"), module._buffers.get("running_var")
        if timeline is None or mean is None or variance is None or variance.is_meta:
            return
        # One read for both values.
        with torch.no_grad():
            values = torch.stack((mean.float().mean(), variance.float().mean())).tolist()
        timeline.sample(path, float(values[0]), float(values[1]))

    def _final_samples(self) -> None:
        if self.timeline is None or not self.sample_every:
            return
        for state in list(self._modules.values()):
            module = state.reference()
            if module is not None and state.forwards:
                self._sample_statistics(state.description.path, module)

    def timeline_report(self) -> dict[str, Any]:
        """The timeline and, per finding, where it was first seen (its clock and, for a
        finding about one layer, that layer): what `bnlint.report.html` draws."""
        data: dict[str, Any] = {"clock": 0, "layers": []}
        if self.timeline is not None:
            data = self.timeline.to_json()
        with self._lock:
            entries = list(self._entries.values())
        data["anchors"] = [
            {
                "code": entry.code,
                "message": entry.message,
                "layer": entry.subject.split(":", 1)[0] if entry.subject else "",
                "clock": entry.clock,
                "path": entry.site.path if entry.site else "<runtime>",
                "line": entry.site.line if entry.site else 1,
                "count": entry.count,
            }
            for entry in entries
        ]
        return data

    def _call(
        self, state: _ModuleState, module: _BatchNorm, key: tuple[Any, ...], previous: Any
    ) -> BatchNormCall:
        (
            training,
            track_running_stats,
            grad_enabled,
            inference_mode,
            affine_frozen,
            shape,
            dtype,
            buffer_dtype,
            _,
            reestimation,
            averaged_stale,
            world_size,
        ) = key
        previous_name = None
        if previous is not None:
            previous_name = self._name_of(previous) or type(previous).__name__
        return BatchNormCall(
            module=state.description,
            training=training,
            track_running_stats=track_running_stats,
            grad_enabled=grad_enabled,
            inference_mode=inference_mode,
            affine_frozen=affine_frozen,
            input_shape=tuple(shape) if shape is not None else None,
            input_dtype=str(dtype) if dtype is not None else None,
            buffer_dtype=str(buffer_dtype) if buffer_dtype is not None else None,
            stats_reestimation=reestimation,
            previous_module=previous_name,
            # A flag that disagrees with the last train()/eval() seen was assigned
            # (`m.training = ...`, Lightning's mode restore): that call is not the site.
            mode_site=state.mode_site if state.mode_training in (None, training) else None,
            frozen_eval_site=(
                state.frozen_eval_site if state.mode_training in (None, training) else None
            ),
            previous_features=_last_dim_features(previous) if previous is not None else None,
            world_size=world_size,
            averaged_stats_stale=averaged_stale,
        )

    def _averaged_stats_stale(self, module: Any, nbt: Any, training: bool) -> bool:
        """For a BatchNorm inside an AveragedModel without `use_buffers`: in eval, were
        its statistics left as `update_parameters` copied them from the source model?
        Fresh means the last change of `num_batches_tracked` (its version counter) was
        a training forward of this module (update_bn) or a `load_state_dict`."""
        if nbt is None:
            return False
        if training:
            if module.track_running_stats:
                # This forward adds 1 to num_batches_tracked (torch's _BatchNorm.forward).
                self._stats_fresh[id(module)] = (weakref.ref(nbt), nbt._version + 1)
            return False
        fresh = self._stats_fresh.get(id(module))
        if fresh is None:
            return True
        reference, version = fresh
        current = int(nbt._version)
        return reference() is not nbt or version != current

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
                self._confirm_pending(state, module._buffers.get("num_batches_tracked"))

    def _sample(
        self, call: BatchNormCall, module: _BatchNorm, x: Any, state: _ModuleState
    ) -> tuple[tuple[str, str, str, Site | None], ...]:
        """Read the values and hand them to the rules; the keys of what they found."""
        # The value reads, on sampled forwards only: each syncs an accelerator.
        buffers, parameters = module._buffers, module._parameters
        running_var, running_mean = buffers["running_var"], buffers["running_mean"]
        assert running_var is not None and running_mean is not None
        # The variance is read again only when it changed since the last read (its
        # version counter moves with every in-place update): an eval loop's statistics
        # do not change, so it costs one read per module, not one per sample. No-grad
        # is entered only around tensor work: entering it costs ~5 µs.
        seen, version = state.variance_seen, running_var._version
        if seen is not None and seen[1] == version and _is_referent(seen[0], running_var):
            finite, positive = seen[2], seen[3]
        else:
            with torch.no_grad():
                finite = bool(torch.isfinite(running_var).all())
                positive = bool((running_var > 0).all())
            state.variance_seen = (weakref.ref(running_var), version, finite, positive)
        initial = trained = None
        if not call.training and not state.initial_checked:
            # Once per module, at its first sampled eval forward (P22's moment).
            state.initial_checked = True
            with torch.no_grad():
                initial, trained = _initial_buffers_and_trained_affine(buffers, parameters)
        z = None
        if (
            not call.training
            and state.description.first_in_model
            and self._rules.wants(InputShiftSample)
            and isinstance(x, torch.Tensor)
            and x.dim() >= 2
            and x.shape[1] == running_var.shape[0]
            and x.numel() > x.shape[1]
        ):
            with torch.no_grad():
                terms = self._z_terms(state, running_mean, running_var, module)
                z = _median_input_z(x, terms)
        found = self._emit(RunningStatsSample(call, finite, positive, initial, trained), state)
        if z is not None:
            found += self._emit(InputShiftSample(call, z), state)
        return tuple(found)

    def _z_terms(
        self, state: _ModuleState, running_mean: Any, running_var: Any, module: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The input-shift terms of `module`'s statistics, computed again only when the
        statistics changed (an eval loop's never do): two kernels fewer per sample.
        Derived tensors of `num_features` values, dropped with the module's state."""
        versions = (id(running_mean), running_mean._version, id(running_var), running_var._version)
        cached = state.z_terms
        if cached is None or cached[0] != versions:
            cached = state.z_terms = (versions, _z_terms(running_mean, running_var, module.eps))
        return cached[1]

    def _on_mode_change(self, root: nn.Module, training: bool, site: Site | None) -> None:
        # Cheap on purpose (loops call `model.train()` every step): one record per call;
        # each BatchNorm applies the records it has not seen at its next forward.
        if self._scope is not None and id(root) not in self._scope:
            return
        records = self._mode_records
        if records:
            last = records[-1]
            if (
                last.root == id(root)
                and last.training == training
                # Sites are interned by `first_user_site`: identity first, it is cheaper.
                and (last.site is site or last.site == site)
            ):
                # The same call again (`model.train()` at every step): nothing new to
                # apply, and the BatchNorms' cached calls stay valid.
                return
        subtree = self._subtree(root)
        self._mode_seq += 1
        self._stamp += 1
        records.append(_ModeRecord(self._mode_seq, id(root), subtree, training, site))
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
            frozen_eval_site = state.mode_site if overridden else None
            if frozen_eval_site != state.frozen_eval_site or record.site != state.mode_site:
                state.memo_key = None  # the next call carries new sites
            state.frozen_eval_site = frozen_eval_site
            state.mode_root, state.mode_training = record.root, record.training
            state.mode_site = record.site
        state.mode_seq = self._mode_seq

    def _set_world(self, world: int) -> None:
        if world != self._world:
            self._world = world
            self._stamp += 1

    def _on_backward(self) -> None:
        self._set_world(_world_size())
        self._emit(Backward(), None)
        if not self._loader_iterations:
            return
        # Loader iterations still running when backward() runs are training loaders.
        still_running = []
        for iteration in self._loader_iterations:
            iterator = iteration.iterator()
            if iterator is None:
                continue
            if getattr(iterator, "_num_yielded", 0) == 0:
                still_running.append(iteration)
                continue
            last = iteration.samples % iteration.batch_size or iteration.batch_size
            self._emit(
                TrainingLoaderEpoch(
                    iteration.batch_size,
                    iteration.drop_last,
                    iteration.samples,
                    None if iteration.drop_last else last,
                    iteration.site,
                ),
                None,
            )
        self._loader_iterations = still_running

    def _on_loader_iter(self, loader: Any, iterator: Any) -> None:
        if not self._wants_loaders or loader.batch_size is None:
            return
        try:
            samples = len(loader.sampler)
        except TypeError:  # an IterableDataset without a length
            return
        if samples == 0:
            return
        site = sites.first_user_site(sys._getframe(1))
        self._loader_iterations = [
            iteration for iteration in self._loader_iterations if iteration.iterator() is not None
        ][-7:]
        self._loader_iterations.append(
            _LoaderIteration(
                weakref.ref(iterator), int(loader.batch_size), bool(loader.drop_last), samples, site
            )
        )

    def _on_load(self, module: nn.Module, result: Any) -> None:
        if self._scope is not None and id(module) not in self._scope:
            return
        for state in self._modules.values():
            self._sample_soon(state)
        for sub in module.modules():
            nbt = sub._buffers.get("num_batches_tracked")
            if nbt is not None and id(sub) in self._averaged:
                self._stats_fresh[id(sub)] = (weakref.ref(nbt), nbt._version)
        missing = getattr(result, "missing_keys", None) or ()
        running = tuple(
            key
            for key in missing
            if key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
        )
        site = sites.first_user_site(sys._getframe(1))
        self._emit(StateDictLoaded(type(module).__name__, running, site), None)

    def _on_reuse(self, module: Any, calls: int, producers: list[Any]) -> None:
        if self._scope is not None and id(module) not in self._scope:
            return
        state = self._state_for(module)
        if state is None:
            return
        names = tuple(self._name_of(p) or type(p).__name__ for p in producers)
        self._emit(BatchNormReuse(state.description, calls, names), state)

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


def _affine_frozen(parameters: dict[str, Any]) -> bool:
    """The module has affine parameters and none of them requires grad."""
    weight = parameters.get("weight")
    if weight is None or weight.requires_grad:
        return False
    bias = parameters.get("bias")
    return bias is None or not bias.requires_grad


def _running_var_dtype(buffers: dict[str, Any]) -> Any:
    running_var = buffers.get("running_var")
    return running_var.dtype if running_var is not None else None


def _is_referent(reference: weakref.ref[Any], value: object) -> bool:
    return reference() is value


def _is_averaged_without_buffers(module: nn.Module) -> bool:
    swa_utils = sys.modules.get("torch.optim.swa_utils")
    return (
        swa_utils is not None
        and isinstance(module, swa_utils.AveragedModel)
        and not getattr(module, "use_buffers", False)
    )


def _initial_buffers_and_trained_affine(
    buffers: dict[str, Any], parameters: dict[str, Any]
) -> tuple[bool | None, bool | None]:
    """(running statistics still at their initial values, affine parameters moved from
    their initial 1/0); None where a part is missing."""
    mean, var, nbt = (
        buffers.get("running_mean"),
        buffers.get("running_var"),
        buffers.get("num_batches_tracked"),
    )
    if mean is None or var is None or nbt is None:
        return None, None
    initial = bool(nbt == 0) and bool((mean == 0).all()) and bool((var == 1).all())
    weight, bias = parameters.get("weight"), parameters.get("bias")
    if weight is None:
        return initial, None
    trained = not bool((weight == 1).all()) or (bias is not None and not bool((bias == 0).all()))
    return initial, trained


def _median_input_z(x: torch.Tensor, terms: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Median over channels of |batch mean - running mean| / sqrt(running var + eps),
    with `terms` = (1 / sqrt(running var + eps), -running mean / sqrt(...))."""
    inverse_std, offset = terms
    per_channel = x.detach().float().mean(dim=(0, *range(2, x.dim())))
    return float(torch.addcmul(offset, per_channel, inverse_std).abs_().median())


def _z_terms(
    running_mean: torch.Tensor, running_var: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    inverse_std = running_var.float().add(eps).rsqrt_()
    return inverse_std, running_mean.float().neg().mul_(inverse_std)
