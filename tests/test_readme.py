"""The README's rule table is generated from the rules' metadata and must not drift."""

from __future__ import annotations

import re

from bnlint.docs import rule_table_markdown
from tests.conftest import REPO

TABLE = re.compile(r"<!-- rules:start -->\n(?P<table>.*?)\n?<!-- rules:end -->", re.DOTALL)


def readme_table() -> str:
    match = TABLE.search((REPO / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md lacks the <!-- rules:start --> / <!-- rules:end --> markers"
    return match.group("table").strip()


def test_readme_rule_table_matches_the_rules() -> None:
    assert readme_table() == rule_table_markdown(), (
        "README.md's rule table is out of date: replace it with `bnlint rules --markdown`"
    )
