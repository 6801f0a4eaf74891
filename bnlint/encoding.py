"""How a Python file says its text is encoded (read by the engine, kept by the fixer)."""

from __future__ import annotations

import re

# PEP 263: the encoding declaration must be on the first or second line.
_CODING_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def declared_encoding(data: bytes) -> str | None:
    """The PEP 263 encoding a file declares on its first two lines, if any."""
    for raw in data.split(b"\n", 2)[:2]:
        match = _CODING_COOKIE.match(raw)
        if match:
            return match.group(1).decode("ascii", "replace")
    return None
