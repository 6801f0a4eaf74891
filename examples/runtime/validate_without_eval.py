"""Validation under no_grad without model.eval(): BN002 at run time.

    bnlint run examples/runtime/validate_without_eval.py
"""

import torch
from factory import create_model
from torch import nn

model = create_model("small_cnn", classes=4)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    model.train()
    for _ in range(3):
        images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,))
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # forgot model.eval()
        val = model(torch.randn(8, 3, 16, 16)).argmax(1)
    print(f"epoch {epoch}: predicted classes {val.tolist()}")
