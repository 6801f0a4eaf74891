"""Fine-tuning with a backbone frozen by requires_grad_(False), then model.train():
BN005 (running statistics drift).

    bnlint run examples/runtime/frozen_backbone.py
"""

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).flatten(1))


model = Classifier()
model.backbone.requires_grad_(False)  # "freeze" the pretrained backbone
optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)
model.train()
for step in range(3):
    x, y = torch.randn(4, 3, 12, 12), torch.randint(0, 2, (4,))
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print("running mean after fine-tuning:", model.backbone[1].running_mean[:3].tolist())
