"""Train SmallNet on CIFAR-10-shaped random data and validate after every epoch."""

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from model import SmallNet


def random_dataset(n):
    return TensorDataset(torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,)))


def evaluate(model, loader):
    # The model is still in training mode here: BatchNorm normalises with each
    # validation batch's own statistics and overwrites its running statistics.
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += labels.numel()
    return correct / total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=1)  # "to fit on my laptop"
    args = parser.parse_args()

    model = SmallNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    train_loader = DataLoader(random_dataset(512), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(random_dataset(256), batch_size=64)

    for epoch in range(args.epochs):
        model.train
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: val accuracy {evaluate(model, val_loader):.3f}")

    torch.save(model.parameters(), "smallnet.pt")


if __name__ == "__main__":
    main()
