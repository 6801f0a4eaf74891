"""`word_search` finds what the same pattern with a leading `\\b` finds."""

from __future__ import annotations

import re

import pytest

from bnlint.word_search import has_word_match, word_matches

TEXTS = [
    "",
    "return a, b",
    "xreturn a, b",
    "xreturn return a,",
    "xreturn return, a,",
    "_return a, b\nreturn c, d",
    "return\na, b = f()",
    "éreturn a, b",
    "(return a, b)",
    "self.net(x) + myself.head(y) + self.self.fc(z)",
    "xself.self.fc(z)",
    "F.dropout(x) + F.dropout2d(x) + my_dropout(x) + dropout3d(x)",
]
PATTERNS = [r"return\s+\w+\s*,", r"self\.(\w+)\(", r"dropout[123]?d?\(", r"optim\."]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("text", TEXTS)
def test_word_matches_are_those_of_a_leading_word_boundary(pattern: str, text: str) -> None:
    bounded = re.compile(r"\b" + pattern)
    found = [(m.span(), m.groups()) for m in word_matches(re.compile(pattern), text)]
    assert found == [(m.span(), m.groups()) for m in bounded.finditer(text)]
    assert has_word_match(re.compile(pattern), text) == (bounded.search(text) is not None)


def test_a_match_inside_a_longer_word_is_skipped() -> None:
    assert not has_word_match(re.compile(r"return\s+\w+\s*,"), "noreturn a, b")
