"""What a latent direction of a generator changes: in pixels, and in the shapes world's factors.

Used by notebooks/05_generative/01_latent_directions.ipynb with the VAEs of
``methods/householder.py``; the factor regressor is trained on real images, then reads the factors of
generated ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def image_change(model, z: torch.Tensor, directions: torch.Tensor, alpha: float = 1.5) -> torch.Tensor:
    """How much each direction v changes the generated images, one number per direction:

        change(v) = RMS over codes and pixels of  G(z + alpha v) - G(z - alpha v),   ||v|| = 1

    ``z`` (N, latent_dim) are the codes to start from (e.g. posterior means of real images). A direction
    that the generator ignores scores 0; divide by the largest to compare directions of one generator.
    """
    if directions.ndim != 2 or directions.shape[1] != z.shape[1]:
        raise ValueError(f"directions must have shape (k, {z.shape[1]}), got {tuple(directions.shape)}")
    changes = []
    for v in directions:
        v = v / v.norm()
        changes.append((model.generate(z + alpha * v) - model.generate(z - alpha * v)).pow(2).mean().sqrt())
    return torch.stack(changes)


FACTORS = ("shape", "hue", "scale", "rotation", "x", "y")


def factor_targets(factors) -> torch.Tensor:
    """Regression targets from a shapes-world factor table: shape index, then cos/sin of the hue,
    scale, rotation, x and y (N, 7), the float columns to be standardised by the regressor."""
    hue = np.deg2rad(factors["hue"].to_numpy())
    cols = [factors["shape"].to_numpy(), np.cos(hue), np.sin(hue)] + \
        [factors[c].to_numpy() for c in ("scale", "rotation", "x", "y")]
    return torch.tensor(np.stack(cols, 1), dtype=torch.float32)


class FactorRegressor(nn.Module):
    """A ConvNet trained on real images to read every factor off a picture: the shape class
    (cross-entropy) and the standardised continuous factors (squared error)."""

    def __init__(self, backbone: nn.Module, n_classes: int, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, n_classes + 6)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        self.n_classes = n_classes
        self.hparams = {"n_classes": n_classes}

    def loss(self, batch):
        images, targets = batch
        out = self.head(self.backbone(images))
        logits, reg = out[:, :self.n_classes], out[:, self.n_classes:]
        y = (targets[:, 1:] - self.mean) / self.std
        ce = F.cross_entropy(logits, targets[:, 0].long())
        return ce + F.mse_loss(reg, y), {"acc": (logits.argmax(1) == targets[:, 0].long()).float().mean()}

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """Each factor of each image: shape (class index), hue (degrees), scale, rotation, x, y (CPU)."""
        self.eval()
        device = self.mean.device
        outs = [self.head(self.backbone(images[i:i + batch_size].to(device))).cpu()
                for i in range(0, len(images), batch_size)]
        out = torch.cat(outs)
        reg = out[:, self.n_classes:] * self.std.cpu() + self.mean.cpu()
        return {"shape": out[:, :self.n_classes].argmax(1),
                "hue": torch.rad2deg(torch.atan2(reg[:, 1], reg[:, 0])) % 360,
                "scale": reg[:, 2], "rotation": reg[:, 3], "x": reg[:, 4], "y": reg[:, 5]}


def _difference(name: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if name == "shape":
        return (a != b).float()
    if name == "hue":
        d = (a - b).abs() % 360
        return torch.minimum(d, 360 - d)
    return (a - b).abs()


def direction_effects(model, regressor: FactorRegressor, directions: torch.Tensor, z: torch.Tensor | None = None,
                      n: int = 256, alpha: float = 1.5, seed: int = 0, factors=FACTORS):
    """How much each direction changes each factor, in units of the factor's natural variation.

    For codes z, compare the factors read off G(z - alpha v) and G(z + alpha v); divide the mean change
    by the mean change between two *different* images, G(z) and G(z') with z' the same codes shuffled.
    A value of 1 means the direction moves that factor as much as drawing another image does. Returns a
    DataFrame (directions x factors). ``z`` defaults to ``n`` codes from the prior. Measured: when a
    VAE's codes do not fill the prior, its prior samples are poor and every direction seems to change
    everything; give the posterior means of real images as ``z`` then.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=g) if z is None else z.cpu()
    z2 = z[torch.randperm(len(z), generator=g)]
    base = regressor.read(model.generate(z))
    other = regressor.read(model.generate(z2))
    scale = {f: _difference(f, base[f], other[f]).mean().clamp_min(1e-6) for f in factors}
    rows = []
    for v in directions:
        v = v / v.norm()
        lo = regressor.read(model.generate(z - alpha * v))
        hi = regressor.read(model.generate(z + alpha * v))
        rows.append({f: float(_difference(f, lo[f], hi[f]).mean() / scale[f]) for f in factors})
    return pd.DataFrame(rows, index=[f"d{j + 1}" for j in range(len(directions))])


def single_factor_share(effects):
    """Per direction: the largest factor change divided by the sum of all factor changes (1 = one factor)."""
    return effects.max(axis=1) / effects.sum(axis=1).clip(lower=1e-9)
