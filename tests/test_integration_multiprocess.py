"""The Lightning and Hugging Face callbacks under real multi-process runs (two CPU
processes, gloo): one report, written by rank 0, holding every rank's findings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

LIGHTNING_SCRIPT = textwrap.dedent(
    """\
    import sys

    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from bnlint.integrations.lightning import BNLintCallback


    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                      nn.Linear(16, 2))

        def forward(self, x):
            return self.body(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)


    samples, batch = int(sys.argv[1]), int(sys.argv[2])
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(samples, 8, generator=generator),
                         torch.randint(0, 2, (samples,), generator=generator))
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=2, strategy="ddp",
        callbacks=[BNLintCallback(report_file="report.json", select=["BN003", "BN016"])],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Net(), DataLoader(data, batch_size=batch))
    """
)
# The line of `trainer.fit(...)`, where runtime findings outside the user's modules land.
FIT_LINE = 34


def environment(directory: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("BNLINT_RANK_DIR", None)
    # Rank hand-over directories live here, so the test can see they are cleaned up.
    env["TMPDIR"] = str(directory / "tmp")
    (directory / "tmp").mkdir()
    return env


def run(directory: Path, script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    (directory / "train.py").write_text(script)
    return subprocess.run(
        [sys.executable, "train.py", *arguments],
        cwd=directory,
        env=environment(directory),
        capture_output=True,
        text=True,
        timeout=600,
    )


def report(directory: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((directory / "report.json").read_text())
    return data


def test_lightning_ddp_writes_one_report_of_both_ranks(tmp_path: Path) -> None:
    pytest.importorskip("lightning.pytorch")
    # 20 samples, 10 per rank, batches of 4: BatchNorm normalises over 4 samples per
    # process (BN016), on both ranks.
    done = run(tmp_path, LIGHTNING_SCRIPT, "20", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    findings = report(tmp_path)
    assert [item["code"] for item in findings] == ["BN016"]
    assert "seen on ranks 0, 1 of 2" in findings[0]["notes"]
    # One report (rank 0's), logged once, and the hand-over files are gone.
    assert done.stderr.count("bnlint: BatchNorm findings") == 1
    assert not list((tmp_path / "tmp").glob("bnlint-ranks*"))


def test_lightning_ddp_reports_the_batch_that_crashed_both_ranks(tmp_path: Path) -> None:
    pytest.importorskip("lightning.pytorch")
    # 18 samples, 9 per rank, batches of 4: each rank's last batch has one sample and
    # torch raises; the ranks hand over from `on_exception` and rank 0 still reports.
    done = run(tmp_path, LIGHTNING_SCRIPT, "18", "4")
    assert done.returncode != 0
    assert "Expected more than 1 value per channel" in done.stderr
    errors = [item for item in report(tmp_path) if item["severity"] == "error"]
    assert [item["code"] for item in errors] == ["BN003"]
    assert "(1, 16)" in errors[0]["message"]
    assert "seen on ranks 0, 1 of 2" in errors[0]["notes"]
    assert not any(item["code"] == "BN998" for item in report(tmp_path))


HF_SCRIPT = textwrap.dedent(
    """\
    import torch
    import transformers
    from torch import nn
    from torch.utils.data import Dataset

    from bnlint.integrations.transformers import BNLintTrainerCallback


    class Points(Dataset):
        def __init__(self, size):
            generator = torch.Generator().manual_seed(0)
            self.x = torch.randn(size, 8, generator=generator)
            self.labels = torch.randint(0, 2, (size,), generator=generator)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, index):
            return {"x": self.x[index], "labels": self.labels[index]}


    class FrozenBackboneClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
            self.head = nn.Linear(16, 2)
            for parameter in self.backbone.parameters():
                parameter.requires_grad = False

        def forward(self, x, labels=None):
            logits = self.head(self.backbone(x))
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels)}


    args = transformers.TrainingArguments(
        output_dir="out", per_device_train_batch_size=8, num_train_epochs=1,
        save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True,
        ddp_backend="gloo", disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(
        model=FrozenBackboneClassifier(), args=args, train_dataset=Points(32),
        callbacks=[BNLintTrainerCallback(report_file="report.json", select=["BN005"])],
    )
    trainer.train()
    """
)


def test_hf_trainer_under_torchrun_writes_one_report_of_both_ranks(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    (tmp_path / "train.py").write_text(HF_SCRIPT)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "train.py",
        ],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    findings = report(tmp_path)
    # The frozen backbone's BatchNorm keeps updating its statistics on every rank.
    assert [item["code"] for item in findings] == ["BN005"]
    assert "seen on ranks 0, 1 of 2" in findings[0]["notes"]
    assert done.stderr.count("bnlint: BatchNorm findings") == 1
    assert not list((tmp_path / "tmp").glob("bnlint-ranks*"))
