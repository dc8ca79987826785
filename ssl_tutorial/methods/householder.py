"""Householder projector: latent directions from an orthogonal, low-rank, equal-spectrum first layer.

Song, Zhang, Sebe & Wang, "Householder Projector for Unsupervised Latent Semantics Discovery",
ICCV 2023. To be taught in notebooks/05_generative/02_latent_directions.ipynb (issue 5: not written
yet, because the claim has not shown up at this scale; see the README).

A generator G(z) = D(A z + b) starts with a linear projection A of the latent code. SeFa (Shen &
Zhou, 2021) finds "semantic" directions in closed form: the right singular vectors of A, i.e. the
eigenvectors of A^T A -- the unit directions n that change the first features most, max ||A n||.
With an unconstrained A these directions come with a spread of singular values, and, the paper
observes, the leading ones tend to lump several factors together (not reproduced at this scale yet:
see the README).

The Householder projector builds A from orthogonal pieces with an **equal spectrum**:

    A = U S V^T,    U = H(u_1) ... H(u_k) [:, :r],   V = H(v_1) ... H(v_k) [:, :r],   S = I_r

    H(v) = I - 2 v v^T / ||v||^2          (a Householder reflection: orthogonal, H H^T = I)

so U and V have orthonormal columns for any vectors u_i, v_i (trained freely by gradient descent),
rank(A) = r, and every direction v_j = V[:, j] moves the first features by the same amount. The
directions are read off V directly (with equal singular values any basis of the row space is an SVD,
so ``torch.linalg.svd`` would pick one at random; V is the one the generator was trained with).
The paper fine-tunes StyleGAN2/3 with this layer; here a small VAE decoder for the shapes world is
trained from scratch with either first layer (``first="householder"`` or ``"linear"``), because a
VAE trains reliably on a CPU in seconds and a GAN does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..nets import ConvNet

FIRST_LAYERS = ("householder", "linear")


def householder_product(vectors: torch.Tensor, n_columns: int | None = None) -> torch.Tensor:
    """The first ``n_columns`` columns of Q = H(v_1) H(v_2) ... H(v_k) for ``vectors`` of shape (k, n).

    Q is orthogonal for any non-zero vectors. Computed by applying the reflections, right to left, to
    the first columns of the identity (k rank-one updates, never the n x n matrix when n_columns < n).
    """
    if vectors.ndim != 2:
        raise ValueError(f"vectors must have shape (k, n), got {tuple(vectors.shape)}")
    k, n = vectors.shape
    n_columns = n if n_columns is None else n_columns
    if not 1 <= n_columns <= n:
        raise ValueError(f"n_columns must lie in 1..{n}, got {n_columns}")
    Q = torch.eye(n, n_columns, dtype=vectors.dtype, device=vectors.device)
    for v in vectors.flip(0):  # Q <- H(v) Q, last reflection first
        v = v / v.norm().clamp_min(1e-12)
        Q = Q - 2 * v[:, None] * (v @ Q)[None, :]
    return Q


class HouseholderLinear(nn.Module):
    """y = U S V^T z + b with U, V Householder products (``rank`` orthonormal columns) and S = I (fixed)."""

    def __init__(self, in_dim: int, out_dim: int, rank: int = 6, n_reflections: int | None = None):
        super().__init__()
        if not 1 <= rank <= min(in_dim, out_dim):
            raise ValueError(f"rank must lie in 1..{min(in_dim, out_dim)}, got {rank}")
        k = n_reflections or rank
        self.u = nn.Parameter(torch.empty(k, out_dim))
        self.v = nn.Parameter(torch.empty(k, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.in_dim, self.out_dim, self.rank = in_dim, out_dim, rank
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # reflection vectors near the coordinate axes: U and V start close to (minus) the first `rank`
        # columns of the identity, so the directions start as latent axes; training rotates them freely
        for p in (self.u, self.v):
            nn.init.normal_(p, std=0.1)
            with torch.no_grad():
                p[:, :len(p)] += torch.eye(len(p), min(len(p), p.shape[1]))
        nn.init.zeros_(self.bias)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """U (out_dim, rank) and V (in_dim, rank), both with orthonormal columns."""
        return householder_product(self.u, self.rank), householder_product(self.v, self.rank)

    @property
    def weight(self) -> torch.Tensor:
        U, V = self.factors()
        return U @ V.T  # S = I

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        U, V = self.factors()
        return (z @ V) @ U.T + self.bias


class Decoder(nn.Module):
    """G(z) = D(A z + b): the first projection A (``first``), reshaped to a 4x4 map, then upsampling convs."""

    def __init__(self, latent_dim: int = 16, size: int = 16, width: int = 32, first: str = "householder",
                 rank: int = 6):
        super().__init__()
        if first not in FIRST_LAYERS:
            raise ValueError(f"unknown first layer {first!r}; choose one of: {', '.join(FIRST_LAYERS)}")
        if size not in (16, 32, 64):
            raise ValueError(f"the decoder draws 16, 32 or 64 pixel images, got size={size}")
        n_first = width * 4 * 4
        self.first = HouseholderLinear(latent_dim, n_first, rank) if first == "householder" else \
            nn.Linear(latent_dim, n_first)
        ups, c = [], width
        for _ in range({16: 2, 32: 3, 64: 4}[size]):
            ups += [nn.Upsample(scale_factor=2), nn.Conv2d(c, max(c // 2, 16), 3, padding=1),
                    nn.BatchNorm2d(max(c // 2, 16)), nn.ReLU(inplace=True)]
            c = max(c // 2, 16)
        self.body = nn.Sequential(nn.ReLU(), *ups, nn.Conv2d(c, 3, 3, padding=1))
        self.width, self.latent_dim = width, latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.first(z).view(len(z), self.width, 4, 4)
        return torch.sigmoid(self.body(h))


class LatentVAE(nn.Module):
    """A VAE (Kingma & Welling 2014) whose decoder starts with the first layer A to analyse.

    loss = E_q ||x - G(z)||^2 / (2 sigma^2)  +  beta * KL(q(z|x) || N(0, I)),   z = mu + sigma_q * eps

    with a fixed pixel noise sigma = ``SIGMA``; the loss is reported per pixel.
    """

    SIGMA = 0.05

    def __init__(self, latent_dim: int = 16, size: int = 16, first: str = "householder", rank: int = 6,
                 width: int = 32, beta: float = 1.0, widths=(32, 64, 64)):
        super().__init__()
        self.encoder = ConvNet(widths)
        self.to_posterior = nn.Linear(widths[-1], 2 * latent_dim)
        self.decoder = Decoder(latent_dim, size, width, first, rank)
        self.latent_dim, self.size, self.rank, self.beta = latent_dim, size, rank, beta
        self.hparams = {"latent_dim": latent_dim, "size": size, "first": first, "rank": rank, "width": width,
                        "beta": beta}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of each image."""
        mu, logvar = self.to_posterior(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-8, 8)

    def loss(self, batch):
        x, _ = batch
        if x.shape[-1] != self.size:
            raise ValueError(f"this VAE draws {self.size}-pixel images, got {x.shape[-1]} pixels")
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.mse_loss(self.decoder(z), x, reduction="none").flatten(1).sum(1).mean() / (2 * self.SIGMA ** 2)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
        n_pixels = x[0].numel()
        return (recon + self.beta * kl) / n_pixels, {"kl": kl.detach()}

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.decoder(z.to(next(self.parameters()).device)).cpu()

    def directions(self, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The top-``k`` latent directions (rows, unit length) and their singular values.

        Householder: the columns of V, all with singular value 1. Linear: SeFa, the right singular
        vectors of the first layer's weight, largest singular value first.
        """
        k = k or self.rank
        first = self.decoder.first
        with torch.no_grad():
            if isinstance(first, HouseholderLinear):
                _, V = first.factors()
                return V.T[:k].cpu(), torch.ones(min(k, V.shape[1]))
            _, S, Vh = torch.linalg.svd(first.weight.detach(), full_matrices=False)
            return Vh[:k].cpu(), S[:k].cpu()


def traverse(model: LatentVAE, z: torch.Tensor, direction: torch.Tensor, alphas) -> torch.Tensor:
    """Images G(z + alpha * direction) for every alpha: shape (len(alphas), N, 3, H, W)."""
    direction = direction / direction.norm()
    return torch.stack([model.generate(z + float(a) * direction) for a in alphas])


# -- measuring what a direction changes ---------------------------------------------------------
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


def direction_effects(model: LatentVAE, regressor: FactorRegressor, directions: torch.Tensor, n: int = 256,
                      alpha: float = 1.5, seed: int = 0, factors=FACTORS):
    """How much each direction changes each factor, in units of the factor's natural variation.

    For n codes z from the prior, compare the factors read off G(z - alpha v) and G(z + alpha v); divide
    the mean change by the mean change between two *independent* samples G(z), G(z'). A value of 1 means
    the direction moves that factor as much as drawing a new image does. Returns a DataFrame
    (directions x factors). Measured: when a VAE's codes do not fill the prior (an unconstrained first
    layer left every posterior sigma near 0.1), its prior samples are poor and every direction seems to
    change everything; starting from posterior means of real images is then the fairer comparison.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=g)
    z2 = torch.randn(n, model.latent_dim, generator=g)
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
