"""Every rule's inline VALID/INVALID examples, as Fixit runs its rules' cases."""

from __future__ import annotations

import pytest

from bnlint.fix.edits import apply_edits
from bnlint.registry import all_rules
from bnlint.rule import Invalid
from tests.conftest import lint

VALID = [
    pytest.param(code, source, id=f"{code}-valid-{i}")
    for code, rule in all_rules().items()
    for i, source in enumerate(rule.VALID)
]
INVALID = [
    pytest.param(code, case, id=f"{code}-invalid-{i}")
    for code, rule in all_rules().items()
    for i, case in enumerate(rule.INVALID)
]


@pytest.mark.parametrize(("code", "source"), VALID)
def test_valid_example_is_silent(code: str, source: str) -> None:
    assert [f for f in lint(source, [code]) if f.code == code] == []


@pytest.mark.parametrize(("code", "case"), INVALID)
def test_invalid_example_is_flagged(code: str, case: Invalid) -> None:
    findings = [f for f in lint(case.source, [code]) if f.code == code]
    assert findings, f"{code} said nothing about:\n{case.source}"
    if case.fixed is not None:
        fixes = [f.fix for f in findings if f.fix is not None]
        assert fixes, f"{code} offers no fix for:\n{case.source}"
        declared = all_rules()[code].autofix
        assert {fix.applicability.value for fix in fixes} == {declared}, code
        fixed = apply_edits(case.source, [edit for fix in fixes for edit in fix.edits])
        assert fixed == case.fixed


def test_every_static_rule_has_examples() -> None:
    from bnlint.engine.run import static_rules

    for code in static_rules():
        rule = all_rules()[code]
        assert rule.VALID and rule.INVALID, f"{code} has no inline examples"


def test_every_rule_is_documented_under_the_standard_headings() -> None:
    for code, rule in all_rules().items():
        doc = rule.documentation()
        for heading in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
            assert heading in doc, f"{code} documentation lacks {heading!r}"


def test_a_rule_that_declares_an_autofix_shows_it_exactly() -> None:
    for code, rule in all_rules().items():
        if rule.autofix != "none":
            assert any(case.fixed is not None for case in rule.INVALID), (
                f"{code} declares an {rule.autofix} autofix but no INVALID example shows it"
            )
