"""A rule's trigger pattern searched branch by branch, each branch from a literal.

The pre-filter searches every file for each rule's `trigger_pattern`. Python's `re`
scans for a pattern that starts with a literal at C speed, but an alternation whose
branches start differently, a leading `\\b` or a leading group is tried at every
position of the text: on the wheel trees that was most of the pre-filter's regex time.
So a pattern `A|B|C` is searched as its top-level branches, in order:

- a branch is skipped when the longest literal it must contain is not in the text
  (a substring test);
- a branch `(?:x|y|z)R` whose group holds only literals is searched as `xR|yR|zR`;
- a branch `\\bword...` is searched as `word...` with the word boundary checked per
  match (`bnlint.word_search`).

The answer is the same as `re.search(pattern, text, re.MULTILINE)`: a pattern this
module cannot take apart safely (global flags, back-references, look-behinds, odd
syntax) is searched whole.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from bnlint.word_search import has_word_match

_QUANTIFIERS = "*?+{"
_METACHARACTERS = ".^$*+?{}[]()|\\"


@dataclass(frozen=True)
class _Branch:
    pattern: re.Pattern[str]
    guard: str  # a substring every match contains ("" when none is known)
    word_start: bool  # `pattern` lost a leading `\b`: check it per match


@functools.cache
def trigger_branches(source: str) -> tuple[_Branch, ...]:
    """The branches to search for `source` (one, the whole pattern, when it cannot be
    taken apart)."""
    whole = (_Branch(re.compile(source, re.MULTILINE), "", False),)
    if source.startswith("(?") and not source.startswith(("(?:", "(?P<", "(?=", "(?!")):
        return whole  # global flags (`(?i)`) apply to every branch
    if re.search(r"\\\d|\(\?P=|\(\?<[=!]", source):
        return whole  # back-references and look-behinds
    branches = _top_level_branches(source)
    if branches is None:
        return whole
    found: list[_Branch] = []
    for branch in branches:
        for part in _expand_leading_group(branch):
            word_start = part.startswith("\\b") and _is_word_literal(part[2:3])
            body = part[2:] if word_start else part
            guard = _guard(body)
            if guard is None:
                return whole
            found.append(_Branch(re.compile(body, re.MULTILINE), guard, word_start))
    return tuple(found)


def pattern_found(source: str, text: str) -> bool:
    """`re.compile(source, re.MULTILINE).search(text) is not None`, faster."""
    for branch in trigger_branches(source):
        if branch.guard and branch.guard not in text:
            continue
        if branch.word_start:
            if has_word_match(branch.pattern, text):
                return True
        elif branch.pattern.search(text) is not None:
            return True
    return False


def _is_word_literal(character: str) -> bool:
    return len(character) == 1 and (character.isalnum() or character == "_")


def _top_level_branches(source: str) -> list[str] | None:
    """`source` split at its top-level `|` (not inside a group or a class)."""
    branches: list[str] = []
    start = 0
    position = 0
    while position < len(source):
        character = source[position]
        if character == "\\":
            position += 2
            continue
        if character in "[(":
            end = (_class_end if character == "[" else _group_end)(source, position)
            if end is None:
                return None
            position = end + 1
            continue
        if character == ")":
            return None  # closes nothing
        if character == "|":
            branches.append(source[start:position])
            start = position + 1
        position += 1
    branches.append(source[start:])
    return branches


def _class_end(source: str, start: int) -> int | None:
    """The index of the `]` closing the class opened at `start` (a `]` right after
    `[` or `[^` belongs to the class)."""
    position = start + 1
    if source[position : position + 1] == "^":
        position += 1
    if source[position : position + 1] == "]":
        position += 1
    while position < len(source):
        if source[position] == "\\":
            position += 2
            continue
        if source[position] == "]":
            return position
        position += 1
    return None


def _group_end(source: str, start: int) -> int | None:
    """The index of the `)` closing the group opened at `start`."""
    depth = 0
    position = start
    while position < len(source):
        character = source[position]
        if character == "\\":
            position += 2
            continue
        if character == "[":
            end = _class_end(source, position)
            if end is None:
                return None
            position = end + 1
            continue
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
            if depth == 0:
                return position
        position += 1
    return None


def _expand_leading_group(branch: str) -> list[str]:
    """`(?:tqdm|iter)\\(R` → [`tqdm\\(R`, `iter\\(R`] when the group holds only plain
    literals and is not quantified; otherwise `[branch]`."""
    if not branch.startswith("(?:"):
        return [branch]
    end = _group_end(branch, 0)
    if end is None or branch[end + 1 : end + 2] in tuple(_QUANTIFIERS):
        return [branch]
    alternatives = branch[3:end].split("|")
    if not all(a and all(_is_word_literal(c) for c in a) for a in alternatives):
        return [branch]
    return [alternative + branch[end + 1 :] for alternative in alternatives]


def _guard(branch: str) -> str | None:
    """The longest run of literal characters that every match of `branch` contains
    ("" when there is none), or None when the branch holds syntax read here wrongly."""
    runs: list[str] = []
    run = ""
    position = 0
    while position < len(branch):
        character = branch[position]
        literal: str | None = None
        if character == "\\":
            escaped = branch[position + 1 : position + 2]
            if not escaped:
                return None
            literal = None if escaped.isalnum() else escaped
            position += 2
        elif character == "[":
            end = _class_end(branch, position)
            if end is None:
                return None
            position = end + 1
        elif character == "(":
            end = _group_end(branch, position)
            if end is None:
                return None
            position = end + 1
        elif character in _QUANTIFIERS:
            return None  # a quantifier with nothing before it
        elif character in _METACHARACTERS:
            position += 1  # `.`, `^`, `$`
        else:
            literal = character
            position += 1
        # What follows the atom: a quantifier makes it optional or repeated.
        follower = branch[position : position + 1]
        if follower and follower in _QUANTIFIERS:
            if follower == "{":
                close = branch.find("}", position)
                if close < 0:
                    return None
                position = close + 1
            else:
                position += 1
            if branch[position : position + 1] in ("?", "+"):
                position += 1  # lazy or possessive
            if literal is not None and follower == "+":
                run += literal  # at least once
            runs.append(run)
            run = ""
            continue
        if literal is None:
            runs.append(run)
            run = ""
        else:
            run += literal
    runs.append(run)
    return max(runs, key=len)
