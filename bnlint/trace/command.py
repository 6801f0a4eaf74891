"""The `bnlint run` click command (registered in `bnlint.cli`).

Only click is imported here; the tracer, torch and the reporters load when the
command runs.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bnlint.options import format_option, ignore_option, select_option, split_selectors
from bnlint.trace.ranks import (
    DEFAULT_TIMEOUT,
    STOPPING_TIMEOUT,
    announce,
    collect_rank_reports,
    from_environment,
    sigterm_ignored,
    write_rank_report,
)

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
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the run's picture: a self-contained HTML page with each "
    "BatchNorm's mode, batch size and running-statistics drift, and the findings.",
)
@click.option(
    "--nproc-per-node",
    type=click.IntRange(min=1),
    help="Launch N processes with torchrun (CPU: gloo) and write one merged report.",
)
@click.option(
    "--rank-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Under torchrun: seconds rank 0 waits, after its script ends, for the other "
    "ranks' findings before reporting without them.",
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
    html_file: Path | None,
    nproc_per_node: int | None,
    rank_timeout: float,
    target: str,
    args: tuple[str, ...],
) -> None:
    """Run a Python script (or `-m module`) under the runtime tracer.

    The script gets ARGS as its `sys.argv[1:]`; its output and exit status are kept.
    The report goes to standard error (or --output-file) when the script ends, also
    when it raises, calls `sys.exit` or is interrupted. bnlint's own options come
    before the script: `bnlint run --format json train.py --epochs 3`.

    Under torchrun (`torchrun --nproc-per-node 2 -m bnlint run train.py`, or
    `bnlint run --nproc-per-node 2 train.py`) each rank traces itself and rank 0
    writes one report: each finding names the ranks that saw it, and ranks that sent
    nothing within --rank-timeout are named in it (BN998, a partial report).
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
    if nproc_per_node is not None:
        forwarded = [*(["-m"] if as_module else []), "--format", output_format]
        forwarded += [f"--select={selector}" for selector in select]
        forwarded += [f"--ignore={selector}" for selector in ignore]
        if output_file is not None:
            forwarded += ["--output-file", str(output_file.absolute())]
        if fail_on_findings:
            forwarded.append("--fail-on-findings")
        if html_file is not None:
            forwarded += ["--html", str(html_file.absolute())]
        forwarded += ["--rank-timeout", str(rank_timeout)]
        sys.exit(_launch(nproc_per_node, [*forwarded, target, *args]))
    try:
        # The project's [tool.bnlint] options (transductive-batchnorm, thresholds).
        options = load_settings(Path.cwd()).options
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    ranks = from_environment()
    if ranks is not None:
        announce(ranks)
    result = run(
        target,
        args,
        module=as_module,
        select=selected,
        ignore=ignored,
        options=options,
        timeline=html_file is not None,
    )
    findings = result.findings
    with sigterm_ignored() if ranks is not None else contextlib.nullcontext():
        if ranks is not None and ranks.rank != 0:
            # Rank 0 reports for everyone.
            write_rank_report(ranks, findings, result.exit_code)
        else:
            if ranks is not None:
                from bnlint.merge import merge_ranks

                timeout = rank_timeout
                if result.exit_code == 128 + signal.SIGTERM:
                    # torchrun is stopping the workers: report before its SIGKILL.
                    timeout = min(timeout, STOPPING_TIMEOUT)
                reports, missing = collect_rank_reports(ranks, findings, timeout)
                findings = merge_ranks(reports, ranks.world_size, missing)
            _report(findings, output_format, output_file)
            if html_file is not None and result.timeline is not None:
                # Under torchrun: rank 0's layers, every rank's findings.
                _write_html(html_file, findings, result.timeline)
    exit_code = result.exit_code
    if exit_code == 0 and fail_on_findings and findings:
        exit_code = 1
    sys.exit(exit_code)


def _launch(nproc_per_node: int, bnlint_run_args: list[str]) -> int:
    """`torchrun --standalone --nproc-per-node N -m bnlint run ...`; its exit status."""
    import subprocess

    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc_per_node}",
        "-m",
        "bnlint",
        "run",
        *bnlint_run_args,
    ]
    return subprocess.call(command)


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


def _write_html(path: Path, findings: list[Finding], timeline: dict[str, Any]) -> None:
    from bnlint.registry import run_summary
    from bnlint.report.html import render_html

    summary = run_summary(len({finding.path for finding in findings}), Path.cwd())
    path.write_text(render_html(findings, summary, timeline), encoding="utf-8")
