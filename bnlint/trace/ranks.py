"""Several processes, one report: the ranks of a `torchrun` run hand their findings to
rank 0, which merges them (`bnlint.merge.merge_ranks`).

Each rank runs `bnlint run` under its own tracer (torchrun sets `RANK` and
`WORLD_SIZE`). When its script ends, however it ends, a rank other than 0 writes its
findings to `rank-N.json` in a directory all local ranks share and prints no report.
Rank 0 waits for the others' files up to a timeout (from the end of its own script),
so a rank that crashed before writing, or hangs, never blocks the report: the ranks
still missing are named in it (BN998, a partial report). A rank whose process ended
without a report (every rank writes its process id first) is not waited for; and when
torchrun is stopping rank 0 itself (SIGTERM), it waits at most `STOPPING_TIMEOUT`
seconds, within torchrun's 30 s grace before SIGKILL. One machine: the directory is
local (`BNLINT_RANK_DIR` overrides it, for example with a shared path).

No torch here: plain files and environment variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bnlint.finding import Finding
from bnlint.trace.run import sigterm_handled

DEFAULT_TIMEOUT = 60.0
STOPPING_TIMEOUT = 20.0


@dataclass(frozen=True)
class Ranks:
    """This process's place in a multi-process run."""

    rank: int
    world_size: int
    directory: Path

    def file(self, rank: int) -> Path:
        return self.directory / f"rank-{rank}.json"


def from_environment(environ: Mapping[str, str] | None = None) -> Ranks | None:
    """The run's ranks as torchrun describes them; None for a single process."""
    env = os.environ if environ is None else environ
    try:
        world_size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env["RANK"])
    except (KeyError, ValueError):
        return None
    if world_size <= 1:
        return None
    return Ranks(rank, world_size, run_directory(env))


def run_directory(environ: Mapping[str, str], stage: str = "") -> Path:
    """The directory every rank of this run names alike (`BNLINT_RANK_DIR`, else one
    unique per launcher run and elastic restart on this machine); `stage` tells apart
    the several hand-overs of one run (a framework callback reports after each stage)."""
    directory = environ.get("BNLINT_RANK_DIR")
    if not directory:
        parts = (
            environ.get("TORCHELASTIC_RUN_ID", "none"),
            environ.get("TORCHELASTIC_RESTART_COUNT", "0"),
            environ.get("MASTER_ADDR", "localhost"),
            environ.get("MASTER_PORT", "0"),
        )
        safe = "-".join("".join(c if c.isalnum() else "_" for c in part) for part in parts)
        directory = os.path.join(tempfile.gettempdir(), f"bnlint-ranks-{safe}")
    return Path(directory) / stage if stage else Path(directory)


def announce(ranks: Ranks) -> None:
    """Before the script runs: this rank's process id, so that rank 0 can tell a rank
    that died without a report (killed, `os._exit`) from one still running."""
    ranks.directory.mkdir(parents=True, exist_ok=True)
    (ranks.directory / f"rank-{ranks.rank}.pid").write_text(str(os.getpid()), encoding="utf-8")


def _exited(directory: Path, rank: int) -> bool:
    """True when the rank announced a process that no longer runs (a zombie counts as
    ended: torchrun reaps its workers only when it notices)."""
    try:
        pid = int((directory / f"rank-{rank}.pid").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def write_rank_report(ranks: Ranks, findings: list[Finding], exit_code: int) -> None:
    """This rank's findings, written atomically (rank 0 never reads half a file)."""
    ranks.directory.mkdir(parents=True, exist_ok=True)
    data = {
        "rank": ranks.rank,
        "world_size": ranks.world_size,
        "exit_code": exit_code,
        "findings": [finding.to_json() for finding in findings],
    }
    target = ranks.file(ranks.rank)
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, target)


def collect_rank_reports(
    ranks: Ranks, own: list[Finding], timeout: float = DEFAULT_TIMEOUT
) -> tuple[dict[int, list[Finding]], dict[int, str]]:
    """Rank 0: every rank's findings (its own included) and, for the ranks whose file
    did not come within `timeout` seconds or cannot be read, why."""
    reports: dict[int, list[Finding]] = {ranks.rank: own}
    missing: dict[int, str] = {}
    pending = set(range(ranks.world_size)) - {ranks.rank}
    deadline = time.monotonic() + timeout
    while pending:
        for rank in sorted(pending):
            path = ranks.file(rank)
            if not path.exists():
                if _exited(ranks.directory, rank) and not path.exists():
                    pending.discard(rank)
                    missing[rank] = "its process ended without a report (killed or crashed)"
                continue
            pending.discard(rank)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                reports[rank] = [Finding.from_json(item) for item in data["findings"]]
            except (OSError, ValueError, KeyError, TypeError) as error:
                missing[rank] = f"unreadable report {path} ({error})"
                continue
            path.unlink(missing_ok=True)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for rank in pending:
        missing[rank] = f"no report within {timeout:g} s (hung, or killed before writing)"
    for rank in range(ranks.world_size):
        (ranks.directory / f"rank-{rank}.pid").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        ranks.directory.rmdir()  # left in place while a late rank's file is there
    return reports, missing


def sigterm_ignored() -> contextlib.AbstractContextManager[None]:
    """torchrun stops the other workers with SIGTERM when one fails: a rank finishes
    handing over (rank 0: its bounded wait, the merge and the report) regardless;
    torchrun's SIGKILL after its grace period still ends it."""
    return sigterm_handled(signal.SIG_IGN)
