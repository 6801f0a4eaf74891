"""The `bnlint` command: parse options, call the engine or the tracer, hand findings
to a reporter. Exit codes: 0 nothing found, 1 findings, 2 usage, configuration or
internal error.

Importing this module must stay cheap (it runs on every save in an editor): no
libcst, no torch; those load only when a file needs parsing or a script is traced.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import click

from bnlint import __version__
from bnlint.options import format_option, ignore_option, select_option, split_selectors
from bnlint.registry import run_summary

if TYPE_CHECKING:
    from bnlint.finding import Finding, RunSummary

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
# Allocations between young-generation collections during a check (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def _fail(message: str) -> None:
    click.echo(f"bnlint: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


class _Commands(click.Group):
    """Imports `run` (the tracer) and `server` (the language server) only when they are
    asked for, so `bnlint check` on save does not pay for their modules."""

    _lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "run": ("bnlint.trace.command", "run_command"),
        "server": ("bnlint.server_command", "server_command"),
    }

    def invoke(self, ctx: click.Context) -> object:
        # An interrupted run is neither "findings" (1) nor an error (2): 130, as shells
        # report a command ended by SIGINT, so CI and pre-commit can tell them apart.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("bnlint: interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            import importlib

            module, attribute = self._lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="bnlint")
def main() -> None:
    """Find BatchNorm misuse in PyTorch code."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@select_option
@click.option(
    "--extend-select", multiple=True, help="Rules to check in addition to the selected ones."
)
@ignore_option
@format_option
@click.option(
    "--output-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to this file instead of stdout.",
)
@click.option(
    "--exit-zero",
    is_flag=True,
    help="Exit 0 even when there are findings (2 still means an error).",
)
@click.option(
    "--stdin-filename",
    help="Path to report for source read from stdin (`-`); config and per-file ignores use it.",
)
@click.option("--statistics", is_flag=True, help="Print a count per rule.")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option(
    "--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file (default: nearest pyproject.toml with [tool.bnlint]).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write .bnlint_cache/.")
@click.option(
    "--fix", is_flag=True, help="Apply safe fixes to the files (stdin: print the fixed source)."
)
@click.option("--unsafe-fixes", is_flag=True, help="With --fix or --diff, apply unsafe fixes too.")
@click.option(
    "--diff", is_flag=True, help="Print a diff of what --fix would change; write nothing."
)
@click.option(
    "--force-exclude",
    is_flag=True,
    help="Apply exclude patterns even to files named on the command line (pre-commit).",
)
@click.option(
    "--runtime-report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Merge a `bnlint run --format json` report: one list; a static and a runtime "
    "finding of the same code on the same line become one, confirmed at runtime.",
)
def check(
    paths: tuple[Path, ...],
    select: tuple[str, ...],
    extend_select: tuple[str, ...],
    ignore: tuple[str, ...],
    output_format: str,
    output_file: Path | None,
    exit_zero: bool,
    stdin_filename: str | None,
    statistics: bool,
    quiet: bool,
    color: str,
    config_path: Path | None,
    no_cache: bool,
    fix: bool,
    unsafe_fixes: bool,
    diff: bool,
    force_exclude: bool,
    runtime_report: Path | None,
) -> None:
    """Check PATHS (files or directories; default `.`; `-` reads stdin)."""
    from bnlint.config import ConfigError, Selection, load_settings
    from bnlint.registry import UnknownSelectorError

    cwd = Path.cwd()
    read_stdin = Path("-") in paths or (not paths and stdin_filename is not None)
    files = [p for p in paths if p != Path("-")] or ([] if read_stdin else [Path(".")])
    for path in files:
        if not os.path.lexists(path):
            _fail(f"{path}: no such file or directory")
    if read_stdin and files:
        _fail("`-` (stdin) cannot be combined with other paths")
    start = Path(stdin_filename) if read_stdin and stdin_filename else (files[0] if files else cwd)
    try:
        settings = load_settings(start if start.exists() else cwd, config_path)
        cli_selection = Selection(
            select=split_selectors(select) or None,
            extend_select=split_selectors(extend_select),
            ignore=split_selectors(ignore),
        )
        enabled = settings.enabled_codes(cli_selection)
    except (ConfigError, UnknownSelectorError) as error:
        _fail(str(error))
        return
    runtime_findings = None
    if runtime_report is not None:
        from bnlint.merge import RuntimeReportError, read_runtime_report

        try:
            runtime_findings = read_runtime_report(runtime_report)
        except RuntimeReportError as error:
            _fail(str(error))
            return

    from bnlint.engine.run import FixMode, check_paths, check_stdin

    # A cold check allocates millions of short-lived objects (ast nodes, summary
    # dicts). At Python's default young-generation threshold (700) the collector ran
    # so often that it took about a tenth of the CPU of a check of the wheel trees
    # (bench/RESULTS.md); it still runs, less often, in this process and the workers
    # it forks (peak memory unchanged on those trees).
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    fix_mode = FixMode(unsafe=unsafe_fixes, write=not diff) if fix or diff else None
    if force_exclude:
        settings = dataclasses.replace(settings, force_exclude=True)
    stdin_data = sys.stdin.buffer.read() if read_stdin else b""
    try:
        if read_stdin:
            result = check_stdin(
                stdin_data, stdin_filename or "-", settings, enabled, cwd, fix_mode
            )
        else:
            result = check_paths(
                files, settings, enabled, cwd=cwd, use_cache=not no_cache, fix=fix_mode
            )
    except Exception as error:  # the engine's own bug: say so and exit 2
        _fail(f"internal error: {type(error).__name__}: {error}")
        return

    if diff:
        # Like ruff: the diff on stdout, a count on stderr; exit 1 when there is one.
        click.echo("".join(result.diffs), nl=False)
        click.echo(f"Would fix {result.fixed} finding(s) in {len(result.diffs)} file(s).", err=True)
        sys.exit(EXIT_ERROR if result.internal_error else int(bool(result.diffs)))
    fix_stdin = read_stdin and fix
    if fix_stdin:
        # Editors replace the buffer with stdout; the report goes to stderr.
        if result.fixed_text is not None:
            sys.stdout.write(result.fixed_text)
        else:
            sys.stdout.buffer.write(stdin_data)
        sys.stdout.flush()
    summary = run_summary(
        result.files_checked, cwd, fixed=result.fixed, documentation=output_format == "sarif"
    )
    findings = result.findings
    if runtime_findings is not None:
        from bnlint.merge import merge_runtime

        findings = merge_runtime(findings, runtime_findings, enabled)
    _emit(findings, summary, output_format, output_file, color, quiet, statistics, fix_stdin)
    if result.internal_error:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if findings and not exit_zero else EXIT_CLEAN)


def _emit(
    findings: Sequence[Finding],
    summary: RunSummary,
    output_format: str,
    output_file: Path | None,
    color: str,
    quiet: bool,
    statistics: bool,
    to_stderr: bool = False,
) -> None:
    from bnlint.report import render

    stream = sys.stderr if to_stderr else sys.stdout
    use_color = color == "always" or (
        color == "auto"
        and output_file is None
        and output_format == "text"
        and "NO_COLOR" not in os.environ
        and stream.isatty()
    )
    text = render(
        output_format, findings, summary, color=use_color, quiet=quiet, statistics=statistics
    )
    if output_file is not None:
        try:
            output_file.write_text(text, encoding="utf-8")
        except OSError as error:
            _fail(f"cannot write {output_file}: {error.strerror or error}")
    else:
        click.echo(text, nl=False, color=use_color, err=to_stderr)


@main.command("rule")
@click.argument("code_or_name")
def rule_command(code_or_name: str) -> None:
    """Print the documentation of one rule (a code such as BN007, or its name)."""
    from bnlint.registry import rule_for

    rule = rule_for(code_or_name)
    if rule is None:
        _fail(f"no rule is called {code_or_name!r} (run `bnlint rules` to list them)")
        return
    fix = {
        "safe": "Safe autofix (`--fix`).",
        "unsafe": "Unsafe autofix (`--fix --unsafe-fixes`).",
        "none": "No automatic fix.",
    }
    click.echo(f"# {rule.name} ({rule.code})\n")
    click.echo(
        f"Severity: {rule.severity.value}. "
        f"{'On' if rule.default_enabled else 'Off'} by default. "
        f"{fix[rule.autofix]} Engines: {', '.join(rule.engines)}.\n"
    )
    click.echo(rule.documentation())


@main.command("rules")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (as in the README).")
def rules_command(markdown: bool) -> None:
    """List every rule with its default."""
    from bnlint.docs import rule_table_markdown, rule_table_text

    click.echo(rule_table_markdown() if markdown else rule_table_text())


if __name__ == "__main__":  # pragma: no cover
    main()
