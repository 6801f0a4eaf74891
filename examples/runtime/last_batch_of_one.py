"""A dataset of 33 samples in batches of 8 with drop_last=False: the last batch has one
sample and BatchNorm1d crashes on it; bnlint still reports BN003.

    bnlint run examples/runtime/last_batch_of_one.py
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

dataset = TensorDataset(torch.randn(33, 10), torch.randint(0, 2, (33,)))
loader = DataLoader(dataset, batch_size=8, shuffle=True)
model = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
for features, labels in loader:
    loss = nn.functional.cross_entropy(model(features), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print("done")
