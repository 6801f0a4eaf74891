"""One tracer across a framework's stages (fit, validate, test, predict) and its report.

The framework callbacks only say when a stage starts and ends; this holds the tracer,
renders the findings with the same reporters as `bnlint check`/`bnlint run`, logs them
and writes the report file. Nothing here knows a framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.finding import Finding
    from bnlint.trace.tracer import Tracer

LOG = logging.getLogger("bnlint")

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
    ) -> None:
        self._select = list(select) if select is not None else None
        self._ignore = list(ignore or ())
        self._sample_every = sample_every
        self._options = options
        self._report_file = Path(report_file) if report_file is not None else None
        self._output_format = output_format
        self._tracer: Tracer | None = None
        self._active = False
        # Turns findings into what the framework user should read (framework notes).
        self.annotate: Callable[[list[Finding]], list[Finding]] = lambda findings: findings

    @property
    def findings(self) -> list[Finding]:
        if self._tracer is None:
            return []
        return self.annotate(self._tracer.findings)

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
        sites.refresh_libraries()
        self._tracer.start()
        self._active = True

    def stop(self) -> None:
        if self._active and self._tracer is not None:
            self._tracer.stop()
        self._active = False

    def report(self, default_directory: str | Path, *, write: bool = True) -> Path | None:
        """Log the findings; write the report file (when `write`) and return its path."""
        from bnlint.registry import run_summary
        from bnlint.report import render

        findings = self.findings
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


def _project_options() -> Mapping[str, Any]:
    """The `[tool.bnlint]` settings of the working directory's project, if readable."""
    from bnlint.config import ConfigError, load_settings

    try:
        return load_settings(Path.cwd()).options
    except ConfigError as error:
        LOG.warning("bnlint: %s; running with the default settings", error)
        return {}
