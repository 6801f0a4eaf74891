"""Small real PyTorch models and training loops the tracer tests run (no tests here)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Block(nn.Module):
    """A ResNet-style basic block: conv-bn-relu-conv-bn plus identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class ConvNet(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = self.layer1(x).mean(dim=(2, 3))
        return self.fc(self.dropout(x))


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3)
    )


def frozen_bn_convnet() -> nn.Module:
    """A backbone whose BN affine parameters are frozen and kept in eval."""
    model = ConvNet()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.requires_grad_(False)
    model.stem.requires_grad_(False)
    return model


def conv_batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3, 8, 8), torch.randint(0, 5, (n,))


def mlp_batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 6), torch.randint(0, 3, (n,))


def train_steps(
    model: nn.Module,
    batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    steps: int = 2,
    freeze_bn: bool = False,
) -> list[torch.Tensor]:
    """Train a few SGD steps, then evaluate once; returns every output."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    outputs = []
    for _ in range(steps):
        model.train()
        if freeze_bn:
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        x, y = batch()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        outputs.append(logits.detach())
    model.eval()
    with torch.no_grad():
        outputs.append(model(batch()[0]))
    return outputs
