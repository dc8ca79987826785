"""RotNet: "Unsupervised Representation Learning by Predicting Image Rotations".

Gidaris, Singh & Komodakis, ICLR 2018. Taught in notebooks/01_foundations/01_rotnet.ipynb.

A ConvNet F(.) sees the four rotations g(X | y), y in {0, 90, 180, 270} degrees, of every image
and must say which one it got:

    loss(X) = -(1/K) sum_{y=1..K} log F^y( g(X | y) ),    K = 4

To solve it, the network has to find where "up" is -- which needs the objects' shape, pose and
lighting, not just texture. The label is free; no human annotation is used. As in the official
code, all four rotations of each image go into the same batch, and rotations by multiples of
90 degrees are exact (``torch.rot90``, no interpolation). The useful representation is an
*intermediate* block: the last one specialises in the pretext task (see the layer-wise probe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..views import all_rotations


class RotNet(nn.Module):
    """A backbone and a linear head that predicts one of ``num_rotations = 4`` rotations."""

    num_rotations = 4

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, self.num_rotations)
        self.hparams = {"num_rotations": self.num_rotations}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotation logits for a batch of images."""
        return self.head(self.backbone(x))

    def loss(self, batch):
        images, _ = batch  # the class labels are never used
        views, rotation = all_rotations(images)  # (4B, 3, H, W) and labels 0..3
        logits = self(views)
        loss = F.cross_entropy(logits, rotation)
        return loss, {"rotation_acc": (logits.argmax(1) == rotation).float().mean()}

    @torch.no_grad()
    def rotation_hits(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """For each image, the fraction of its 4 rotations whose rotation is predicted right (CPU, shape (N,))."""
        self.eval()
        device = next(self.parameters()).device
        out = []
        for i in range(0, len(images), batch_size):
            views, rotation = all_rotations(images[i:i + batch_size].to(device))
            hit = (self(views).argmax(1) == rotation).float()
            out.append(hit.view(self.num_rotations, -1).mean(0).cpu())
        return torch.cat(out)

    def rotation_accuracy(self, images: torch.Tensor) -> float:
        """How often the pretext task is solved on held-out images (0-1)."""
        return self.rotation_hits(images).mean().item()
