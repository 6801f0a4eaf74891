"""Realistic samples under fixtures/<CODE>-<name>/: bad_*.py mark each expected finding
on its line with `# expect: CODE[, CODE]`; good_*.py are look-alikes that must stay
silent. Each file is checked with the default rules plus its folder's rule, so a
fixture also catches another rule crying wolf on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bnlint.engine.run import static_rules, triggered
from bnlint.registry import default_codes
from tests.conftest import FIXTURES, lint

EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>BN\d{3}(?:\s*,\s*BN\d{3})*)")
FOLDER = re.compile(r"^(?P<code>BN\d{3})-")


def _fixture_files() -> list[Path]:
    return sorted(
        path
        for folder in FIXTURES.iterdir()
        if folder.is_dir() and FOLDER.match(folder.name)
        for path in folder.glob("*.py")
    )


def expected_findings(text: str) -> set[tuple[int, str]]:
    expected = set()
    for number, line in enumerate(text.splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            expected |= {(number, code.strip()) for code in match.group("codes").split(",")}
    return expected


@pytest.mark.parametrize("path", _fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_yields_exactly_its_marked_findings(path: Path) -> None:
    match = FOLDER.match(path.parent.name)
    assert match is not None
    text = path.read_text(encoding="utf-8")
    rules = static_rules()
    # Through the trigger pre-filter, as a real run: a rule whose trigger words miss a
    # bad fixture would never see it.
    codes = sorted(
        code
        for code in (default_codes() | {match.group("code")}) & set(rules)
        if triggered(rules[code], text)
    )
    found = {(f.start.line, f.code) for f in lint(text, codes, path=str(path))}
    expected = expected_findings(text)
    if path.name.startswith("good"):
        assert expected == set(), "a good fixture must not expect findings"
    else:
        assert path.name.startswith("bad"), "fixture files are named bad_*.py or good_*.py"
        assert expected, "a bad fixture must mark at least one `# expect:`"
    assert found == expected


def test_every_static_rule_has_fixtures() -> None:
    folders = {p.name.split("-")[0] for p in FIXTURES.iterdir() if FOLDER.match(p.name)}
    missing = set(static_rules()) - folders
    assert not missing, f"rules without fixtures: {sorted(missing)}"


# A default-on rule must show it fires on the real variants and stays silent on their
# look-alikes with at least five samples of each; a default-off rule with three.
MINIMUM_FIXTURES = {True: 5, False: 3}


@pytest.mark.parametrize("code", sorted(static_rules()))
def test_every_static_rule_has_enough_bad_and_good_fixtures(code: str) -> None:
    (folder,) = [p for p in FIXTURES.iterdir() if p.is_dir() and p.name.startswith(f"{code}-")]
    wanted = MINIMUM_FIXTURES[static_rules()[code].default_enabled]
    assert len(list(folder.glob("bad_*.py"))) >= wanted
    assert len(list(folder.glob("good_*.py"))) >= wanted
