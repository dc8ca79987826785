"""Plain supervised learning: the reference every self-supervised method is compared with.

Taught in notebooks/00_start/01_shapes_world.ipynb and used as the baseline of
notebooks/01_foundations/02_sla.ipynb.

    loss(x, y) = -log softmax(W f(a(x)))_y

with ``a`` an optional augmentation. ``rotate=True`` adds random 90-degree rotations as data
augmentation: it asks the network to be *invariant* to rotation, which hurts when orientation
carries information (the point SLA makes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..views import rotate


class Supervised(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, augment=None, rotate: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, num_classes)
        self.augment = augment
        self.rotate = rotate
        self.hparams = {"num_classes": num_classes, "augment": repr(augment), "rotate": rotate}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def loss(self, batch):
        images, labels = batch
        if self.augment is not None:
            images = self.augment(images)
        if self.rotate:
            images = rotate(images, torch.randint(0, 4, (len(images),)))
        logits = self(images)
        return F.cross_entropy(logits, labels), {"acc": (logits.argmax(1) == labels).float().mean()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self(images.to(next(self.parameters()).device)).argmax(1).cpu()
