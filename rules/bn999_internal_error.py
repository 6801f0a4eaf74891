"""A rule failed on this file: a bug in bnlint, not in your code.

## What it does
Reports that one rule raised an exception while analysing one file, naming the rule
and the exception. The other rules' findings for the file, and the other files, are
still reported, and the run exits with status 2. A file that takes longer than the
`file-time-budget` setting (default 20 CPU seconds) is skipped with this finding too, so
that one file cannot stall a whole run.

## Why is this bad?
The failing rule said nothing about this file, so a misuse it should have found may
be hidden. Please report it with the file (or a reduced sample) and the message.

## Example
```text
model.py:1:1: BN999 [error] rule BN004 (bias-before-batchnorm) failed: KeyError: 'x'
huge.py:1:1: BN999 [error] bnlint spent more than 20 s of CPU time on this file and skipped it
```

## Use instead
Upgrade bnlint, or ignore the rule for that file with `per-file-ignores` until it is
fixed.

## Fix safety
No automatic fix.
"""

from __future__ import annotations

from bnlint.finding import Severity
from bnlint.rule import Rule


class InternalError(Rule):
    """Emitted by the engine itself; it has no static check of its own."""

    code = "BN999"
    name = "internal-error"
    severity = Severity.ERROR
    engines = ("engine",)
