"""BNLintTrainerCallback on real Hugging Face `Trainer` runs (tiny models, CPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from torch import nn  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from bnlint.integrations.transformers import BNLintTrainerCallback  # noqa: E402
from bnlint.trace import tracer as tracer_module  # noqa: E402


class Points(Dataset[dict[str, torch.Tensor]]):
    def __init__(self, size: int = 32) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 8, generator=generator)
        self.labels = torch.randint(0, 2, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.labels[index]}


class FrozenBackboneClassifier(nn.Module):
    """A pretrained backbone (frozen weights) and a trainable head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 2)
        for parameter in self.backbone.parameters():
            parameter.requires_grad = False

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.head(self.backbone(x))
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class KeepsBackboneInEval(FrozenBackboneClassifier):
    # The Trainer calls model.train() before every step: this override runs each time.
    def train(self, mode: bool = True) -> KeepsBackboneInEval:
        super().train(mode)
        self.backbone.eval()
        return self


def run(model: nn.Module, output_dir: Path, callback: BNLintTrainerCallback) -> Any:
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        num_train_epochs=2,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Points(),
        eval_dataset=Points(16),
        callbacks=[callback],
    )
    trainer.train()
    return trainer


def test_frozen_backbone_batchnorm_training_under_trainer_is_reported(tmp_path: Path) -> None:
    callback = BNLintTrainerCallback()
    run(FrozenBackboneClassifier(), tmp_path, callback)
    assert "BN005" in [finding.code for finding in callback.findings]
    report = json.loads((tmp_path / "bnlint-report.json").read_text())
    assert "BN005" in [item["code"] for item in report]
    assert callback.report_path == tmp_path / "bnlint-report.json"
    assert not tracer_module.installed()


def test_backbone_kept_in_eval_by_train_override_is_silent(tmp_path: Path) -> None:
    callback = BNLintTrainerCallback(report_file=tmp_path / "bn.json")
    trainer = run(KeepsBackboneInEval(), tmp_path, callback)
    trainer.evaluate()  # a standalone evaluation is traced and reported too
    assert callback.findings == []
    assert json.loads((tmp_path / "bn.json").read_text()) == []
    assert not tracer_module.installed()
