"""`BNLintTrainerCallback`: the runtime tracer around a Hugging Face `Trainer`.

    from bnlint.integrations.transformers import BNLintTrainerCallback
    trainer = Trainer(model, args, train_dataset=..., callbacks=[BNLintTrainerCallback()])
    trainer.train()          # also trainer.evaluate() / trainer.predict()

The tracer starts when the `Trainer` is built (`on_init_end`, so a later `evaluate()`
or `predict()` alone is traced too) and runs until `train()` ends, or until a
standalone `evaluate()`/`predict()` ends; then the findings so far are logged (logger
`bnlint`) by the main process and written to `report_file` (default
`<output_dir>/bnlint-report.json`, the JSON that `bnlint check --runtime-report`
merges). Under `torchrun` every process traces and the main process writes one report
of all ranks' findings, each naming the ranks that saw it (it waits for the others at
most `rank_timeout` seconds, default 60). The `Trainer` calls `model.train()` before
every training step and `model.eval()` for evaluation, so a `train()` override is
called there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

try:
    import transformers
except ImportError as error:
    raise ImportError(
        f"bnlint.integrations.transformers needs transformers ({error}): "
        "install it with `pip install 'bnlint[hf]'`"
    ) from error

from bnlint.finding import Finding
from bnlint.integrations.session import TraceSession

__all__ = ["BNLintTrainerCallback"]


class BNLintTrainerCallback(transformers.TrainerCallback):
    """Traces `train`/`evaluate`/`predict` and reports BatchNorm misuse."""

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
        self._training = False

    @property
    def findings(self) -> list[Finding]:
        return self.session.findings

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.session.set_ranks(args.process_index, args.world_size)
        self.session.start()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = True
        self.session.start()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        self._finish(args, state)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # A standalone evaluate()/predict() after an earlier report: trace it again.
        self.session.start()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._training:
            self._finish(args, state)

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any, **kwargs: Any) -> None:
        if not self._training:
            self._finish(args, state)

    def _finish(self, args: Any, state: Any) -> None:
        self.session.stop()
        path = self.session.report(args.output_dir, write=state.is_world_process_zero)
        if path is not None:
            self.report_path = path
