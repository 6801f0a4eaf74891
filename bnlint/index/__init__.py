"""The project-wide model index: which classes are BN models, what feeds what in
`forward`, which objects a name refers to, and which `.eval()`/`.train()` reach a call.

Per-file summaries (`summarize_file`) are built with stdlib `ast`, are JSON and depend
only on the file's text, so the engine caches them by content hash; `ProjectIndex`
combines them. Rules treat "unknown" as "do not report".
"""

from __future__ import annotations

from bnlint.index.project import ProjectIndex, combine, covers, mode_before, module_name, related
from bnlint.index.summary import FileSummary, summarize_file

__all__ = [
    "FileSummary",
    "ProjectIndex",
    "combine",
    "covers",
    "mode_before",
    "module_name",
    "related",
    "summarize_file",
]
