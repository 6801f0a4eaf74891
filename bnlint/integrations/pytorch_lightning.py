"""`BNLintCallback` for code that imports `pytorch_lightning` (see
`bnlint.integrations.lightning`: the same callback, built on `pytorch_lightning.Callback`)."""

from __future__ import annotations

from bnlint.integrations.lightning import callback_class

__all__ = ["BNLintCallback"]

BNLintCallback = callback_class("pytorch_lightning")
