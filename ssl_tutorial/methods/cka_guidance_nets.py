"""The networks of the untrainable-network notebook: the target MLP and two frozen guides.

Guidance itself (linear CKA and the guided loss) is in ``cka_guidance.py``. Taught in
notebooks/10_theory/03_untrainable.ipynb.

Every network here is a stack of ``blocks`` whose outputs are its "layers" for a target-to-guide mapping:
``hidden(x)`` returns them all, ``forward_all(x)`` returns them with the head's logits, from one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerStack(nn.Module):
    """``blocks`` run in order, then an optional ``head`` on the last output; ``loss`` is cross entropy, so ``fit``
    can train a guide. Subclasses set ``blocks`` (and ``head``, if any) and may override ``prepare`` (the input's
    reshaping)."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits, the output of every block), from one forward pass."""
        x = self.prepare(x)
        hidden = []
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        head = getattr(self, "head", None)
        return (x if head is None else head(x)), hidden

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_all(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]

    def loss(self, batch):
        images, labels = batch
        logits = self(images)
        return F.cross_entropy(logits, labels), {"acc": (logits.argmax(1) == labels).float().mean()}


class DeepMLP(LayerStack):
    """The "untrainable" target: flatten, ``depth`` Linear-ReLU layers of ``width`` (optionally with batch norm), then
    a linear head. Its layers are the post-activation outputs. On few images it memorises its training set (it
    overfits); deep enough without batch norm, under PyTorch's default initialisation (which ``fit(init=True)``
    restores), the signal shrinks layer after layer and gradient descent barely moves it."""

    def __init__(self, in_dim: int, num_classes: int, depth: int = 8, width: int = 128, batch_norm: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"DeepMLP needs depth >= 1, got {depth}")
        dims = (in_dim, *[width] * depth)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), *([nn.BatchNorm1d(b)] if batch_norm else []), nn.ReLU())
            for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(width, num_classes)
        self.in_dim = in_dim

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.in_dim:
            raise ValueError(f"DeepMLP expects inputs of {self.in_dim} values per image, got {x.shape[1]}")
        return x


class GlobalPool(nn.Module):
    """Global max (or mean) pooling of a feature map (N, C, H, W) -> (N, C)."""

    def __init__(self, mode: str = "max"):
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"pooling must be 'max' or 'mean', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3)) if self.mode == "max" else x.mean(dim=(2, 3))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"  # in repr(guide), hence in Guided's cache key: max and mean never share a file


class PooledConvGuide(LayerStack):
    """A guide whose architecture alone is translation invariant: two 3x3 convolutions (ReLU, a 2x2 max-pool
    between them) and a global max pool. Its three layers are the two feature maps and the pooled vector. Random,
    its pooled features already sort translated patterns; trained (``fit``, cross entropy on a linear head), it is
    the "trained guide"."""

    def __init__(self, num_classes: int, width: int = 64, in_channels: int = 3, pool: str = "max"):
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()),
            GlobalPool(pool)])
        self.head = nn.Linear(width, num_classes)


class RandomMLPGuide(LayerStack):
    """The control guide: an MLP with no convolutional prior and the same three layers (no head: it is never
    trained, only its layers are read)."""

    def __init__(self, in_dim: int, width: int = 64, hidden_width: int = 512):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Flatten(), nn.Linear(in_dim, hidden_width), nn.ReLU()),
                                     nn.Sequential(nn.Linear(hidden_width, width), nn.ReLU()), nn.Identity()])
