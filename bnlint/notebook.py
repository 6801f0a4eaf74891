"""Jupyter notebooks as one Python program, and back.

The code cells, in order, are joined into one program so that a model defined in one
cell and evaluated in another is analysed as the notebook runs it. IPython-only lines
(`%magic`, `!shell`, `x = !ls`, `obj?`, and the lines a trailing `\\` continues them
onto) and whole `%%cell` magics become `pass` at the same indentation, so the program
parses and every line keeps its number. Findings are then reported per cell, numbered
as ruff and Jupyter number them: 1-based over all cells, markdown included. Fixes are
made on the program and put back into the cells, with the IPython lines restored;
outputs and metadata are left untouched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# `%magic`, `!shell`, `files = !ls`, `?obj`, `obj?` / `obj??`.
_IPYTHON_LINE = re.compile(r"^[ \t]*(?:[%!]|\w+\s*=\s*[%!]|\?+[\w.]|[\w.]+\?{1,2}\s*$)")


class NotebookError(ValueError):
    """The file is not a notebook bnlint can read (malformed JSON or structure)."""


@dataclass(frozen=True)
class CellSpan:
    cell: int  # 1-based over all cells, as Jupyter and ruff number them
    first_line: int  # 1-based line of the program where the cell starts
    line_count: int
    trailing_newline: bool = False


@dataclass(frozen=True)
class NotebookProgram:
    text: str
    spans: tuple[CellSpan, ...]
    # Program line (1-based) → the IPython line it replaces.
    replaced: tuple[tuple[int, str], ...]

    def locate(self, line: int) -> tuple[int, int]:
        """(cell, line within the cell) of a program line."""
        for span in self.spans:
            if span.first_line <= line < span.first_line + span.line_count:
                return span.cell, line - span.first_line + 1
        last = self.spans[-1] if self.spans else CellSpan(1, 1, 1)
        return last.cell, max(1, line - last.first_line + 1)


def load(raw: str) -> tuple[dict[str, Any], NotebookProgram]:
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise NotebookError(f"the notebook is not valid JSON: {error}") from error
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        raise NotebookError("the notebook has no list of cells (nbformat 4 expected)")
    return document, program_of(cells)


def program_of(cells: list[Any]) -> NotebookProgram:
    lines: list[str] = []
    spans: list[CellSpan] = []
    replaced: list[tuple[int, str]] = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = _source_lines(cell.get("source", ""))
        if not source:
            continue
        first = len(lines) + 1
        whole_cell_magic = source[0].lstrip().startswith("%%")
        # The indentation of the shell/magic line a trailing backslash continues, if any:
        # `!pip install a \` goes on with `    b` on the next line, shell and not Python.
        continued: str | None = None
        for offset, line in enumerate(source):
            if whole_cell_magic or continued is not None or _IPYTHON_LINE.match(line):
                if whole_cell_magic:
                    indent = ""
                else:
                    indent = _indent(line) if continued is None else continued
                continued = indent if line.rstrip().endswith("\\") else None
                replaced.append((first + offset, line))
                line = f"{indent}pass"
            lines.append(line)
        raw = cell.get("source", "")
        trailing = ("".join(raw) if isinstance(raw, list) else str(raw)).endswith("\n")
        spans.append(CellSpan(number, first, len(source), trailing))
    return NotebookProgram(
        "\n".join(lines) + ("\n" if lines else ""), tuple(spans), tuple(replaced)
    )


def with_program(
    document: dict[str, Any], program: NotebookProgram, fixed_text: str, indent: int = 1
) -> str:
    """The notebook JSON with its code cells replaced by `fixed_text` (a fixed version of
    `program.text` with the same number of lines per cell)."""
    fixed = fixed_text.split("\n")
    if fixed and fixed[-1] == "":
        fixed.pop()
    expected = sum(span.line_count for span in program.spans)
    if len(fixed) != expected:
        raise NotebookError("a fix changed the number of lines; notebooks are fixed line for line")
    for line_number, original in program.replaced:
        fixed[line_number - 1] = original
    cells = document["cells"]
    for span in program.spans:
        cell = cells[span.cell - 1]
        new_lines = fixed[span.first_line - 1 : span.first_line - 1 + span.line_count]
        as_list = [line + "\n" for line in new_lines[:-1]] + new_lines[-1:]
        if span.trailing_newline:
            as_list[-1] += "\n"
        cell["source"] = as_list if isinstance(cell.get("source"), list) else "".join(as_list)
    return json.dumps(document, indent=indent, ensure_ascii=False) + "\n"


def indent_of(raw: str) -> int:
    """The JSON indentation the notebook was written with (nbformat writes 1)."""
    lines = raw.split("\n", 2)
    if len(lines) > 1:
        return len(lines[1]) - len(lines[1].lstrip(" ")) or 1
    return 1


def _source_lines(source: Any) -> list[str]:
    text = "".join(source) if isinstance(source, list) else str(source)
    if not text:
        return []
    return text.rstrip("\n").split("\n") if text.endswith("\n") else text.split("\n")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]
