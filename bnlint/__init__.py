"""bnlint: find BatchNorm misuse in PyTorch code."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from bnlint.trace import trace as trace


def __getattr__(name: str) -> Any:
    # `bnlint.trace` is loaded on first use, so `import bnlint` never imports torch.
    # The `bnlint.trace` package is callable (it forwards to `bnlint.trace.trace`), so
    # `bnlint.trace(...)` works whether or not the package was imported before.
    if name == "trace":
        return importlib.import_module("bnlint.trace")
    raise AttributeError(f"module 'bnlint' has no attribute {name!r}")
