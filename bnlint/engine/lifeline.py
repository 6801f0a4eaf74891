"""Worker processes die with the `bnlint` process that started them.

`timeout`, pre-commit, CI cancellation and editors stop a check by signalling the
`bnlint` process alone, often with SIGKILL, which no handler sees. Workers left
behind kept spinning on their files for hours (issue 11). So each worker watches its
parent itself: on Linux the kernel sends it SIGKILL when the parent dies
(`prctl(PR_SET_PDEATHSIG)`); elsewhere a daemon thread polls `os.getppid()` and exits
when the worker has been re-parented.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5


def die_with_parent(parent: int) -> None:
    """In a freshly started worker whose parent is `parent`: arrange to exit when it
    dies, and leave SIGINT to the parent (a Ctrl-C reaches the whole process group;
    the parent stops the workers itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched_by_kernel = _death_signal()
    if os.getppid() != parent:  # the parent died before the kernel was told to watch
        os._exit(1)
    if not watched_by_kernel:
        threading.Thread(target=_watch, args=(parent,), name="bnlint-lifeline", daemon=True).start()


def _death_signal() -> bool:
    """Ask Linux for SIGKILL when the parent dies; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)
