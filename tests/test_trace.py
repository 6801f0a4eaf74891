"""The tracer's guarantees: neutral, never raising, removable, metadata-only, and where
its findings point."""

from __future__ import annotations

import copy
import gc
import io
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import bnlint  # noqa: E402
from bnlint.events import BatchNormCall, Event, RunningStatsSample  # noqa: E402
from bnlint.finding import Severity, Source  # noqa: E402
from bnlint.rule import Rule, RuntimeReport  # noqa: E402
from bnlint.trace import tracer as tracer_module  # noqa: E402
from tests.test_trace_models import (  # noqa: E402
    ConvNet,
    conv_batch,
    frozen_bn_convnet,
    mlp,
    mlp_batch,
    train_steps,
)

# -- helpers ------------------------------------------------------------------------------


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"param:{n}": p.detach().clone() for n, p in model.named_parameters()}
    state.update(
        {f"grad:{n}": p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    )
    state.update({f"buffer:{n}": b.clone() for n, b in model.named_buffers()})
    return state


def _run(
    build: Callable[[], nn.Module],
    workload: Callable[[nn.Module], list[torch.Tensor]],
    traced: bool,
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(1234)
    if traced:
        with bnlint.trace():
            model = build()
            outputs = workload(model)
    else:
        model = build()
        outputs = workload(model)
    return outputs, _state(model), torch.get_rng_state()


def _no_grad_eval(model: nn.Module) -> list[torch.Tensor]:
    # Evaluation under no_grad *in training mode*: the BN002 situation, still neutral.
    with torch.no_grad():
        return [model(conv_batch()[0]) for _ in range(3)]


WORKLOADS: dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module], list[torch.Tensor]]]] = {
    "conv-net": (ConvNet, lambda m: train_steps(m, conv_batch)),
    "mlp-batchnorm1d": (mlp, lambda m: train_steps(m, mlp_batch)),
    "frozen-bn": (frozen_bn_convnet, lambda m: train_steps(m, conv_batch, freeze_bn=True)),
    "frozen-bn-in-train-mode": (frozen_bn_convnet, lambda m: train_steps(m, conv_batch)),
    "under-no-grad": (ConvNet, _no_grad_eval),
}


class Raises(Rule):
    """A runtime check that always fails.

    ## What it does
    Tests. ## Why is this bad? ## Example ## Use instead
    """

    code = "BN998"
    name = "raises"
    severity = Severity.ERROR
    runtime_events = (BatchNormCall,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        raise KeyError("boom")


class EveryForward(Rule):
    """Reports every BatchNorm forward (to test attribution and counting)."""

    code = "BN997"
    name = "every-forward"
    severity = Severity.WARNING
    runtime_events = (BatchNormCall, RunningStatsSample)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if isinstance(event, RunningStatsSample):
            memory.setdefault("samples", []).append(event.call.module.path)
            return
        assert isinstance(event, BatchNormCall)
        memory.setdefault("shapes", []).append(event.input_shape)
        yield RuntimeReport("forward", "none", subject=event.module.path)


# -- neutrality ---------------------------------------------------------------------------


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_outputs_grads_stats_and_rng_are_bitwise_identical_when_traced(workload: str) -> None:
    build, run = WORKLOADS[workload]
    plain_out, plain_state, plain_rng = _run(build, run, traced=False)
    traced_out, traced_state, traced_rng = _run(build, run, traced=True)
    assert len(plain_out) == len(traced_out)
    for plain, traced in zip(plain_out, traced_out, strict=True):
        assert torch.equal(plain, traced)
    assert plain_state.keys() == traced_state.keys()
    for key, value in plain_state.items():
        assert torch.equal(value, traced_state[key]), key
    assert torch.equal(plain_rng, traced_rng)


# -- never raises -------------------------------------------------------------------------


def test_a_failing_check_becomes_an_internal_finding_and_the_run_goes_on() -> None:
    torch.manual_seed(0)
    model = ConvNet()
    model.dropout.p = 0.0
    x = conv_batch()[0]
    expected = copy.deepcopy(model)(x)
    with bnlint.trace(rules=[Raises]) as t:
        out = model(x)
    assert torch.equal(out, expected)
    (finding,) = t.findings
    assert finding.code == "BN999"
    assert "KeyError" in finding.message
    assert finding.count == 5  # one per BatchNorm forward, counted, not repeated


def test_tracer_stops_checking_after_repeated_internal_errors() -> None:
    model = mlp()
    with bnlint.trace(rules=[Raises]) as t:
        for _ in range(tracer_module.MAX_INTERNAL_ERRORS + 5):
            model(mlp_batch()[0])
    assert t.disabled
    assert t.findings[0].count == tracer_module.MAX_INTERNAL_ERRORS


# -- removable ----------------------------------------------------------------------------


def _global_hook_counts() -> tuple[int, ...]:
    hooks = torch.nn.modules.module
    return (
        len(hooks._global_forward_pre_hooks),
        len(hooks._global_forward_hooks),
        len(hooks._global_buffer_registration_hooks),
    )


def test_no_hook_or_patch_remains_after_the_context_exits() -> None:
    before = _global_hook_counts()
    originals = (
        nn.Module._call_impl,
        nn.Module.train,
        torch.Tensor.backward,
        torch.autograd.backward,
        torch.jit.trace,
        torch.save,
        torch.fx.symbolic_trace,
        torch.export.export,
    )
    model = ConvNet()
    with bnlint.trace(model):
        assert _global_hook_counts() != before
        assert nn.Module._call_impl is not originals[0]
        assert nn.Module.train is not originals[1]
        train_steps(model, conv_batch, steps=1)
    assert _global_hook_counts() == before
    after = (
        nn.Module._call_impl,
        nn.Module.train,
        torch.Tensor.backward,
        torch.autograd.backward,
        torch.jit.trace,
        torch.save,
        torch.fx.symbolic_trace,
        torch.export.export,
    )
    assert after == originals
    assert not tracer_module.installed()
    assert not any(nn.Module.__dict__.get(name) for name in ("_bnlint",))
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks


def test_tracing_keeps_torchs_hook_free_module_call_path() -> None:
    # A global forward hook would send every module call down `_call_impl`'s slow path
    # (10-19% of a small model's eval forward): the tracer wraps `_call_impl` instead,
    # and the BN001 probe's forward hook lives only during a model's first call.
    hooks = torch.nn.modules.module
    model = mlp()
    with bnlint.trace(model) as t:
        model.train()
        for _ in range(2):
            model(mlp_batch()[0])
        assert not hooks._global_forward_pre_hooks and not hooks._global_forward_hooks
    assert t._modules  # the BatchNorm calls were seen


def test_dynamo_first_imported_while_tracing_keeps_the_real_call_impl() -> None:
    # torch._dynamo remembers nn.Module._call_impl at import; the tracer's wrapper must
    # not stay there after tracing (dynamo would never skip to `forward` again).
    code = (
        "import torch, bnlint\n"
        "from torch import nn\n"
        "model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))\n"
        "with bnlint.trace():\n"
        "    torch.compile(model, backend='eager')(torch.randn(8, 4))\n"
        "import torch._dynamo.utils as utils\n"
        "import torch._dynamo.variables.nn_module as nn_module\n"
        "assert utils.unpatched_nn_module_call_impl is nn.Module._call_impl\n"
        "assert nn_module.unpatched_nn_module_call_impl is nn.Module._call_impl\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


def test_hooks_are_removed_when_the_traced_code_raises() -> None:
    before = _global_hook_counts()
    with pytest.raises(RuntimeError, match="user error"), bnlint.trace():
        mlp()(mlp_batch()[0])
        raise RuntimeError("user error")
    assert _global_hook_counts() == before


def test_traced_model_can_be_garbage_collected() -> None:
    with bnlint.trace() as t:
        model = ConvNet()
        train_steps(model, conv_batch, steps=1)
        reference = weakref.ref(model)
        del model
    gc.collect()
    assert reference() is None
    assert t._modules == {}
    tracer = bnlint.trace(mlp())  # held by the tracer weakly too
    gc.collect()
    assert tracer._model_ref is not None and tracer._model_ref() is None


def test_nested_tracers_both_see_events_and_remove_everything() -> None:
    before = _global_hook_counts()
    model = mlp()
    with bnlint.trace(rules=[EveryForward]) as outer:
        with bnlint.trace(rules=[EveryForward]) as inner:
            model(mlp_batch()[0])
        assert tracer_module.installed()
        model(mlp_batch()[0])
    assert _global_hook_counts() == before
    assert inner.findings[0].count == 1
    assert outer.findings[0].count == 2


def test_decorator_traces_each_call() -> None:
    tracer = bnlint.trace(rules=[EveryForward])
    model = mlp()

    @tracer
    def evaluate(batch: torch.Tensor) -> torch.Tensor:
        return model(batch)

    evaluate(mlp_batch()[0])
    assert not tracer_module.installed()
    evaluate(mlp_batch()[0])
    assert tracer.findings[0].count == 2


# -- global hooks leave user workflows alone ----------------------------------------------


def test_scripting_pickling_and_deepcopy_work_while_tracing() -> None:
    model = ConvNet().eval()
    with bnlint.trace(model):
        scripted = torch.jit.script(model)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        clone = copy.deepcopy(model)
        x = conv_batch()[0]
        assert torch.equal(scripted(x), model(x))
        assert torch.equal(clone(x), model(x))
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert not loaded.stem[1]._forward_pre_hooks


def test_compiled_model_does_not_crash_the_tracer() -> None:
    model = mlp().eval()
    compiled = torch.compile(model, backend="eager")
    x = mlp_batch()[0]
    with bnlint.trace() as t:
        out = compiled(x)
    assert torch.equal(out, model(x))
    assert not [f for f in t.findings if f.code == "BN999"]


# -- metadata only ------------------------------------------------------------------------


def test_per_forward_checks_read_no_tensor_data() -> None:
    # On the meta device any data read (.item(), bool(), printing) raises: a clean run
    # with findings proves the per-forward path reads only shapes, flags and versions.
    with bnlint.trace(rules=[EveryForward]) as t:
        model = ConvNet().to("meta")
        model.train()
        for _ in range(3):
            model(torch.randn(4, 3, 8, 8, device="meta"))
    assert {f.code for f in t.findings} == {"BN997"}


def test_value_checks_run_only_on_sampled_forwards() -> None:
    model = mlp()
    sampled = []
    with bnlint.trace(rules=[EveryForward], sample_every=5) as t:
        for forward in range(1, 41):
            before = len(t._rules.memory["BN997"].get("samples", []))
            model(mlp_batch()[0])
            if len(t._rules.memory["BN997"]["samples"]) > before:
                sampled.append(forward)
    # Every 5th at first, the interval doubling while each read finds what the last did.
    assert sampled == [1, 6, 16, 36]


# -- where findings point -----------------------------------------------------------------


def test_finding_names_module_construction_site_and_calling_line() -> None:
    with bnlint.trace(rules=[EveryForward]) as t:
        model = ConvNet()  # construction line is inside ConvNet.__init__
        model(conv_batch()[0])  # the calling line
    calling_line = sys._getframe().f_lineno - 1
    findings = t.findings
    assert len(findings) == 1  # five BNs, one calling line: one finding
    (finding,) = findings
    assert finding.source is Source.RUNTIME
    assert finding.path.endswith("test_trace.py")
    assert finding.start.line == calling_line
    assert finding.count == 5
    assert "`stem.1`" in finding.notes[-2] or "`stem.1`" in " ".join(finding.notes)
    assert any("`layer1.0.bn1`" in note for note in finding.notes)
    assert any("test_trace_models.py" in note and "built at" in note for note in finding.notes)


def test_repeated_events_are_one_finding_with_a_count() -> None:
    model = mlp()
    with bnlint.trace(model, rules=[EveryForward]) as t:
        for _ in range(7):
            model(mlp_batch()[0])
    (finding,) = t.findings
    assert finding.count == 7
    assert any("built before tracing began" in note for note in finding.notes)


def test_trace_of_one_model_ignores_other_models() -> None:
    watched, other = mlp(), mlp()
    with bnlint.trace(watched, rules=[EveryForward]) as t:
        other(mlp_batch()[0])
    assert t.findings == []


def test_import_bnlint_does_not_import_torch() -> None:
    code = "import sys, bnlint, bnlint.trace\nassert 'torch' not in sys.modules, 'torch imported'\n"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- DataParallel -------------------------------------------------------------------------


def test_dataparallel_model_on_cpu_is_traced_without_crashing() -> None:
    # Without GPUs DataParallel calls the wrapped module itself: the checks run on the
    # real BatchNorms. With GPUs, replicas are new module objects per forward, called
    # from worker threads; they share the hook dicts, and the tracer's state is locked.
    model = nn.DataParallel(mlp())
    with bnlint.trace() as t:
        model.train()
        with torch.no_grad():
            model(mlp_batch()[0])
    assert not [f for f in t.findings if f.code == "BN999"]
    (finding,) = [f for f in t.findings if f.code == "BN002"]
    assert any("`module.1`" in note for note in finding.notes)


# -- train()/eval() under tracing: torch's behaviour, without its per-child calls ------


class _Recorded(nn.Module):
    """Records every `training` assignment and every call of its own train()."""

    def __init__(self, log: list[str], name: str, *children: nn.Module) -> None:
        super().__init__()
        self.log, self.name = log, name
        for index, child in enumerate(children):
            self.add_module(str(index), child)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "training" and "log" in self.__dict__:
            self.log.append(f"set {self.name}={value}")
        super().__setattr__(name, value)


class _KeepsEval(_Recorded):
    """A frozen part that overrides train() (as frozen-BatchNorm modules do)."""

    def train(self, mode: bool = True) -> _KeepsEval:
        self.log.append(f"train {self.name}({mode})")
        super().train(False)
        return self


def _recorded_tree(log: list[str]) -> nn.Module:
    frozen = _KeepsEval(log, "frozen", nn.BatchNorm1d(4), _Recorded(log, "inner"))
    return nn.Sequential(
        _Recorded(log, "a", nn.Linear(4, 4), _Recorded(log, "b")),
        frozen,
        nn.BatchNorm1d(4),
        _Recorded(log, "c"),
    )


def test_train_under_tracing_sets_flags_and_calls_overrides_in_torchs_order() -> None:
    untraced_log: list[str] = []
    untraced = _recorded_tree(untraced_log)
    traced_log: list[str] = []
    traced = _recorded_tree(traced_log)
    for mode in (False, False, True, True):
        untraced.train(mode)
        with bnlint.trace():
            assert traced.train(mode) is traced
    assert traced_log == untraced_log
    assert [m.training for m in traced.modules()] == [m.training for m in untraced.modules()]


def test_train_under_tracing_rejects_a_non_bool_mode_as_torch_does() -> None:
    model = mlp()
    with bnlint.trace(), pytest.raises(ValueError, match="expected to be boolean"):
        model.train(1)  # type: ignore[arg-type]


def test_eval_of_an_eval_model_under_tracing_keeps_every_flag_false() -> None:
    model = mlp().eval()
    model[1].training = True  # assigned behind eval()'s back
    with bnlint.trace():
        model.eval()
    assert not any(m.training for m in model.modules())
