"""The project-wide model index: which classes are BN models, what feeds what in
`forward`, which objects a name refers to. Pure functions over libcst trees.

The static engine builds one `ProjectIndex` per run and hands it to every rule. The
analysis that fills it lands with the rules that need it (BN001-BN005); until then
it knows nothing, and rules that need it must treat "unknown" as "do not report".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProjectIndex:
    root: str

    @classmethod
    def empty(cls, root: str = ".") -> ProjectIndex:
        return cls(root=root)

    def fingerprint(self) -> str:
        """Part of every cache key: findings may depend on other files through the index."""
        return ""
