"""The pytest plugin: --bnlint reports per test, --bnlint-strict fails, the fixture."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest.importorskip("torch")

pytest_plugins = ["pytester"]

TESTS = """
import torch
from torch import nn


def model():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_validation_without_eval():
    net = model()
    with torch.no_grad():
        net(torch.randn(3, 4))


def test_clean_evaluation():
    net = model().eval()
    with torch.no_grad():
        net(torch.randn(3, 4))
"""


def _plugin_args() -> list[str]:
    installed = any(ep.value.startswith("bnlint") for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "bnlint.pytest_plugin"]


def test_bnlint_option_reports_findings_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_models=TESTS)
    result = pytester.runpytest(*_plugin_args(), "--bnlint")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*bnlint runtime findings*",
            "test_models.py::test_validation_without_eval",
            "*test_models.py:12:1: BN002 [[]error[]]*no_grad*",
            "1 findings in 1 tests",
        ]
    )
    assert "test_clean_evaluation\n" not in result.stdout.str()


def test_strict_fails_the_test_with_findings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_models=TESTS)
    result = pytester.runpytest(*_plugin_args(), "--bnlint-strict")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*bnlint found BatchNorm misuse during this test*"])


def test_without_option_nothing_is_traced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_models=TESTS)
    result = pytester.runpytest(*_plugin_args())
    result.assert_outcomes(passed=2)
    assert "bnlint runtime findings" not in result.stdout.str()


def test_fixture_gives_an_active_tracer(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_with_fixture=TESTS
        + """

def test_fixture(bnlint_trace):
    net = model()
    with torch.no_grad():
        net(torch.randn(3, 4))
    assert [f.code for f in bnlint_trace.findings] == ["BN002"]
"""
    )
    result = pytester.runpytest(*_plugin_args(), "-k", "test_fixture")
    result.assert_outcomes(passed=1)


def test_transductive_batchnorm_config_applies_to_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.bnlint]\ntransductive-batchnorm = true\n")
    pytester.makepyfile(test_models=TESTS)
    result = pytester.runpytest(*_plugin_args(), "--bnlint-strict")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*no BatchNorm misuse seen*"])
