"""The per-file cache: a warm re-run parses nothing, a touched file is re-parsed, and a
configuration change starts afresh. Counted with `RunResult.parsed`, not timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bnlint.config import Selection, load_settings
from bnlint.engine.run import RunResult, check_paths

BAD = "import torch\nmodel.eval\n"


def _run(
    project: Path,
    use_cache: bool = True,
    ignore: tuple[str, ...] = (),
    select: tuple[str, ...] | None = None,
) -> RunResult:
    settings = load_settings(project)
    enabled = settings.enabled_codes(Selection(select=select, ignore=ignore))
    return check_paths([project], settings, enabled, cwd=project, use_cache=use_cache)


def _write_files(project: Path, count: int) -> None:
    for i in range(count):
        (project / f"m{i}.py").write_text(BAD if i % 2 else "import torch\nmodel.eval()\n")


def test_warm_run_parses_nothing_and_gives_the_same_findings(project: Path) -> None:
    _write_files(project, 6)
    cold = _run(project)
    warm = _run(project)
    assert cold.parsed == 6
    assert warm.parsed == 0
    assert warm.findings == cold.findings


def test_touching_one_file_reparses_only_that_file(project: Path) -> None:
    _write_files(project, 6)
    _run(project)
    (project / "m3.py").write_text(BAD + "net.train\n")
    rerun = _run(project)
    assert rerun.parsed == 1
    assert [f.start.line for f in rerun.findings if f.path == "m3.py"] == [2, 3]


def test_no_cache_always_parses(project: Path) -> None:
    _write_files(project, 3)
    _run(project)
    assert _run(project, use_cache=False).parsed == 3


def test_configuration_change_does_not_reuse_results(project: Path) -> None:
    _write_files(project, 2)
    _run(project)
    assert _run(project, ignore=("BN007",)).findings == []


def test_cache_directory_ignores_itself_in_git(project: Path) -> None:
    _write_files(project, 1)
    _run(project)
    assert (project / ".bnlint_cache" / ".gitignore").read_text().strip().endswith("*")


def test_corrupt_cache_is_ignored(project: Path) -> None:
    _write_files(project, 2)
    _run(project)
    for file in (project / ".bnlint_cache").rglob("*.json"):
        file.write_text("{not json")
    rerun = _run(project)
    assert rerun.parsed == 2 and len(rerun.findings) == 1


def test_process_pool_gives_the_same_findings_as_one_process(project: Path) -> None:
    # Enough source to cross the pool threshold.
    padding = "# " + "x" * 98 + "\n"
    for i in range(8):
        (project / f"big{i}.py").write_text(BAD + padding * 700)
    pooled = _run(project, use_cache=False)
    import bnlint.engine.pool as pool

    old = pool.POOL_MIN_BYTES
    pool.POOL_MIN_BYTES = 10**12
    try:
        serial = _run(project, use_cache=False)
    finally:
        pool.POOL_MIN_BYTES = old
    assert pooled.findings == serial.findings
    assert len(pooled.findings) == 8


CLEAN_MODEL = """import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))
"""


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import libcst

    calls: list[str] = []
    real = libcst.parse_module

    def counting(source: str, *args: object, **kwargs: object) -> libcst.Module:
        calls.append(source)
        return real(source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(libcst, "parse_module", counting)
    return calls


def test_index_rules_parse_only_files_they_report_on(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "clean.py").write_text(CLEAN_MODEL)
    (project / "biased.py").write_text(CLEAN_MODEL.replace(", bias=False", ""))
    calls = _count_parses(monkeypatch)
    result = _run(project, use_cache=False, select=("BN001", "BN004"))
    assert [(f.path, f.code) for f in result.findings] == [("biased.py", "BN004")]
    assert len(calls) == 1 and "bias=False" not in calls[0]
