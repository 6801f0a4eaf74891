"""bnlint: find BatchNorm misuse in PyTorch code."""

__version__ = "0.1.0"
