"""BNLintCallback on real Lightning 2.x runs (tiny models, CPU)."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from bnlint.integrations.lightning import BNLintCallback, callback_class  # noqa: E402
from bnlint.trace import tracer as tracer_module  # noqa: E402


class FrozenBackboneModule(pl.LightningModule):
    """A pretrained-backbone classifier: backbone weights frozen, its BatchNorm meant to
    stay in eval."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 2)
        for parameter in self.backbone.parameters():
            parameter.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.head.parameters(), lr=0.1)


class FreezesInTrainOverride(FrozenBackboneModule):
    # The plain-PyTorch idiom; Lightning 2.x never calls train() on the module.
    def train(self, mode: bool = True) -> FreezesInTrainOverride:
        super().train(mode)
        self.backbone.eval()
        return self


class FreezesInEpochHook(FrozenBackboneModule):
    def on_train_epoch_start(self) -> None:
        self.backbone.eval()


def loader() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 8, generator=generator)
    y = torch.randint(0, 2, (32,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=8)


def trainer(root: Path, callback: Any) -> Any:
    return pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        default_root_dir=str(root),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def test_train_override_not_called_by_lightning_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = BNLintCallback()
    with caplog.at_level(logging.WARNING, logger="bnlint"):
        trainer(tmp_path, callback).fit(FreezesInTrainOverride(), loader(), loader())
    frozen_drift = [f for f in callback.findings if f.code == "BN005"]
    # At the training step's forward: Lightning's mode restore assigns flags, so the
    # override's `train(False)` during validation is not where training mode came from.
    lines, first = inspect.getsourcelines(FrozenBackboneModule.training_step)
    forward_line = first + next(i for i, line in enumerate(lines) if "self(x)" in line)
    assert [(Path(f.path).name, f.start.line) for f in frozen_drift] == [
        ("test_integration_lightning.py", forward_line)
    ]
    for finding in frozen_drift:
        assert any("never calls `train()`" in note for note in finding.notes)
        assert any("`FreezesInTrainOverride`" in note for note in finding.notes)
    assert "BN005" in caplog.text
    report = json.loads((tmp_path / "bnlint-report.json").read_text())
    assert "BN005" in [item["code"] for item in report]
    assert not tracer_module.installed()


def test_backbone_frozen_from_a_lightning_hook_is_silent(tmp_path: Path) -> None:
    callback = BNLintCallback()
    pl_trainer = trainer(tmp_path, callback)
    model = FreezesInEpochHook()
    pl_trainer.fit(model, loader(), loader())
    pl_trainer.validate(model, loader())
    assert callback.findings == []
    assert json.loads((tmp_path / "bnlint-report.json").read_text()) == []
    assert not tracer_module.installed()


def test_pytorch_lightning_package_gets_its_own_callback_class() -> None:
    pytorch_lightning = pytest.importorskip("pytorch_lightning")
    from bnlint.integrations.pytorch_lightning import BNLintCallback as PLCallback

    assert issubclass(PLCallback, pytorch_lightning.Callback)
    assert issubclass(BNLintCallback, pl.Callback)
    assert callback_class("lightning") is BNLintCallback
