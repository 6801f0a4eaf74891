"""`bnlint run`: execute a script or module under the tracer, like `coverage run`.

The script sees its own `sys.argv`, `sys.path[0]` and `__main__`; its output and exit
status are kept. The tracer starts before the script runs (so construction sites are
seen) and the findings are collected whatever way the script ends: normally, by an
exception (printed as Python would), by `sys.exit`, by Ctrl-C or SIGTERM. Only
`os._exit` and a hard kill end the process before the report.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from bnlint.finding import Finding

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    findings: list[Finding]
    # `Tracer.timeline_report()` when the run recorded a timeline, else None.
    timeline: dict[str, Any] | None = None


def exit_status(code: object) -> int:
    """What Python's own `sys.exit(code)` would make the process exit with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextmanager
def _script_environment(argv: Sequence[str], path0: str | None) -> Iterator[None]:
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_main = sys.modules.get("__main__")
    sys.argv = list(argv)
    if path0 is not None:
        sys.path[0:1] = [path0]
    try:
        yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


@contextmanager
def sigterm_handled(handler: Any) -> Iterator[None]:
    """`handler` for SIGTERM inside the block, the previous one back afterwards (no
    change outside the main thread, where signals cannot be set)."""
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sigterm_as_exit() -> contextlib.AbstractContextManager[None]:
    """SIGTERM (a CI timeout, `kill`) ends the script through SystemExit so the report
    is still written."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    return sigterm_handled(terminate)


def _user_traceback(error: BaseException) -> TracebackType | None:
    """Drop the frames of bnlint and runpy above the script, as `python script.py` shows."""
    tb = error.__traceback__
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    while tb is not None and (
        tb.tb_frame.f_code.co_filename.startswith(here)
        or tb.tb_frame.f_code.co_filename == runpy.__file__
        or tb.tb_frame.f_code.co_filename.startswith("<frozen")
    ):
        tb = tb.tb_next
    return tb


def run(
    target: str,
    args: Sequence[str],
    *,
    module: bool = False,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    options: Mapping[str, Any] | None = None,
    timeline: bool = False,
) -> RunResult:
    """Run `target` (a script path, or a module name when `module`) with `args`;
    `options` are the `[tool.bnlint]` settings (`transductive-batchnorm` ...);
    `timeline` records the run's picture (`RunResult.timeline`)."""
    from bnlint.trace import trace

    tracer = trace(select=select, ignore=ignore, options=options, timeline=timeline)
    if module:
        argv, path0 = [target, *args], os.getcwd()
    else:
        argv, path0 = [target, *args], os.path.dirname(os.path.abspath(target))
    exit_code = 0
    with _script_environment(argv, path0), _sigterm_as_exit():
        tracer.start()
        try:
            if module:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
        except SystemExit as stop:
            exit_code = exit_status(stop.code)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", file=sys.stderr)
            exit_code = EXIT_INTERRUPTED
        except BaseException as error:
            traceback.print_exception(type(error), error, _user_traceback(error))
            exit_code = 1
        finally:
            tracer.stop()
    return RunResult(exit_code, tracer.findings, tracer.timeline_report() if timeline else None)
