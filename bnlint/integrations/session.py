"""One tracer across a framework's stages (fit, validate, test, predict) and its report.

The framework callbacks only say when a stage starts and ends; this holds the tracer,
renders the findings with the same reporters as `bnlint check`/`bnlint run`, logs them
and writes the report file. Nothing here knows a framework.

Several processes (DDP): each rank traces its own process; at each report the other
ranks hand their findings to rank 0 through files (`bnlint.trace.ranks`, as under
`bnlint run` with torchrun), which writes one merged report naming the ranks that saw
each finding. Rank 0 waits for them at most `rank_timeout` seconds, so a crashed or hung
rank never blocks the report (BN998 marks it partial).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.finding import Finding
    from bnlint.trace.ranks import Ranks
    from bnlint.trace.tracer import Tracer

LOG = logging.getLogger("bnlint")

# Rank 0's wait for the others after a stage that raised: they may be stuck in a
# collective and never report.
FAILED_STAGE_TIMEOUT = 10.0
# `--format` name for a report file's suffix; json otherwise (what
# `bnlint check --runtime-report` reads back).
_FORMAT_BY_SUFFIX = {".txt": "text", ".sarif": "sarif", ".json": "json"}


class TraceSession:
    """Starts the tracer at the first stage, stops it at the end of each stage and then
    reports every finding so far (a later stage's report includes the earlier ones)."""

    def __init__(
        self,
        *,
        select: Iterable[str] | None,
        ignore: Iterable[str] | None,
        sample_every: int | None,
        options: Mapping[str, Any] | None,
        report_file: str | Path | None,
        output_format: str | None,
        rank_timeout: float | None = None,
    ) -> None:
        self._select = list(select) if select is not None else None
        self._ignore = list(ignore or ())
        self._sample_every = sample_every
        self._options = options
        self._report_file = Path(report_file) if report_file is not None else None
        self._output_format = output_format
        self._tracer: Tracer | None = None
        self._active = False
        self._rank_timeout = rank_timeout
        self._rank = 0
        self._world_size = 1
        self._reports = 0  # hand-overs so far: each names its own rank directory
        # Turns findings into what the framework user should read (framework notes).
        self.annotate: Callable[[list[Finding]], list[Finding]] = lambda findings: findings

    @property
    def findings(self) -> list[Finding]:
        if self._tracer is None:
            return []
        return self.annotate(self._tracer.findings)

    def set_ranks(self, rank: int, world_size: int) -> None:
        """This process's place in a multi-process run (the framework knows it)."""
        self._rank, self._world_size = rank, world_size

    def start(self) -> None:
        if self._active:
            return
        from bnlint.trace import sites, trace

        if self._tracer is None:
            options = self._options
            if options is None:
                options = _project_options()
            self._tracer = trace(
                select=self._select,
                ignore=self._ignore,
                sample_every=self._sample_every,
                options=options,
            )
        if self._world_size > 1:
            from bnlint.trace.ranks import announce

            # Lets rank 0 tell a rank that died without a report from a slow one.
            announce(self._next_ranks())
        sites.refresh_libraries()
        self._tracer.start()
        self._active = True

    def stop(self) -> None:
        if self._active and self._tracer is not None:
            self._tracer.stop()
        self._active = False

    def report(
        self, default_directory: str | Path, *, write: bool = True, failed: bool = False
    ) -> Path | None:
        """Log the findings; write the report file (when `write`) and return its path.
        `failed`: the stage ended in an exception, so the other ranks may never report
        (stuck in a collective): rank 0 waits for them at most `FAILED_STAGE_TIMEOUT`."""
        from bnlint.registry import run_summary
        from bnlint.report import render

        findings = self.findings
        if self._world_size > 1:
            gathered = self._gather(findings, failed)
            if gathered is None:
                return None  # rank 0 reports for everyone
            findings = gathered
        summary = run_summary(len({finding.path for finding in findings}), Path.cwd())
        if findings:
            LOG.warning("bnlint: BatchNorm findings\n%s", render("text", findings, summary))
        else:
            LOG.info("bnlint: no BatchNorm misuse seen")
        if not write:
            return None
        path = self._report_file or Path(default_directory) / "bnlint-report.json"
        fmt = self._output_format or _FORMAT_BY_SUFFIX.get(path.suffix, "json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(fmt, findings, summary), encoding="utf-8")
        return path

    def _gather(self, findings: list[Finding], failed: bool) -> list[Finding] | None:
        """Rank 0: every rank's findings merged; other ranks: None, after handing theirs."""
        from bnlint.merge import merge_ranks
        from bnlint.trace.ranks import (
            DEFAULT_TIMEOUT,
            collect_rank_reports,
            write_rank_report,
        )

        ranks = self._next_ranks()
        directory = ranks.directory
        self._reports += 1
        if self._rank != 0:
            write_rank_report(ranks, findings, 1 if failed else 0)
            return None
        timeout = DEFAULT_TIMEOUT if self._rank_timeout is None else self._rank_timeout
        if failed:
            timeout = min(timeout, FAILED_STAGE_TIMEOUT)
        reports, missing = collect_rank_reports(ranks, findings, timeout)
        if "BNLINT_RANK_DIR" not in os.environ:
            with contextlib.suppress(OSError):
                directory.parent.rmdir()  # ours; empty once every stage's files are read
        return merge_ranks(reports, self._world_size, missing)

    def _next_ranks(self) -> Ranks:
        """Where the ranks meet for the next report (one directory per report)."""
        from bnlint.trace.ranks import Ranks, run_directory

        directory = run_directory(os.environ, f"report-{self._reports + 1}")
        return Ranks(self._rank, self._world_size, directory)


def _project_options() -> Mapping[str, Any]:
    """The `[tool.bnlint]` settings of the working directory's project, if readable."""
    from bnlint.config import ConfigError, load_settings

    try:
        return load_settings(Path.cwd()).options
    except ConfigError as error:
        LOG.warning("bnlint: %s; running with the default settings", error)
        return {}
