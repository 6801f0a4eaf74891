"""A model factory picked by name at run time: the static index cannot see through it."""

from __future__ import annotations

import importlib

from torch import nn


def small_cnn(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, classes),
    )


def create_model(name: str, **kwargs: int) -> nn.Module:
    return getattr(importlib.import_module(__name__), name)(**kwargs)
