"""Bytes on disk → text a parser can take, or the reason why not (BN000).

Reading never raises: every problem with a file becomes one `unreadable` finding and
the run goes on with the other files.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bnlint.encoding import declared_encoding
from bnlint.finding import UNREADABLE, Finding, file_problem

if TYPE_CHECKING:
    from bnlint.notebook import NotebookProgram

# Generated files this large are not hand-written model code; parsing one would cost
# libcst tens of seconds (about 7,000 lines/s here).
MAX_FILE_BYTES = 2 * 1024 * 1024
# A notebook's size is mostly its outputs (plots, logs) and attachments: the limit above
# applies to its code cells; the file itself may be this large before it is not read.
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SourceText:
    text: str
    digest: str
    # Notebooks: `text` is the program made of the code cells, and this maps it back.
    notebook: NotebookProgram | None = None


def unreadable(path: str, reason: str, line: int = 1, column: int = 1) -> Finding:
    return file_problem(
        UNREADABLE,
        path,
        f"not analysed: {reason}",
        "fix the file so Python can read it, or exclude it with `extend-exclude` in [tool.bnlint]",
        line,
        column,
    )


def read_file(path: Path, display: str) -> SourceText | Finding:
    try:
        size = path.stat().st_size
        notebook = path.suffix == ".ipynb"
        limit = MAX_NOTEBOOK_BYTES if notebook else MAX_FILE_BYTES
        if size > limit:
            return unreadable(
                display,
                f"the file is {size / 2**20:.1f} MiB, over the {limit // 2**20} MiB limit "
                f"for {'notebooks' if notebook else 'source files (generated code?)'}",
            )
        data = path.read_bytes()
    except OSError as error:
        return unreadable(display, f"cannot read the file: {error.strerror or error}")
    if notebook:
        return decode_notebook(data, display)
    return decode(data, display)


def decode_notebook(data: bytes, display: str) -> SourceText | Finding:
    from bnlint.notebook import NotebookError, load

    raw = decode(data, display)
    if isinstance(raw, Finding):
        return raw
    try:
        _, program = load(raw.text)
    except NotebookError as error:
        return unreadable(display, str(error))
    code_size = len(program.text.encode("utf-8", "surrogatepass"))
    if code_size > MAX_FILE_BYTES:
        return unreadable(
            display,
            f"the notebook's code cells are {code_size / 2**20:.1f} MiB, over the "
            f"{MAX_FILE_BYTES // 2**20} MiB limit for source files (generated code?)",
        )
    return SourceText(program.text, raw.digest, program)


def decode(data: bytes, display: str) -> SourceText | Finding:
    import hashlib

    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    nul = data.find(b"\0")
    if nul != -1:
        line, column = _position_of_byte(data, nul)
        return unreadable(display, "the file contains NUL bytes (binary data?)", line, column)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    encoding = declared_encoding(data) or "utf-8"
    try:
        return SourceText(data.decode(encoding), digest)
    except LookupError:
        return unreadable(display, f"the file declares an unknown encoding {encoding!r}")
    except UnicodeDecodeError as error:
        line, column = _position_of_byte(data, error.start)
        return unreadable(
            display,
            f"byte 0x{data[error.start]:02x} is not valid {encoding} "
            "(save the file as UTF-8 or declare its encoding)",
            line,
            column,
        )


def split_lines(text: str) -> list[str]:
    """Lines as Python and libcst count them (not `str.splitlines`, which also breaks
    on form feeds and Unicode separators)."""
    return _LINE_BREAK.split(text)


def _position_of_byte(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return line, column
