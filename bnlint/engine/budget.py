"""A time budget per file, so that one file cannot hold a whole run hostage.

A rule or an index query that runs away on one file (a call graph walked once per
path, a loop that does not converge) used to stall `bnlint check` with no clue which
file was at fault. Under a budget, that file gets a BN999 finding naming it and the
run goes on with the others.

The clock is the process's own CPU time (`ITIMER_VIRTUAL`, delivered as `SIGVTALRM`):
no thread and no polling, two system calls a file. CPU time rather than wall time, so
that a busy machine (a CI runner, an editor running other tools, pre-commit's parallel
hooks) does not skip files that are only waiting for a core: a file is skipped for what
it costs, the same on every machine load. The alarm raises `OverBudget`, a
`BaseException`, so that the `except Exception` that keeps one rule's bug from
stopping the others does not swallow it. Where there is no `SIGVTALRM` (Windows) or
off the main thread (signals are delivered there only), files run without a budget
rather than not at all.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType
from typing import Any, TypeVar

Result = TypeVar("Result")


def file_time_budget(options: Mapping[str, Any] | None) -> float:
    """Seconds one file may take (`file-time-budget` in [tool.bnlint]; 0: no limit)."""
    value = (options or {}).get("file-time-budget", 0)
    return float(value) if isinstance(value, int | float) else 0.0


class OverBudget(BaseException):
    """Raised inside the file's work when its budget runs out."""


class FileBudget:
    """`with FileBudget(seconds) as budget: budget.run(function, item)` — each `run` gets
    `seconds` of CPU time; `seconds <= 0` means no budget."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._armed = False
        self._installed = False
        self._previous: object = None

    def __enter__(self) -> FileBudget:
        if (
            self.seconds > 0
            and hasattr(signal, "SIGVTALRM")
            and threading.current_thread() is threading.main_thread()
        ):
            self._previous = signal.signal(signal.SIGVTALRM, self._alarm)
            self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
            signal.signal(signal.SIGVTALRM, self._previous)  # type: ignore[arg-type]
            self._installed = False

    def run(self, function: Callable[[], Result]) -> Result | OverBudget:
        """`function()`, or the `OverBudget` that stopped it."""
        if not self._installed:
            return function()
        self._armed = True
        signal.setitimer(signal.ITIMER_VIRTUAL, self.seconds)
        try:
            result = function()
            self._armed = False  # an alarm from here on is late: ignored
            return result
        except OverBudget as over:
            return over
        finally:
            self._armed = False
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)

    def _alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            self._armed = False
            raise OverBudget(self.seconds)
