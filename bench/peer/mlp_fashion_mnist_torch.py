"""PyTorch peer of examples/cpp/mlp_fashion_mnist.cpp: the same 784-128-ReLU-10 MLP, Adam 1e-3,
batch 128, shuffled Fashion-MNIST, timed per epoch on the same threads. Prints one line per
epoch and the test accuracy, in the C++ example's format, so the two can be compared.
Usage: python3 bench/peer/mlp_fashion_mnist_torch.py [epochs] [threads]
"""
import gzip
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DIR = "/usr/share/datasets/fashion-mnist"


def idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load(split):
    x = idx(f"{DIR}/{split}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    y = idx(f"{DIR}/{split}-labels-idx1-ubyte.gz", 8)
    x = (torch.from_numpy(x.astype(np.float32)) / 255.0 - 0.2860) / 0.3530
    return x, torch.from_numpy(y.astype(np.int64))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def main():
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    torch.manual_seed(0)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr))
        total, batches = 0.0, 0
        for i in range(0, len(xtr), 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        print(f"epoch {epoch + 1}  train loss {total / batches:.4f}  ({time.perf_counter() - t0:.2f} s)")
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(f"test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
