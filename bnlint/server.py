"""`bnlint server`: a language server over stdio (pygls), for editors.

Diagnostics are published on open, change (debounced) and save, from the buffer's text
through the same engine and configuration as `bnlint check` (the configuration is
found from the document's path, per-file ignores apply, and the project index sees the
other files as they are on disk). Each finding with a fix is offered as a quick fix
that applies the rule's edits; unsafe fixes say so in their title.

Positions: bnlint counts 1-based lines and code points; LSP counts 0-based lines and,
unless the client negotiated another `positionEncoding`, UTF-16 code units. The
conversion reads the line's text, so a line with non-ASCII text before a finding
still points at the right character.

This module imports pygls (the `bnlint[lsp]` extra); `bnlint.server_command` imports
it only when the server starts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from bnlint import __version__
from bnlint.config import ConfigError
from bnlint.engine.buffer import check_buffer, forget_project
from bnlint.engine.source import split_lines
from bnlint.finding import Applicability, Finding, Position, Severity
from bnlint.registry import DOCS_URL

# After a change, wait this long for the next keystroke before linting.
DEBOUNCE_SECONDS = 0.25
PYTHON_SUFFIXES = (".py", ".pyi")

SEVERITIES = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFO: types.DiagnosticSeverity.Information,
}


class BnlintServer(LanguageServer):
    def __init__(self, debounce: float = DEBOUNCE_SECONDS) -> None:
        super().__init__("bnlint", __version__)
        self.debounce = debounce
        # The findings last published per document: (version, text, findings).
        self.published: dict[str, tuple[int | None, str, list[Finding]]] = {}


def create_server(debounce: float = DEBOUNCE_SECONDS) -> BnlintServer:
    server = BnlintServer(debounce)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: BnlintServer, params: types.DidOpenTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: BnlintServer, params: types.DidChangeTextDocumentParams) -> None:
        version = params.text_document.version
        await asyncio.sleep(ls.debounce)
        if ls.workspace.get_text_document(params.text_document.uri).version == version:
            publish(ls, params.text_document.uri)  # else a newer change will publish

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: BnlintServer, params: types.DidSaveTextDocumentParams) -> None:
        forget_project()  # the files on disk changed: rebuild the project index
        publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: BnlintServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.published.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
    )
    def code_action(ls: BnlintServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        only = params.context.only
        quick_fix = types.CodeActionKind.QuickFix.value
        if only is not None and not any(quick_fix.startswith(_kind(kind)) for kind in only):
            return []
        return quick_fixes(ls, params.text_document.uri, params.range)

    return server


def publish(ls: BnlintServer, uri: str) -> None:
    document = ls.workspace.get_text_document(uri)
    text = document.source
    findings = lint_document(ls, document, text)
    ls.published[uri] = (document.version, text, findings)
    lines = split_lines(text)
    encoding = _encoding(ls)
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(
            uri=uri,
            version=document.version,
            diagnostics=[diagnostic(finding, lines, encoding) for finding in findings],
        )
    )


def lint_document(ls: BnlintServer, document: TextDocument, text: str) -> list[Finding]:
    cwd = Path.cwd()
    path = Path(document.path) if document.path else cwd / (document.filename or "untitled.py")
    if document.language_id not in (None, "python") and path.suffix not in PYTHON_SUFFIXES:
        return []
    try:
        return check_buffer(path, text, cwd=cwd)
    except ConfigError as error:
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=f"bnlint: {error}")
        )
        return []


def diagnostic(finding: Finding, lines: list[str], encoding: str) -> types.Diagnostic:
    return types.Diagnostic(
        range=lsp_range(finding.start, finding.end, lines, encoding),
        severity=SEVERITIES[finding.severity],
        code=finding.code,
        code_description=types.CodeDescription(href=f"{DOCS_URL}-{finding.code.lower()}"),
        source="bnlint",
        message=f"{finding.message}\n{finding.suggestion}",
    )


def quick_fixes(ls: BnlintServer, uri: str, wanted: types.Range) -> list[types.CodeAction]:
    document = ls.workspace.get_text_document(uri)
    version, text, findings = ls.published.get(uri, (None, "", []))
    if version != document.version or text != document.source:
        publish(ls, uri)
        version, text, findings = ls.published[uri]
    lines = split_lines(text)
    encoding = _encoding(ls)
    actions: list[types.CodeAction] = []
    for finding in findings:
        if finding.fix is None:
            continue
        found = diagnostic(finding, lines, encoding)
        if not _overlaps(found.range, wanted):
            continue
        edits = [
            types.TextEdit(range=lsp_range(e.start, e.end, lines, encoding), new_text=e.content)
            for e in finding.fix.edits
        ]
        unsafe = finding.fix.applicability is Applicability.UNSAFE
        actions.append(
            types.CodeAction(
                title=f"{finding.fix.message} ({finding.code}{', unsafe' if unsafe else ''})",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[found],
                is_preferred=not unsafe,
                edit=_workspace_edit(ls, uri, version, edits),
            )
        )
    return actions


def _workspace_edit(
    ls: BnlintServer, uri: str, version: int | None, edits: list[types.TextEdit]
) -> types.WorkspaceEdit:
    capabilities = ls.client_capabilities.workspace
    workspace_edit = capabilities.workspace_edit if capabilities else None
    if workspace_edit is not None and workspace_edit.document_changes:
        # Versioned, so the editor refuses the edit if the buffer changed since.
        document = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=document, edits=edits)]
        )
    return types.WorkspaceEdit(changes={uri: edits})


def lsp_range(start: Position, end: Position, lines: list[str], encoding: str) -> types.Range:
    return types.Range(
        start=lsp_position(start, lines, encoding), end=lsp_position(end, lines, encoding)
    )


def lsp_position(position: Position, lines: list[str], encoding: str) -> types.Position:
    """A 1-based line / 1-based code-point column → an LSP position in the client's
    units (UTF-16 code units unless UTF-8 or UTF-32 was negotiated)."""
    line = position.line - 1
    text = lines[line] if 0 <= line < len(lines) else ""
    before = text[: max(position.column - 1, 0)]
    if encoding == types.PositionEncodingKind.Utf8:
        character = len(before.encode("utf-8"))
    elif encoding == types.PositionEncodingKind.Utf32:
        character = len(before)
    else:
        character = len(before.encode("utf-16-le")) // 2
    return types.Position(line=max(line, 0), character=character)


def _encoding(ls: BnlintServer) -> str:
    return _kind(ls.workspace.position_encoding or types.PositionEncodingKind.Utf16)


def _kind(value: str) -> str:
    """The string of an lsprotocol enum member (they are str enums) or of a plain str."""
    return str(getattr(value, "value", value))


def _overlaps(found: types.Range, wanted: types.Range) -> bool:
    def key(position: types.Position) -> tuple[int, int]:
        return (position.line, position.character)

    return key(found.start) <= key(wanted.end) and key(wanted.start) <= key(found.end)


def serve() -> None:
    """Run the server on stdin/stdout until the editor says `exit`."""
    create_server().start_io()


if __name__ == "__main__":  # pragma: no cover
    serve()
