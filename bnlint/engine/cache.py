"""Per-file results keyed by content hash, so a re-run parses only what changed.

One JSON file per (bnlint version, effective configuration) under
`<project root>/.bnlint_cache/`, which ignores itself in git. Entries map a path to
the hash of its bytes and its findings. A cache that cannot be read or written is
ignored: it only ever costs speed, never a finding.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bnlint import __version__
from bnlint.finding import Finding

CACHE_DIRECTORY = ".bnlint_cache"


class ResultCache:
    def __init__(self, project_root: Path, key: str) -> None:
        self.directory = project_root / CACHE_DIRECTORY / __version__
        self.file = self.directory / f"{key}.json"
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        try:
            loaded = json.loads(self.file.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, ValueError):
            pass

    def get(self, path: str, digest: str) -> list[Finding] | None:
        entry = self.entries.get(path)
        if entry is None or entry.get("digest") != digest:
            return None
        try:
            return [Finding.from_json(item) for item in entry["findings"]]
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, path: str, digest: str, findings: list[Finding]) -> None:
        self.entries[path] = {"digest": digest, "findings": [f.to_json() for f in findings]}
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            gitignore = self.directory.parent / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# Created by bnlint\n*\n", encoding="utf-8")
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(self.entries, stream)
            os.replace(temporary, self.file)
        except OSError:
            pass
