"""A tiny CNN for builder tests (model name ``tinynet:make_tiny_net``, this folder on sys.path)."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """Two conv layers and a linear head; input RGB in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def make_tiny_net() -> TinyNet:
    """Factory used through the ``module:factory`` model name."""
    return TinyNet()
