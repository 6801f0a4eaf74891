"""Line filters for ast walks: a walk that enters only the nodes on lines whose text
holds a word skips most of a tree for the price of a substring test per line."""

from __future__ import annotations

import ast
import bisect
from collections.abc import Sequence


def parser_lines(text: str) -> list[str] | None:
    """The text's lines, numbered as the parser numbers them (from 1 at index 0); None
    when the text has carriage returns, whose line ends the parser counts differently
    from `\\n` alone (such files keep every line)."""
    return None if "\r" in text else text.split("\n")


def on_lines(node: ast.AST, lines: Sequence[int] | None) -> bool:
    """Whether the node's lines (from its first decorator) include one of the sorted
    line numbers `lines`; always true without `lines` or for a node without position."""
    first, last = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
    if lines is None or first is None or last is None:
        return True
    for decorator in getattr(node, "decorator_list", ()):
        first = min(first, decorator.lineno)
    index = bisect.bisect_left(lines, first)
    return index < len(lines) and lines[index] <= last
