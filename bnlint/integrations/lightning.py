"""`BNLintCallback`: the runtime tracer around a Lightning 2.x `Trainer`.

    from bnlint.integrations.lightning import BNLintCallback
    trainer = Trainer(callbacks=[BNLintCallback()])
    trainer.fit(model, train_loader, val_loader)   # also validate / test / predict

The tracer runs from each stage's `setup` to its `teardown` (or its exception); then
the findings so far are logged (logger `bnlint`) on global rank 0 and written to
`report_file` (default `<default_root_dir>/bnlint-report.json`, the JSON that
`bnlint check --runtime-report` merges with the static findings). Under a
multi-process strategy (`ddp`, `ddp_spawn`, on one machine) every rank traces and rank
0 writes one report of all ranks' findings, each naming the ranks that saw it; it waits
for the others at most `rank_timeout` seconds (default 60).

`BNLintCallback` subclasses `lightning.pytorch.Callback` when `lightning` is installed,
else `pytorch_lightning.Callback`; `bnlint.integrations.pytorch_lightning` has the
`pytorch_lightning` one for code that imports that package (Lightning refuses to mix
the two).

Lightning 2.x and modes: the fit loop never calls `train()` on the LightningModule,
and after validation it restores each module's `training` flag as captured before
(`on_validation_model_eval` calls `eval()`, the restore assigns the flags). A
`train()` override (the usual way to keep a frozen BatchNorm in eval) is therefore not
called by Lightning: findings on such a model say so.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from bnlint.finding import Finding
from bnlint.integrations.session import TraceSession

__all__ = ["BNLintCallback", "callback_class", "train_overrides"]

# Findings whose advice relies on `train()` being called (BN005 suggests overriding it).
_MODE_CODES = frozenset({"BN002", "BN005", "BN006"})


def train_overrides(model: nn.Module) -> list[str]:
    """Classes in `model` (itself included) whose own code overrides `nn.Module.train`."""
    found = []
    for module in model.modules():
        for klass in type(module).__mro__:
            if klass is nn.Module or not issubclass(klass, nn.Module):
                break
            owner = klass.__module__.split(".", 1)[0]
            if "train" in klass.__dict__ and owner not in _FRAMEWORK_PACKAGES:
                found.append(klass.__qualname__)
                break
    return sorted(set(found))


_FRAMEWORK_PACKAGES = frozenset({"torch", "lightning", "pytorch_lightning"})


def _lightning_note(overrides: list[str]) -> str:
    return (
        f"Lightning 2.x never calls `train()` on the LightningModule: the `train()` "
        f"override of {', '.join(f'`{name}`' for name in overrides)} did not run in "
        "`fit`; keep BatchNorm frozen from a hook Lightning calls "
        "(`on_train_epoch_start`, `on_validation_model_train`)"
    )


def _build(package: str) -> type[Any]:
    name = "lightning.pytorch" if package == "lightning" else "pytorch_lightning"
    try:
        pytorch: ModuleType = importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"bnlint.integrations.lightning needs {package} ({error}): "
            "install it with `pip install 'bnlint[lightning]'`"
        ) from error

    class BNLintCallback(pytorch.Callback):  # type: ignore[misc,name-defined]
        """Traces `fit`/`validate`/`test`/`predict` and reports BatchNorm misuse."""

        def __init__(
            self,
            *,
            select: Iterable[str] | None = None,
            ignore: Iterable[str] | None = None,
            report_file: str | Path | None = None,
            output_format: str | None = None,
            sample_every: int | None = 50,
            options: Mapping[str, Any] | None = None,
            rank_timeout: float | None = None,
        ) -> None:
            super().__init__()
            self.session = TraceSession(
                select=select,
                ignore=ignore,
                sample_every=sample_every,
                options=options,
                report_file=report_file,
                output_format=output_format,
                rank_timeout=rank_timeout,
            )
            self.report_path: Path | None = None
            self._overrides: list[str] = []
            self.session.annotate = self._annotate

        @property
        def findings(self) -> list[Finding]:
            return self.session.findings

        def setup(self, trainer: Any, pl_module: nn.Module, stage: str) -> None:
            self._overrides = train_overrides(pl_module)
            self.session.set_ranks(trainer.global_rank, trainer.world_size)
            self.session.start()

        def teardown(self, trainer: Any, pl_module: nn.Module, stage: str) -> None:
            self._finish(trainer, failed=False)

        def on_exception(self, trainer: Any, pl_module: nn.Module, exception: Any) -> None:
            self._finish(trainer, failed=True)

        def _finish(self, trainer: Any, *, failed: bool) -> None:
            self.session.stop()
            path = self.session.report(
                trainer.default_root_dir, write=trainer.is_global_zero, failed=failed
            )
            if path is not None:
                self.report_path = path

        def _annotate(self, findings: list[Finding]) -> list[Finding]:
            if not self._overrides:
                return findings
            note = _lightning_note(self._overrides)
            return [
                dataclasses.replace(finding, notes=(*finding.notes, note))
                if finding.code in _MODE_CODES
                else finding
                for finding in findings
            ]

        def state_dict(self) -> dict[str, Any]:
            return {}

    BNLintCallback.__module__ = __name__
    return BNLintCallback


_CLASSES: dict[str, type[Any]] = {}


def callback_class(package: str = "lightning") -> type[Any]:
    """The callback class built on `package` (`"lightning"` or `"pytorch_lightning"`)."""
    if package not in ("lightning", "pytorch_lightning"):
        raise ValueError(f"package must be 'lightning' or 'pytorch_lightning', not {package!r}")
    if package not in _CLASSES:
        _CLASSES[package] = _build(package)
    return _CLASSES[package]


def _default_package() -> str:
    try:
        importlib.import_module("lightning.pytorch")
    except ImportError:
        return "pytorch_lightning"
    return "lightning"


BNLintCallback = callback_class(_default_package())
