"""Apply a finding's text edits to source text."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bnlint.finding import Edit, Position

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """`text` with `edits` applied. Edits must not overlap; they are applied from the
    end of the text backwards so earlier offsets stay valid."""
    starts = _line_starts(text)
    spans = sorted(
        ((_offset(starts, e.start), _offset(starts, e.end), e.content) for e in edits),
        reverse=True,
    )
    previous_start = len(text) + 1
    for start, end, content in spans:
        if end > previous_start:
            raise ValueError("overlapping edits")
        text = text[:start] + content + text[end:]
        previous_start = start
    return text


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for match in _LINE.finditer(text):
        starts.append(match.end())
    return starts


def _offset(starts: list[int], position: Position) -> int:
    if not 1 <= position.line <= len(starts):
        raise ValueError(f"edit position {position} is outside the text")
    return starts[position.line - 1] + position.column - 1
