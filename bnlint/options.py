"""Command-line pieces that `bnlint check` and `bnlint run` share: the output formats,
the rule-selection options and how their comma-separated values are read.

Only click is imported here, so both commands stay cheap to load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from bnlint.formats import OUTPUT_FORMATS

Command = TypeVar("Command", bound=Callable[..., Any])


def split_selectors(values: Sequence[str]) -> tuple[str, ...]:
    """`--select A,B --select C` → ("A", "B", "C")."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def select_option(function: Command) -> Command:
    return click.option(
        "--select",
        multiple=True,
        help="Rules to check instead of the defaults (codes, prefixes, names; comma-separated).",
    )(function)


def ignore_option(function: Command) -> Command:
    return click.option("--ignore", multiple=True, help="Rules not to check.")(function)


def format_option(function: Command) -> Command:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(OUTPUT_FORMATS),
        default="text",
        show_default=True,
        help="Report format.",
    )(function)
