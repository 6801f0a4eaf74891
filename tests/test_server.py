"""`bnlint server` driven over stdio as an editor drives it: initialize, open a bad
buffer, receive diagnostics, ask for a quick fix, apply its edit, send the change,
see the diagnostic go. The JSON-RPC framing (Content-Length headers) is written here,
so the test depends on nothing but the protocol."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

pytest.importorskip("pygls")

pytestmark = pytest.mark.slow

TIMEOUT = 30.0

BAD = '''\
"""Évaluation d'un modèle: the validation loop of a training script."""
import torch


def validate(model, loader):
    résultats = []; model.eval
    with torch.no_grad():
        for images, labels in loader:
            résultats.append(model(images).argmax(1) == labels)
    return torch.cat(résultats).float().mean().item()
'''


class Editor:
    """The client side of one server process."""

    def __init__(self, cwd: Path) -> None:
        # The server command object itself, as `bnlint server` runs it.
        command = "from bnlint.server_command import server_command; server_command()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", command],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            headers: dict[str, str] = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            self.messages.put(json.loads(body.decode("utf-8")))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any] | None) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        response = self.wait(lambda m: m.get("id") == self.next_id and "method" not in m)
        assert "error" not in response, response
        return response["result"]

    def wait(self, matches: Any) -> dict[str, Any]:
        while True:
            try:
                message = self.messages.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no matching message from the server; stderr: {self.stderr()}")
            if matches(message):
                return message

    def diagnostics(self, uri: str, version: int) -> list[dict[str, Any]]:
        message = self.wait(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == uri
                and m["params"].get("version") == version
            )
        )
        return list(message["params"]["diagnostics"])

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read().decode("utf-8", "replace")

    def close(self) -> int:
        if self.process.poll() is None:
            self.request("shutdown", None)
            self.notify("exit", {})
        try:
            return self.process.wait(timeout=TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.fixture
def editor(tmp_path: Path) -> Iterator[Editor]:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'sample'\n")
    client = Editor(tmp_path)
    try:
        yield client
    finally:
        if client.process.poll() is None:
            client.process.kill()


def initialize(editor: Editor, root: Path, document_changes: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = editor.request(
        "initialize",
        {
            "processId": None,
            "rootUri": root.as_uri(),
            "capabilities": {
                "workspace": {"workspaceEdit": {"documentChanges": document_changes}},
                "textDocument": {"publishDiagnostics": {"versionSupport": True}},
            },
        },
    )
    editor.notify("initialized", {})
    return result


def apply_edits(text: str, edits: list[dict[str, Any]]) -> str:
    """Apply LSP TextEdits (UTF-16 positions) to `text`, as an editor does."""
    lines = text.splitlines(keepends=True)

    def offset(position: dict[str, int]) -> int:
        before = sum(len(line) for line in lines[: position["line"]])
        line = lines[position["line"]] if position["line"] < len(lines) else ""
        units = line.encode("utf-16-le")[: 2 * position["character"]]
        return before + len(units.decode("utf-16-le"))

    for edit in sorted(
        edits,
        key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
        reverse=True,
    ):
        start, end = offset(edit["range"]["start"]), offset(edit["range"]["end"])
        text = text[:start] + edit["newText"] + text[end:]
    return text


def test_quick_fix_removes_the_diagnostic(editor: Editor, tmp_path: Path) -> None:
    capabilities = initialize(editor, tmp_path)["capabilities"]
    assert capabilities["codeActionProvider"]
    uri = (tmp_path / "validate.py").as_uri()
    editor.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": BAD}},
    )
    [found] = editor.diagnostics(uri, 1)
    assert found["code"] == "BN007"
    assert found["source"] == "bnlint"
    assert found["severity"] == 1
    assert found["codeDescription"]["href"].endswith("#rules-bn007")
    assert "`model.eval` is not called" in found["message"]
    # Line 6 (0-based 5): `    résultats = []; model.eval`; `é` is one UTF-16 unit,
    # so the code-point column and the UTF-16 column agree here...
    assert found["range"] == {
        "start": {"line": 5, "character": 20},
        "end": {"line": 5, "character": 30},
    }

    actions = editor.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": found["range"],
            "context": {"diagnostics": [found]},
        },
    )
    [action] = actions
    assert action["kind"] == "quickfix"
    assert action["isPreferred"] is True
    [change] = action["edit"]["documentChanges"]
    assert change["textDocument"] == {"uri": uri, "version": 1}
    fixed = apply_edits(BAD, change["edits"])
    assert "    résultats = []; model.eval()\n" in fixed

    editor.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"text": fixed}],
        },
    )
    assert editor.diagnostics(uri, 2) == []
    assert editor.close() == 0


def test_positions_count_utf16_units_beyond_the_bmp(editor: Editor, tmp_path: Path) -> None:
    initialize(editor, tmp_path, document_changes=False)
    uri = (tmp_path / "emoji.py").as_uri()
    text = 'label = "🙂"; model.eval\n'  # 🙂 is one code point, two UTF-16 units
    editor.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    [found] = editor.diagnostics(uri, 1)
    # 13 code points precede `model` (bnlint's column 14); in UTF-16 they are 14 units.
    assert found["range"]["start"] == {"line": 0, "character": 14}
    [action] = editor.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": uri}, "range": found["range"], "context": {"diagnostics": []}},
    )
    # A client without documentChanges gets plain `changes`.
    assert apply_edits(text, action["edit"]["changes"][uri]) == 'label = "🙂"; model.eval()\n'
    assert editor.close() == 0


def test_configuration_is_found_from_the_document_path(editor: Editor, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'sample'\n\n[tool.bnlint]\nignore = ['BN007']\n"
    )
    initialize(editor, tmp_path)
    uri = (tmp_path / "validate.py").as_uri()
    editor.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": BAD}},
    )
    assert editor.diagnostics(uri, 1) == []
    assert editor.close() == 0


def test_without_pygls_the_command_says_which_extra_to_install() -> None:
    # `sys.modules[name] = None` makes the import fail as if pygls were not installed.
    command = (
        "import sys; sys.modules['pygls'] = None; sys.modules['lsprotocol'] = None\n"
        "from bnlint.server_command import server_command; server_command()"
    )
    done = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True)
    assert done.returncode == 2
    assert "pip install 'bnlint[lsp]'" in done.stderr
