"""A file bnlint could not read or parse, so none of its rules ran on it.

## What it does
Reports, once per file, why the file was not analysed: a syntax error (with its
position), bytes that are not valid UTF-8 (or the encoding the file declares), NUL
bytes (a binary file), a file larger than the size limit (for a notebook, the size of
its code cells, not of its outputs), nesting too deep to analyse, or an operating-system
error while reading (permissions, a symlink loop). In a notebook, IPython lines
(`%magic`, `!shell`, and the lines a trailing backslash continues them onto) are not
Python and are not parsed.

## Why is this bad?
A linter that silently skips a file tells you it is clean when nothing was checked.
This finding keeps the skip visible; the run goes on with the other files.

## Example
```python
def broken(:
    pass
```

## Use instead
Fix the syntax error, re-encode the file as UTF-8 (or declare its encoding in a
PEP 263 `# -*- coding: ... -*-` comment), or exclude generated and binary files with
`exclude` / `extend-exclude` in `[tool.bnlint]`.

## Fix safety
No automatic fix. A file with this finding is never modified by `--fix`.
"""

from __future__ import annotations

from bnlint.finding import Severity
from bnlint.rule import Rule


class UnreadableSource(Rule):
    """Emitted by the engine itself; it has no static check of its own."""

    code = "BN000"
    name = "unreadable-source"
    severity = Severity.ERROR
    engines = ("engine",)
