"""Each runtime check on a real PyTorch model that triggers it, and a look-alike that
must stay silent."""

from __future__ import annotations

import io
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import bnlint  # noqa: E402
from bnlint.finding import Finding, Severity  # noqa: E402
from tests.test_trace_models import ConvNet, conv_batch, mlp, mlp_batch, train_steps  # noqa: E402


def codes(findings: list[Finding], code: str) -> list[Finding]:
    return [finding for finding in findings if finding.code == code]


def here() -> int:
    return sys._getframe(1).f_lineno


# -- BN001 output-batchnorm ---------------------------------------------------------------


def test_model_returning_batchnorm_output_is_reported() -> None:
    with bnlint.trace(select=["BN001"]) as t:
        line = here() + 1
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.BatchNorm1d(1))
        for _ in range(3):
            model(torch.randn(4, 8))
    (finding,) = codes(t.findings, "BN001")
    assert "`3`" in finding.message
    assert finding.start.line == line  # where the BatchNorm was built


def test_batchnorm_output_through_final_activation_is_reported() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Sigmoid())
    with bnlint.trace(model, select=["BN001"]) as t:
        model(torch.randn(4, 8))
    (finding,) = codes(t.findings, "BN001")
    assert "through Sigmoid" in finding.message


def test_hidden_batchnorm_and_projection_heads_are_not_reported() -> None:
    class Projector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)
            self.proj_bn = nn.BatchNorm1d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj_bn(self.fc(x))

    models = [mlp(), Projector(), nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4, affine=False))]
    with bnlint.trace(select=["BN001"]) as t:
        for _ in range(2):  # the first call names the model, the next one is probed
            for model in models:
                model(torch.randn(4, 8) if model is not models[0] else mlp_batch()[0])
    assert codes(t.findings, "BN001") == []


# -- BN006 train-mode-not-restored --------------------------------------------------------


def _epochs(model: nn.Module, restore_train: bool) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for _ in range(2):
        if restore_train:
            model.train()
        for _ in range(2):
            x, y = conv_batch()
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            model(conv_batch()[0])


def test_backward_after_validation_left_model_in_eval_is_reported() -> None:
    model = ConvNet()
    with bnlint.trace(model, select=["BN006"]) as t:
        _epochs(model, restore_train=False)
    (finding,) = codes(t.findings, "BN006")
    with open(finding.path) as source:
        assert "loss.backward()" in source.read().splitlines()[finding.start.line - 1]
    assert finding.count == 2  # the two steps of the second epoch


def test_epoch_that_calls_train_again_is_not_reported() -> None:
    model = ConvNet()
    with bnlint.trace(model, select=["BN006"]) as t:
        _epochs(model, restore_train=True)
    assert codes(t.findings, "BN006") == []


def test_backbone_frozen_in_eval_from_the_start_is_not_reported() -> None:
    model = ConvNet()
    with bnlint.trace(model, select=["BN006"]) as t:
        train_steps(model, conv_batch, steps=3, freeze_bn=True)
    assert codes(t.findings, "BN006") == []


# -- BN009 export-in-training-mode --------------------------------------------------------


@pytest.mark.parametrize(
    "export",
    [
        lambda m, x: torch.jit.trace(m, x),
        lambda m, x: torch.fx.symbolic_trace(m),
        lambda m, x: torch.save(m, io.BytesIO()),
    ],
    ids=["jit.trace", "fx.symbolic_trace", "save-module"],
)
def test_export_of_training_mode_model_is_reported(export) -> None:  # type: ignore[no-untyped-def]
    model = mlp()
    with bnlint.trace(select=["BN009"]) as t:
        export(model, mlp_batch()[0])
    (finding,) = codes(t.findings, "BN009")
    assert "`1`" in finding.message
    assert finding.path.endswith("test_trace_checks.py")


def test_export_after_eval_and_state_dict_save_are_not_reported() -> None:
    model = mlp()
    with bnlint.trace(select=["BN009"]) as t:
        torch.save(model.state_dict(), io.BytesIO())
        model.eval()
        torch.jit.trace(model, mlp_batch()[0])
        torch.fx.symbolic_trace(model)
        torch.save(model, io.BytesIO())
    assert codes(t.findings, "BN009") == []


# -- BN010 keras-momentum -----------------------------------------------------------------


def test_keras_style_momentum_is_reported_at_the_construction_line() -> None:
    with bnlint.trace(select=["BN010"]) as t:
        line = here() + 1
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8, momentum=0.99))
        model(torch.randn(4, 6))
        model(torch.randn(4, 6))
    (finding,) = codes(t.findings, "BN010")
    assert finding.start.line == line
    assert "momentum=0.01" in finding.suggestion
    assert finding.count == 2


def test_pytorch_momentum_is_not_reported() -> None:
    with bnlint.trace(select=["BN010"]) as t:
        nn.BatchNorm1d(8, momentum=0.1)(torch.randn(4, 8))
        nn.BatchNorm1d(8, momentum=None)(torch.randn(4, 8))
        nn.BatchNorm1d(8, momentum=1.0)(torch.randn(4, 8))
    assert codes(t.findings, "BN010") == []


# -- BN014 num-features-mismatch ----------------------------------------------------------


def test_channel_mismatch_is_reported_before_torch_raises() -> None:
    with bnlint.trace(select=["BN014"]) as t:
        model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(8))
        with pytest.raises(RuntimeError):
            model(torch.randn(2, 3, 8, 8))
    (finding,) = codes(t.findings, "BN014")
    assert "expects 8 channels but receives 16 from `0`" in finding.message


def test_matching_channels_and_lazy_batchnorm_are_not_reported() -> None:
    with bnlint.trace(select=["BN014"]) as t:
        nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16))(torch.randn(2, 3, 8, 8))
        nn.Sequential(nn.Conv2d(3, 16, 3), nn.LazyBatchNorm2d())(torch.randn(2, 3, 8, 8))
    assert codes(t.findings, "BN014") == []


# -- BN020 degenerate-running-stats -------------------------------------------------------


def test_non_finite_running_variance_is_reported() -> None:
    model = mlp()
    model[1].running_var[0] = float("nan")
    with bnlint.trace(model, select=["BN020"]) as t:
        model.eval()
        model(mlp_batch()[0])
    (finding,) = codes(t.findings, "BN020")
    assert "not finite" in finding.message


def test_running_variance_broken_between_eval_samples_is_reported() -> None:
    # The tracer reads an unchanged variance once; an in-place change must be read again.
    model = mlp().eval()
    with bnlint.trace(model, select=["BN020"], sample_every=1) as t:
        model(mlp_batch()[0])
        assert codes(t.findings, "BN020") == []
        with torch.no_grad():
            model[1].running_var[0] = float("nan")
        model(mlp_batch()[0])
    (finding,) = codes(t.findings, "BN020")
    assert "not finite" in finding.message


def test_training_with_fp16_buffers_is_reported() -> None:
    bn = nn.BatchNorm1d(4).half()
    with bnlint.trace(select=["BN020"]) as t:
        bn(torch.randn(8, 4).half())
    assert [f.severity for f in codes(t.findings, "BN020")] == [Severity.WARNING]


def test_healthy_statistics_and_fp16_inference_are_not_reported() -> None:
    model = mlp()
    half = nn.BatchNorm1d(4).half().eval()
    with bnlint.trace(select=["BN020"]) as t:
        train_steps(model, mlp_batch, steps=3)
        half(torch.randn(8, 4).half())
    assert codes(t.findings, "BN020") == []


# -- BN002 eval-mode-missing --------------------------------------------------------------


def test_validation_under_no_grad_in_training_mode_is_reported() -> None:
    model = ConvNet()
    with bnlint.trace(model, select=["BN002"]) as t:
        train_steps(model, conv_batch, steps=1)
        model.train()  # the bug: validation without eval()
        with torch.no_grad():
            line = here() + 1
            model(conv_batch()[0])
        with torch.inference_mode():
            model(conv_batch()[0])
    findings = codes(t.findings, "BN002")
    assert [f.start.line for f in findings] == [line, line + 2]
    assert "`stem.1`" in findings[0].message
    assert any("layer1.1.bn2" in note for note in findings[0].notes)


def test_update_bn_and_eval_under_no_grad_are_not_reported() -> None:
    model = ConvNet()
    loader = [conv_batch() for _ in range(2)]
    with bnlint.trace(model, select=["BN002"]) as t:
        torch.optim.swa_utils.update_bn(((x,) for x, _ in loader), model)
        model.eval()
        with torch.no_grad():
            model(conv_batch()[0])
        model.train()
        model(conv_batch()[0])  # training forward with grad: fine
    assert codes(t.findings, "BN002") == []


# -- BN003 batch-size-one -----------------------------------------------------------------


def test_one_value_per_channel_is_an_error_reported_before_torch_raises() -> None:
    model = mlp()
    with (
        bnlint.trace(model, select=["BN003"]) as t,
        pytest.raises(ValueError, match="more than 1 value per channel"),
    ):
        model(torch.randn(1, 6))
    (finding,) = codes(t.findings, "BN003")
    assert finding.severity is Severity.ERROR


def test_batch_of_one_conv_maps_is_a_warning() -> None:
    model = ConvNet()
    with bnlint.trace(model, select=["BN003"]) as t:
        model(torch.randn(1, 3, 8, 8))
    (finding,) = codes(t.findings, "BN003")
    assert finding.severity is Severity.WARNING
    assert finding.count == 5


def test_eval_batch_of_one_and_training_batch_of_two_are_not_reported() -> None:
    model = mlp()
    with bnlint.trace(model, select=["BN003"]) as t:
        model(torch.randn(2, 6))
        model.eval()
        model(torch.randn(1, 6))
    assert codes(t.findings, "BN003") == []


# -- BN005 frozen-batchnorm-drift ---------------------------------------------------------


class FineTuner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = ConvNet()
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _fine_tune(model: FineTuner, steps: int = 2) -> None:
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
    for _ in range(steps):
        x, _ = conv_batch()
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_frozen_backbone_put_in_train_mode_is_reported_at_the_train_call() -> None:
    model = FineTuner()
    model.backbone.requires_grad_(False)
    with bnlint.trace(model, select=["BN005"]) as t:
        line = here() + 1
        model.train()
        _fine_tune(model)
    findings = codes(t.findings, "BN005")
    assert len(findings) == 1
    assert findings[0].start.line == line
    assert "`backbone.stem.1`" in findings[0].message
    assert findings[0].count == 10  # 5 BNs x 2 confirmed updates


def test_training_flag_assigned_after_eval_is_not_blamed_on_the_eval_call() -> None:
    # Lightning restores modes this way: the last eval() did not put the BN in training.
    model = FineTuner()
    model.backbone.requires_grad_(False)
    with bnlint.trace(model, select=["BN005"]) as t:
        eval_line = here() + 1
        model.eval()
        for module in model.modules():
            module.training = True
        _fine_tune(model)
    (finding,) = codes(t.findings, "BN005")
    assert finding.start.line != eval_line
    assert not any(f":{eval_line}" in note for note in finding.notes)


def test_explicit_eval_undone_by_ancestor_train_is_reported_with_both_sites() -> None:
    model = FineTuner()
    with bnlint.trace(model, select=["BN005"]) as t:
        eval_line = here() + 1
        model.backbone.eval()
        train_line = here() + 1
        model.train()
        _fine_tune(model, steps=1)
    (finding,) = codes(t.findings, "BN005")
    assert finding.start.line == train_line
    assert any(f":{eval_line}" in note for note in finding.notes)


def test_frozen_backbone_kept_in_eval_is_not_reported() -> None:
    class KeepFrozen(FineTuner):
        def train(self, mode: bool = True) -> KeepFrozen:
            super().train(mode)
            self.backbone.eval()  # the fix: re-freeze after every train()
            return self

    model = KeepFrozen()
    model.backbone.requires_grad_(False)
    with bnlint.trace(model, select=["BN005"]) as t:
        for _ in range(2):
            model.train()
            _fine_tune(model)
    assert codes(t.findings, "BN005") == []


def test_trainable_batchnorm_and_frozen_batchnorm_without_stats_are_not_reported() -> None:
    model = FineTuner()
    model.backbone.stem.requires_grad_(False)  # conv frozen only? no: BN frozen too
    model.backbone.stem[1].requires_grad_(True)  # BN stays trainable
    untracked = nn.BatchNorm1d(4, track_running_stats=False).requires_grad_(False)
    with bnlint.trace(select=["BN005"]) as t:
        model.train()
        _fine_tune(model)
        untracked(torch.randn(4, 4))
    assert codes(t.findings, "BN005") == []
