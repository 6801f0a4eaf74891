"""The `bnlint server` command. Only click is imported here: pygls (the `bnlint[lsp]`
extra) loads when the server starts, so the plain install's CLI does not need it."""

from __future__ import annotations

import sys

import click

LSP_PACKAGES = frozenset({"pygls", "lsprotocol"})


@click.command("server")
def server_command() -> None:
    """Run the language server on stdin/stdout (needs `pip install 'bnlint[lsp]'`)."""
    try:
        from bnlint.server import serve
    except ImportError as error:
        if (error.name or "").split(".")[0] not in LSP_PACKAGES:
            raise
        click.echo(
            "bnlint: error: the language server needs pygls: pip install 'bnlint[lsp]'",
            err=True,
        )
        sys.exit(2)
    serve()
