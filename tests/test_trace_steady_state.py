"""The tracer's steady state: a BatchNorm call that repeats the previous one costs one
tuple compare, and value reads back off while they find the same thing. Each test
shows that a finding this could delay is still reported: at once for what a single
call shows (mode flag, grad mode, input shape, producer), within a bounded number of
forwards for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import bnlint  # noqa: E402
from bnlint.events import BatchNormCall, Event, RunningStatsSample  # noqa: E402
from bnlint.finding import Finding, Severity  # noqa: E402
from bnlint.rule import Rule, RuntimeReport  # noqa: E402
from bnlint.trace.tracer import MAX_FULL_INTERVAL, MAX_SAMPLE_BACKOFF  # noqa: E402
from tests.test_trace_models import ConvNet, conv_batch, mlp, mlp_batch  # noqa: E402

STEADY = 100  # forwards of an unchanging loop before the event under test


def codes(findings: list[Finding], code: str) -> list[Finding]:
    return [finding for finding in findings if finding.code == code]


class Recorder(Rule):
    """Records each call event's producer and each value read's mode (tests only).

    ## What it does
    Tests. ## Why is this bad? ## Example ## Use instead
    """

    code = "BN996"
    name = "recorder"
    severity = Severity.WARNING
    runtime_events = (BatchNormCall, RunningStatsSample)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if isinstance(event, RunningStatsSample):
            memory.setdefault("samples", []).append(event.call.training)
        elif isinstance(event, BatchNormCall):
            memory.setdefault("producers", []).append(event.previous_module)
        return iter(())


def _sampled_forwards(tracer: bnlint.trace, run: Any, forwards: range) -> list[int]:
    """The forwards (numbered by `forwards`) on which the values were read."""
    memory = tracer._rules.memory["BN996"]
    sampled = []
    for forward in forwards:
        before = len(memory.get("samples", []))
        run()
        if len(memory.get("samples", [])) > before:
            sampled.append(forward)
    return sampled


# -- what a single call shows: seen on that call ---------------------------------------


def test_batch_of_one_after_a_steady_training_loop_is_reported_on_that_call() -> None:
    model = ConvNet()
    with bnlint.trace(model, select=["BN003"]) as t:
        for _ in range(STEADY):
            model(conv_batch(4)[0])
        model(conv_batch(1)[0])  # the epoch's last batch
    (finding,) = codes(t.findings, "BN003")
    assert finding.count == 5  # once per BatchNorm, on the one call


def test_training_flag_assigned_after_a_steady_eval_loop_is_reported_on_that_call() -> None:
    model = ConvNet().eval()
    with bnlint.trace(model, select=["BN002"]) as t, torch.no_grad():
        for _ in range(STEADY):
            model(conv_batch()[0])
        for module in model.modules():
            module.training = True  # no train() call: nothing the tracer sees
        model(conv_batch()[0])
    (finding,) = codes(t.findings, "BN002")
    assert finding.count == 5


def test_one_no_grad_forward_after_a_steady_training_loop_is_reported() -> None:
    model = ConvNet()
    with bnlint.trace(model, select=["BN002"]) as t:
        for _ in range(STEADY):
            model(conv_batch()[0])
        with torch.no_grad():
            model(conv_batch()[0])  # validation without eval()
    (finding,) = codes(t.findings, "BN002")
    assert finding.count == 5


class TwoStems(nn.Module):
    """One BatchNorm fed by one of two projections, chosen per call."""

    def __init__(self) -> None:
        super().__init__()
        self.narrow, self.wide = nn.Linear(3, 4), nn.Linear(5, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.narrow(x) if x.shape[1] == 3 else self.wide(x))


def test_a_new_producer_after_a_steady_loop_is_in_the_next_call_event() -> None:
    model = TwoStems()
    with bnlint.trace(model, rules=[Recorder], sample_every=None) as t:
        for _ in range(STEADY):
            model(torch.randn(8, 3))
        model(torch.randn(8, 5))
    assert t._rules.memory["BN996"]["producers"] == ["narrow", "wide"]


# -- facts only persistent findings read: seen within MAX_FULL_INTERVAL calls ----------


def test_affine_frozen_in_the_middle_of_training_is_reported() -> None:
    model = mlp()
    # Long enough for the interval between full reads to reach its cap.
    with bnlint.trace(model, select=["BN005"], sample_every=None) as t:
        for _ in range(8 * MAX_FULL_INTERVAL):
            model(mlp_batch()[0])
        assert codes(t.findings, "BN005") == []
        model[1].requires_grad_(False)  # frozen, still in training mode
        for _ in range(MAX_FULL_INTERVAL + 2):
            model(mlp_batch()[0])
    (finding,) = codes(t.findings, "BN005")
    assert "`1`" in finding.message


# -- value reads: back off, come back ---------------------------------------------------


def test_value_reads_come_back_to_sample_every_when_the_module_switches_to_eval() -> None:
    model = mlp()
    with bnlint.trace(model, rules=[Recorder], sample_every=5) as t:
        training = _sampled_forwards(t, lambda: model(mlp_batch()[0]), range(1, 41))
        model.eval()
        evaluation = _sampled_forwards(t, lambda: model(mlp_batch()[0]), range(41, 51))
    assert training == [1, 6, 16, 36]  # the next would be 76
    # sample_every after the last training read; the first eval read found something
    # else than the training reads (its mode), so the interval starts again at 5.
    assert evaluation == [45, 50]
    assert t._rules.memory["BN996"]["samples"][-1] is False


def test_variance_broken_after_the_interval_grew_is_reported_within_the_backoff() -> None:
    model = mlp().eval()
    running_var = model[1].running_var
    with bnlint.trace(model, select=["BN020"], sample_every=1) as t:
        for _ in range(17):  # reads on forwards 1, 2, 4, 8, 16: the interval is now 8
            model(mlp_batch()[0])
        with torch.no_grad():
            running_var[0] = float("nan")
        for _ in range(MAX_SAMPLE_BACKOFF - 2):
            model(mlp_batch()[0])
        assert codes(t.findings, "BN020") == []  # forwards 18-23: not read
        model(mlp_batch()[0])  # forward 24
    (finding,) = codes(t.findings, "BN020")
    assert "not finite" in finding.message


def test_value_reads_come_back_to_sample_every_after_a_state_dict_load() -> None:
    model = mlp().eval()
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with bnlint.trace(model, rules=[Recorder], sample_every=2) as t:
        before = _sampled_forwards(t, lambda: model(mlp_batch()[0]), range(1, 21))
        model.load_state_dict(state)
        after = _sampled_forwards(t, lambda: model(mlp_batch()[0]), range(21, 25))
    assert before == [1, 3, 7, 15]  # the next would be 31
    assert after == [22]
