"""pytest plugin: `pytest --bnlint` traces every test with the runtime tracer.

- `--bnlint`: trace each test's call phase and list the findings per test at the end.
- `--bnlint-strict`: the same, and a test that passed but produced findings fails.
- `bnlint_trace` fixture: an active tracer around one test, for targeted assertions
  (`assert bnlint_trace.findings == []`), without the command-line option.

Both read the project's `[tool.bnlint]` options (`transductive-batchnorm = true` turns
BN002, BN005 and BN012 off here too).

torch loads only when a test is traced, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bnlint.finding import Finding
    from bnlint.trace.tracer import Tracer

_FINDINGS = pytest.StashKey[list["Finding"]]()
_OPTIONS = pytest.StashKey[Mapping[str, Any]]()
_REPORTED: list[tuple[str, list[Finding]]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bnlint", "BatchNorm misuse (bnlint runtime tracer)")
    group.addoption(
        "--bnlint",
        action="store_true",
        help="trace every test with bnlint's runtime tracer and report BatchNorm misuse",
    )
    group.addoption(
        "--bnlint-strict",
        action="store_true",
        help="like --bnlint, and fail tests that produce bnlint findings",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("bnlint") or config.getoption("bnlint_strict"))


def _describe(finding: Finding) -> str:
    count = f" (x{finding.count})" if finding.count > 1 else ""
    return (
        f"{finding.path}:{finding.start.line}:{finding.start.column}: "
        f"{finding.code} [{finding.severity.value}] {finding.message}{count}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    if not _enabled(item.config):
        return (yield)
    from bnlint.trace import trace

    tracer = trace(options=_options(item.config))
    tracer.start()
    try:
        result = yield
    finally:
        tracer.stop()
        findings = tracer.findings
        item.stash[_FINDINGS] = findings
        if findings:
            _REPORTED.append((item.nodeid, findings))
    if findings and item.config.getoption("bnlint_strict"):
        lines = "\n".join(_describe(finding) for finding in findings)
        pytest.fail(f"bnlint found BatchNorm misuse during this test:\n{lines}", pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _enabled(config):
        return
    terminalreporter.section("bnlint runtime findings")
    if not _REPORTED:
        terminalreporter.write_line("no BatchNorm misuse seen")
        return
    for nodeid, findings in _REPORTED:
        terminalreporter.write_line(nodeid)
        for finding in findings:
            terminalreporter.write_line("    " + _describe(finding))
    total = sum(len(findings) for _, findings in _REPORTED)
    terminalreporter.write_line(f"{total} findings in {len(_REPORTED)} tests")
    _REPORTED.clear()


def _options(config: pytest.Config) -> Mapping[str, Any]:
    """The project's `[tool.bnlint]` options (read once per session)."""
    options = config.stash.get(_OPTIONS, None)
    if options is None:
        from bnlint.config import load_settings

        options = load_settings(config.rootpath).options
        config.stash[_OPTIONS] = options
    return options


@pytest.fixture
def bnlint_trace(request: pytest.FixtureRequest) -> Generator[Tracer, None, None]:
    """An active bnlint tracer for this test (every module, default rules, the
    project's `[tool.bnlint]` options)."""
    from bnlint.trace import trace

    with trace(options=_options(request.config)) as tracer:
        yield tracer
