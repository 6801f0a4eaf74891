"""Regex searches that must start at a word boundary, without a leading `\\b`.

Python's `re` finds a pattern that starts with a literal (`return\\s+...`) by scanning
for that literal at C speed; a leading `\\b` (or a look-behind) turns the scan off, and
the pattern is then tried at every position of the text: about 15 times slower on the
functions of a model zoo. So the pattern is written without its `\\b` and each match
is checked for a word character before it, which finds the same matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# The same notion of a word character as `\b` uses.
_WORD_CHARACTER = re.compile(r"\w")


def word_matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """The matches of `\\b` + `pattern.pattern` in `text`, as `finditer` gives them.
    `pattern` must start with a word character (so that `\\b` before it means "no word
    character before the match")."""
    position = 0
    while (match := pattern.search(text, position)) is not None:
        start = match.start()
        if start == 0 or _WORD_CHARACTER.match(text, start - 1) is None:
            yield match
            # finditer goes on after a match (past an empty one, which these cannot be).
            position = match.end()
        else:
            position = start + 1


def has_word_match(pattern: re.Pattern[str], text: str) -> bool:
    """`re.search(r"\\b" + pattern.pattern, text) is not None` (see `word_matches`)."""
    return next(word_matches(pattern, text), None) is not None
