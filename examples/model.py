"""A small image classifier, written the way many training repos write one."""

import torch
from torch import nn


class ConvBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        # The conv keeps its bias although BatchNorm subtracts the mean right after it.
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        # Ported from Keras: PyTorch's momentum is 1 - Keras' momentum.
        self.bn = nn.BatchNorm2d(out_channels, momentum=0.99)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SmallNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            ConvBlock(3, 32),
            ConvBlock(32, 64, stride=2),
            ConvBlock(64, 128, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(128, num_classes)
        # Normalising the logits squashes them towards zero mean and unit variance.
        self.head_norm = nn.BatchNorm1d(num_classes)

    def forward(self, x):
        return self.head_norm(self.classifier(self.features(x)))


def build_model(num_classes=10):
    return SmallNet(num_classes)


if __name__ == "__main__":
    net = build_model()
    net.eval
    print(net(torch.randn(2, 3, 32, 32)).shape)
