"""Run one function over many files, in a process pool when the work is worth it.

Forking workers costs tens of milliseconds; below `POOL_MIN_BYTES` of source one
process is faster. Whatever a worker needs besides its item (the project index, the
rule options) goes to each worker once through `shared`, not pickled with every item.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

POOL_MIN_BYTES = 400_000

_SHARED: tuple[Any, ...] = ()


def parallel_map(
    function: Callable[..., Result],
    items: Sequence[Item],
    *,
    size: Callable[[Item], int],
    shared: tuple[Any, ...] = (),
    before_fork: Callable[[], object] | None = None,
) -> list[Result]:
    """`[function(item, *shared) for item in items]`, spread over the cores when the
    items are large enough. A pool that breaks falls back to one process.
    `before_fork` runs only when a pool is used (to import what every worker needs)."""
    workers = min(os.cpu_count() or 1, len(items))
    if workers > 1 and sum(size(item) for item in items) >= POOL_MIN_BYTES:
        from concurrent.futures import ProcessPoolExecutor  # 30 ms: only when used

        if before_fork is not None:
            before_fork()

        try:
            with ProcessPoolExecutor(
                max_workers=workers, initializer=_set_shared, initargs=shared
            ) as pool:
                chunk = max(1, len(items) // (workers * 8))
                return list(pool.map(_Call(function), items, chunksize=chunk))
        except Exception:  # a broken pool is no reason to lose the run
            pass
    return [function(item, *shared) for item in items]


def _set_shared(*shared: Any) -> None:
    global _SHARED
    _SHARED = shared


class _Call:
    """Picklable: calls `function(item, *shared)` in the worker."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, item: Any) -> Any:
        return self.function(item, *_SHARED)
