"""The `bnlint run` click command (registered in `bnlint.cli`).

Only click is imported here; the tracer, torch and the reporters load when the
command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bnlint.options import format_option, ignore_option, select_option, split_selectors

if TYPE_CHECKING:
    from bnlint.finding import Finding


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("-m", "as_module", is_flag=True, help="Run a module (like `python -m`).")
@select_option
@ignore_option
@format_option
@click.option(
    "--output-file",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard error.",
)
@click.option(
    "--fail-on-findings",
    is_flag=True,
    help="Exit with 1 when there are findings and the script itself succeeded.",
)
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(
    as_module: bool,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    output_format: str,
    output_file: Path | None,
    fail_on_findings: bool,
    target: str,
    args: tuple[str, ...],
) -> None:
    """Run a Python script (or `-m module`) under the runtime tracer.

    The script gets ARGS as its `sys.argv[1:]`; its output and exit status are kept.
    The report goes to standard error (or --output-file) when the script ends, also
    when it raises, calls `sys.exit` or is interrupted. bnlint's own options come
    before the script: `bnlint run --format json train.py --epochs 3`.
    """
    from bnlint.config import ConfigError, load_settings
    from bnlint.registry import UnknownSelectorError, resolve_selector
    from bnlint.trace.run import run

    selected = split_selectors(select) or None
    ignored = split_selectors(ignore)
    try:
        for selector in (*(selected or ()), *ignored):
            resolve_selector(selector)
    except UnknownSelectorError as error:
        raise click.UsageError(str(error)) from None
    if not as_module and not Path(target).is_file():
        raise click.UsageError(f"no such script: {target}")
    try:
        # The project's [tool.bnlint] options (transductive-batchnorm, thresholds).
        options = load_settings(Path.cwd()).options
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    result = run(target, args, module=as_module, select=selected, ignore=ignored, options=options)
    _report(result.findings, output_format, output_file)
    exit_code = result.exit_code
    if exit_code == 0 and fail_on_findings and result.findings:
        exit_code = 1
    sys.exit(exit_code)


def _report(findings: list[Finding], output_format: str, output_file: Path | None) -> None:
    from bnlint.registry import run_summary
    from bnlint.report import render

    summary = run_summary(len({finding.path for finding in findings}), Path.cwd())
    color = output_file is None and output_format == "text" and sys.stderr.isatty()
    text = render(output_format, findings, summary, color=color)
    if output_file is not None:
        output_file.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False, err=True, color=color)
