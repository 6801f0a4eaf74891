"""From a summary position back to the node a rule reports (libcst or `ast`).

Summaries are built with `ast`; the engine reports libcst nodes. Positions are resolved
here only for files where a rule has something to report (the engine resolves them
anyway for the findings), and shared by all rules of one run over a module.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import libcst as cst

# The last module's position table (libcst modules are not weak-referenceable; the
# rules of one file ask one after the other).
_LAST: list[tuple[Any, dict[tuple[int, int, int, int], list[Any]]]] = []


def node_at(
    module: cst.Module, pos: list[int], kind: type[cst.CSTNode] | None = None
) -> cst.CSTNode | None:
    """The outermost node of `kind` spanning exactly `pos` ([line, column, end line, end
    column], 1-based lines, 0-based code point columns), or None."""
    table = _LAST[0][1] if _LAST and _LAST[0][0] is module else None
    if table is None:
        from libcst.metadata import MetadataWrapper, PositionProvider

        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        table = {}
        for node, code_range in positions.items():
            key = (
                code_range.start.line,
                code_range.start.column,
                code_range.end.line,
                code_range.end.column,
            )
            table.setdefault(key, []).append(node)
        _LAST[:] = [(module, table)]
    for node in table.get((pos[0], pos[1], pos[2], pos[3]), []):
        if kind is None or isinstance(node, kind):
            return node  # type: ignore[no-any-return]
    return None


def ast_node_at(
    tree: ast.AST, text: str, pos: list[int], kinds: tuple[type[ast.AST], ...]
) -> ast.AST | None:
    """The outermost `ast` node of one of `kinds` spanning exactly `pos` (a summary
    position), or None: for rules that walk no tree and report `ast` nodes."""
    from bnlint.index.summary import Positions

    positions = Positions(text)
    for node in ast.walk(tree):
        if (
            isinstance(node, kinds)
            and getattr(node, "lineno", None) == pos[0]
            and positions.of(node) == list(pos)
        ):
            return node
    return None
