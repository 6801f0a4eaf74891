"""Runtime checks BN003 (loader), BN015-BN019, BN021: a real PyTorch model that triggers
each, and a look-alike that must stay silent."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import bnlint  # noqa: E402
from bnlint.finding import Finding, Severity  # noqa: E402
from tests.test_trace_models import ConvNet, conv_batch, mlp, mlp_batch, train_steps  # noqa: E402


def codes(findings: list[Finding], code: str) -> list[Finding]:
    return [finding for finding in findings if finding.code == code]


def here() -> int:
    return sys._getframe(1).f_lineno


def train_epoch(model: nn.Module, loader: DataLoader[tuple[torch.Tensor, ...]]) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for x, y in loader:
        if x.shape[0] == 1:
            continue  # the script would crash here; the loader is what is checked
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def dataset(samples: int) -> TensorDataset:
    return TensorDataset(torch.randn(samples, 6), torch.randint(0, 3, (samples,)))


# -- BN003 batch-size-one: the training loader's last batch -------------------------------


def test_training_loader_whose_last_batch_is_one_is_reported_where_it_is_iterated() -> None:
    loader = DataLoader(dataset(33), batch_size=8, shuffle=True)
    model = mlp()
    with bnlint.trace(select=["BN003"]) as t:
        train_epoch(model, loader)
    (finding,) = codes(t.findings, "BN003")
    assert finding.severity is Severity.WARNING
    assert "33 samples" in finding.message and "drop_last" in finding.suggestion
    assert finding.path.endswith("test_trace_more_checks.py")
    assert finding.start.line == train_epoch.__code__.co_firstlineno + 3  # `for x, y in loader`


def test_drop_last_and_evaluation_loaders_are_not_reported() -> None:
    model = mlp()
    with bnlint.trace(select=["BN003"]) as t:
        train_epoch(model, DataLoader(dataset(33), batch_size=8, drop_last=True))
        train_epoch(model, DataLoader(dataset(34), batch_size=8))  # last batch of 2
        model.eval()
        with torch.no_grad():
            for x, _ in DataLoader(dataset(33), batch_size=8):  # eval: no backward
                model(x)
    assert codes(t.findings, "BN003") == []


def test_last_batch_is_counted_per_rank_with_a_distributed_sampler() -> None:
    from torch.utils.data.distributed import DistributedSampler

    data = dataset(66)  # 33 per rank of two
    sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=True)
    with bnlint.trace(select=["BN003"]) as t:
        train_epoch(mlp(), DataLoader(data, batch_size=8, sampler=sampler))
    (finding,) = codes(t.findings, "BN003")
    assert "33 samples per epoch on this rank" in finding.message


# -- BN015 batchnorm1d-wrong-axis ---------------------------------------------------------


class SequenceTagger(nn.Module):
    def __init__(self, transpose: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.bn = nn.BatchNorm1d(32)
        self.head = nn.Linear(32, 5)
        self.transpose = transpose

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)  # (N, L, 32)
        h = self.bn(h.transpose(1, 2)).transpose(1, 2) if self.transpose else self.bn(h)
        return self.head(h)


def test_batch_first_sequence_into_batchnorm1d_is_reported_before_torch_raises() -> None:
    model = SequenceTagger(transpose=False)
    with bnlint.trace(select=["BN015", "BN014"]) as t, pytest.raises(RuntimeError):
        model(torch.randint(0, 100, (4, 12)))
    (finding,) = t.findings  # BN015 names the cause; BN014 stays silent
    assert finding.code == "BN015"
    assert finding.severity is Severity.ERROR
    assert "(4, 12, 32)" in finding.message and "`embed`" in finding.message


def test_lazy_batchnorm1d_on_a_sequence_is_a_warning() -> None:
    model = nn.Sequential(nn.Linear(16, 24), nn.LazyBatchNorm1d())
    with bnlint.trace(select=["BN015"]) as t:
        model(torch.randn(4, 10, 16))
    (finding,) = codes(t.findings, "BN015")
    assert finding.severity is Severity.WARNING


def test_transposed_sequence_and_conv1d_features_are_not_reported() -> None:
    conv = nn.Sequential(nn.Conv1d(8, 16, 3), nn.BatchNorm1d(16))
    with bnlint.trace(select=["BN015"]) as t:
        SequenceTagger(transpose=True)(torch.randint(0, 100, (4, 12)))
        conv(torch.randn(4, 8, 16))
    assert t.findings == []


# -- BN016 ddp-without-syncbn -------------------------------------------------------------


@pytest.fixture
def two_process_world() -> Iterator[None]:
    """A real torch.distributed world of size 2 in this process (torch's fake backend)."""
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", rank=0, world_size=2, store=FakeStore())
    try:
        yield
    finally:
        dist.destroy_process_group()


def ddp_train(model: nn.Module, batch: int, steps: int = 2) -> None:
    """Training-mode forwards of a DDP-wrapped model (the fake backend cannot all-reduce
    gradients, so no backward; the check reads the forward)."""
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(model)
    for _ in range(steps):
        ddp(torch.randn(batch, 6))


@pytest.mark.usefixtures("two_process_world")
def test_ddp_with_plain_batchnorm_on_a_small_local_batch_is_reported() -> None:
    with bnlint.trace(select=["BN016"]) as t:
        ddp_train(mlp(), batch=4)
    (finding,) = codes(t.findings, "BN016")
    assert "local batch of 4 in each of 2 processes" in finding.message


@pytest.mark.usefixtures("two_process_world")
def test_syncbn_large_local_batch_and_configured_threshold_are_not_reported() -> None:
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(mlp())
    with bnlint.trace(select=["BN016"]) as t:
        # SyncBatchNorm needs GPUs to run; the check has read the call before it fails.
        with pytest.raises((ValueError, RuntimeError)):
            sync(torch.randn(4, 6))
        ddp_train(mlp(), batch=32)
    with bnlint.trace(select=["BN016"], options={"small-batch-threshold": 2}) as small:
        ddp_train(mlp(), batch=4)
    assert t.findings == [] and small.findings == []


def test_single_process_small_batch_is_not_reported() -> None:
    with bnlint.trace(select=["BN016"]) as t:
        train_steps(mlp(), lambda: mlp_batch(4))
    assert t.findings == []


# -- BN017 running-stats-not-loaded -------------------------------------------------------


def trained_mlp() -> nn.Module:
    model = mlp()
    train_steps(model, mlp_batch, steps=3)
    return model


def test_eval_with_initial_statistics_after_loading_parameters_only_is_reported() -> None:
    trained = trained_mlp()
    with bnlint.trace(select=["BN017"]) as t:
        fresh = mlp()
        with torch.no_grad():  # a parameters-only checkpoint restored by hand
            for target, source in zip(fresh.parameters(), trained.parameters(), strict=True):
                target.copy_(source)
        fresh.eval()
        line = here() + 1
        fresh(mlp_batch()[0])
    (finding,) = codes(t.findings, "BN017")
    assert finding.start.line == line
    assert "initial values" in finding.message


def test_missing_running_keys_on_non_strict_load_are_reported() -> None:
    state = {k: v for k, v in trained_mlp().state_dict().items() if "running" not in k}
    with bnlint.trace(select=["BN017"]) as t:
        model = mlp()
        line = here() + 1
        model.load_state_dict(state, strict=False)
    (finding,) = codes(t.findings, "BN017")
    assert finding.start.line == line
    assert "`1.running_mean`" in finding.message


def test_full_state_dict_load_and_untrained_model_in_eval_are_not_reported() -> None:
    state = trained_mlp().state_dict()
    with bnlint.trace(select=["BN017"]) as t:
        model = mlp()
        model.load_state_dict(state)
        model.eval()
        model(mlp_batch()[0])
        mlp().eval()(mlp_batch()[0])  # nothing trained: initial weights and statistics
    assert t.findings == []


# -- BN018 stale-stats-after-averaging ----------------------------------------------------


def swa_model(use_buffers: bool) -> nn.Module:
    from torch.optim.swa_utils import AveragedModel

    model = ConvNet()
    train_steps(model, conv_batch)
    averaged = AveragedModel(model, use_buffers=use_buffers)
    train_steps(model, conv_batch)
    averaged.update_parameters(model)
    return averaged


def test_averaged_model_evaluated_without_update_bn_is_reported() -> None:
    with bnlint.trace(select=["BN018"]) as t:
        averaged = swa_model(use_buffers=False)
        averaged.eval()
        with torch.no_grad():
            averaged(conv_batch()[0])
    (finding,) = codes(t.findings, "BN018")
    assert "update_bn" in finding.suggestion


def test_update_bn_and_use_buffers_are_not_reported() -> None:
    from torch.optim.swa_utils import update_bn

    with bnlint.trace(select=["BN018"]) as t:
        averaged = swa_model(use_buffers=False)
        update_bn([conv_batch()[0] for _ in range(2)], averaged)
        averaged.eval()
        with torch.no_grad():
            averaged(conv_batch()[0])
        ema = swa_model(use_buffers=True).eval()
        with torch.no_grad():
            ema(conv_batch()[0])
    assert t.findings == []


# -- BN019 batchnorm-reused ---------------------------------------------------------------


class SharedNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv1(x)))
        return torch.relu(self.bn(self.conv2(x)))


class Siamese(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self.encoder(a) - self.encoder(b)).abs().mean()


def test_batchnorm_called_after_two_producers_in_one_forward_is_reported() -> None:
    with bnlint.trace(select=["BN019"]) as t:
        model = SharedNorm()
        for _ in range(3):
            model(conv_batch()[0])
    (finding,) = codes(t.findings, "BN019")
    assert "`bn`" in finding.message and "`conv1`, `conv2`" in finding.message


def test_same_module_twice_in_a_sequential_is_reported() -> None:
    bn = nn.BatchNorm1d(16)
    model = nn.Sequential(nn.Linear(6, 16), bn, nn.ReLU(), nn.Linear(16, 16), bn)
    with bnlint.trace(model, select=["BN019"]) as t:
        model(mlp_batch()[0])
    assert len(codes(t.findings, "BN019")) == 1


def test_siamese_encoder_and_plain_models_are_not_reported() -> None:
    with bnlint.trace(select=["BN019"]) as t:
        siamese, convnet = Siamese(), ConvNet()
        for _ in range(2):
            siamese(conv_batch()[0], conv_batch()[0])
            convnet(conv_batch()[0])
    assert t.findings == []


# -- BN021 eval-input-shift ---------------------------------------------------------------


def normalised_batch() -> torch.Tensor:
    return torch.randn(8, 3, 8, 8)


def test_eval_inputs_in_another_range_than_training_are_reported() -> None:
    model = ConvNet()
    train_steps(model, lambda: (normalised_batch(), torch.randint(0, 5, (8,))), steps=5)
    model.eval()
    with bnlint.trace(model, select=["BN021"]) as t, torch.no_grad():
        model(torch.rand(8, 3, 8, 8) * 255)  # pixels 0..255, no Normalize
    (finding,) = codes(t.findings, "BN021")
    assert "`stem.1`" in finding.message


def test_eval_input_shift_uses_statistics_loaded_between_samples() -> None:
    # The tracer keeps the statistics' terms while they are unchanged; a load must count.
    model = ConvNet()
    train_steps(model, lambda: (normalised_batch(), torch.randint(0, 5, (8,))), steps=5)
    model.eval()
    shifted = {k: v.clone() for k, v in model.state_dict().items()}
    shifted["stem.1.running_mean"] += 50.0
    with bnlint.trace(model, select=["BN021"], sample_every=1) as t, torch.no_grad():
        model(normalised_batch())
        assert t.findings == []
        model.load_state_dict(shifted)
        model(normalised_batch())
    (finding,) = codes(t.findings, "BN021")
    assert "`stem.1`" in finding.message


def test_eval_inputs_like_training_inputs_are_not_reported() -> None:
    model = ConvNet()
    train_steps(model, lambda: (normalised_batch(), torch.randint(0, 5, (8,))), steps=5)
    model.eval()
    with bnlint.trace(model, select=["BN021"]) as t, torch.no_grad():
        for _ in range(3):
            model(normalised_batch())
    assert t.findings == []
