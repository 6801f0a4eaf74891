"""Run one function over many files, in a process pool when the work is worth it.

Forking workers costs tens of milliseconds; below `POOL_MIN_BYTES` of source one
process is faster. Whatever a worker needs besides its item (the project index, the
rule options) goes to each worker once through `shared`, not pickled with every item.

Each item runs under a time budget (`budget.FileBudget`): an item that exceeds it is
answered by `over_budget(item, seconds)` and the others go on. Workers die with the
parent (`lifeline`), and a parent interrupted (Ctrl-C, SystemExit) kills its workers
before it leaves, rather than waiting for them to finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bnlint.engine.budget import FileBudget, OverBudget

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

Item = TypeVar("Item")
Result = TypeVar("Result")

POOL_MIN_BYTES = 400_000

_SHARED: tuple[Any, ...] = ()
_BUDGET = FileBudget(0)


def parallel_map(
    function: Callable[..., Result],
    items: Sequence[Item],
    *,
    size: Callable[[Item], int],
    shared: tuple[Any, ...] = (),
    before_fork: Callable[[], object] | None = None,
    budget: float = 0,
    over_budget: Callable[[Item, float], Result] | None = None,
) -> list[Result]:
    """`[function(item, *shared) for item in items]`, spread over the cores when the
    items are large enough. A pool that breaks falls back to one process.
    `before_fork` runs only when a pool is used (to import what every worker needs).
    With `budget` (seconds) and `over_budget`, an item that takes longer is answered by
    `over_budget(item, budget)` instead."""
    call = _Call(function, over_budget)
    workers = min(os.cpu_count() or 1, len(items))
    if workers > 1 and sum(size(item) for item in items) >= POOL_MIN_BYTES:
        from concurrent.futures import ProcessPoolExecutor  # 30 ms: only when used

        if before_fork is not None:
            before_fork()
        seconds = budget if over_budget is not None else 0
        pool = None
        try:
            pool = ProcessPoolExecutor(
                max_workers=workers,
                initializer=_start_worker,
                initargs=(os.getpid(), seconds, *shared),
            )
            chunk = max(1, len(items) // (workers * 8))
            results = list(pool.map(call, items, chunksize=chunk))
            pool.shutdown()
            return results
        except Exception:  # a broken pool is no reason to lose the run
            if pool is not None:
                _kill_workers(pool)
        except BaseException:  # interrupted: stop the workers, not wait for them
            if pool is not None:
                _kill_workers(pool)
            raise
    with FileBudget(budget if over_budget is not None else 0) as clock:
        return [call.within(clock, item, shared) for item in items]


def _start_worker(parent: int, budget: float, *shared: Any) -> None:
    from bnlint.engine.lifeline import die_with_parent

    die_with_parent(parent)
    global _SHARED, _BUDGET
    _SHARED = shared
    # Entered for the worker's lifetime: the SIGVTALRM handler is installed once.
    _BUDGET = FileBudget(budget).__enter__()


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now (Python 3.14 has `kill_workers`; before it, the
    executor's process table is the only handle on them)."""
    kill = getattr(pool, "kill_workers", None)
    if callable(kill):
        kill()
    else:
        processes = getattr(pool, "_processes", None) or {}
        for process in list(processes.values()):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


class _Call:
    """Picklable: calls `function(item, *shared)` in the worker, within its budget."""

    def __init__(
        self, function: Callable[..., Any], over_budget: Callable[[Any, float], Any] | None
    ) -> None:
        self.function = function
        self.over_budget = over_budget

    def __call__(self, item: Any) -> Any:
        return self.within(_BUDGET, item, _SHARED)

    def within(self, clock: FileBudget, item: Any, shared: tuple[Any, ...]) -> Any:
        if self.over_budget is None:
            return self.function(item, *shared)
        result = clock.run(lambda: self.function(item, *shared))
        if isinstance(result, OverBudget):
            return self.over_budget(item, clock.seconds)
        return result
