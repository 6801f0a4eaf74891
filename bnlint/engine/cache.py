"""Per-file results keyed by content hash, so a re-run parses only what changed.

One JSON file per kind of result under `<project root>/.bnlint_cache/<version>/`:
findings per effective configuration (`findings-<key>.json`) and the project index's
per-file summaries (`summaries.json`). Entries map a path to the hash of its bytes and
the stored value. The directory ignores itself in git. A cache that cannot be read or
written is ignored: it only ever costs speed, never a finding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bnlint import __version__

CACHE_DIRECTORY = ".bnlint_cache"


class DigestCache:
    def __init__(self, project_root: Path, name: str) -> None:
        self.directory = project_root / CACHE_DIRECTORY / __version__
        self.file = self.directory / f"{name}.json"
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        try:
            loaded = json.loads(self.file.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, ValueError):
            pass

    def get(self, path: str, digest: str) -> Any:
        """The value stored for this path if its content is unchanged, else None."""
        entry = self.entries.get(path)
        if not isinstance(entry, dict) or entry.get("digest") != digest:
            return None
        return entry.get("value")

    def put(self, path: str, digest: str, value: Any) -> None:
        self.entries[path] = {"digest": digest, "value": value}
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        import tempfile

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
