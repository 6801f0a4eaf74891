"""Write fixed text back exactly as the file was stored, or not at all.

The new content goes to a temporary file in the same directory (same filesystem),
with the original's permission bits, encoding, byte-order mark and line endings (the
text keeps its own: edits are made on the decoded text, which libcst never
normalises), then replaces the original in one `os.replace`. A failure at any point
leaves the original untouched and removes the temporary file.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import tempfile
from pathlib import Path

from bnlint.encoding import declared_encoding


def encode_like(text: str, original: bytes) -> bytes:
    """`text` encoded the way `original` was: its PEP 263 encoding and its BOM."""
    bom = original.startswith(codecs.BOM_UTF8)
    body = original[len(codecs.BOM_UTF8) :] if bom else original
    data = text.encode(declared_encoding(body) or "utf-8")
    return codecs.BOM_UTF8 + data if bom else data


def write_atomically(path: Path, data: bytes) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".bnlint")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
