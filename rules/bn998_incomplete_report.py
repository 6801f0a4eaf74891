"""A multi-process run's report is missing some processes' findings.

## What it does
Under `torchrun` (or `bnlint run --nproc-per-node N`) every rank traces its own
process and rank 0 merges the ranks' reports into one. A rank that sent no report
within the wait (`--rank-timeout`, default 60 s after rank 0's script ended) is
reported here, naming the ranks; the report holds what the other ranks found.

## Why is this bad?
A rank that hung or was killed before writing its report may have seen misuse that
the report does not show: the report is partial.

## Example
```text
<runtime>:1:1: BN998 [error] partial report: rank 1 of 2 sent no report within 60 s (hung or killed)
```

## Use instead
Find out why the rank did not finish (its own log); raise `--rank-timeout` if it was
only slower than rank 0.

## Fix safety
No automatic fix.
"""

from __future__ import annotations

from bnlint.finding import Severity
from bnlint.rule import Rule


class IncompleteReport(Rule):
    """Emitted by the rank merge of `bnlint run`; it has no check of its own."""

    code = "BN998"
    name = "incomplete-report"
    severity = Severity.ERROR
    engines = ("engine",)
