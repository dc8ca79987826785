"""A tiny DDPM, and its U-Net as a feature extractor.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (the model);
Mukhopadhyay et al., "Diffusion Models Beat GANs on Image Classification", 2023 (the features).
To be taught in notebooks/05_generative/02_diffusion_features.ipynb (issue 14: not written yet;
the README's "Not yet" section says what has been measured).

**Forward process.** With a noise schedule beta_1..beta_T and alpha_bar_t = prod_{s<=t} (1 - beta_s),
an image x_0 (scaled to [-1, 1]) is noised in closed form:

    x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,      eps ~ N(0, I)

**Training** (the "simple" loss): a U-Net eps_theta(x_t, t) predicts the noise,

    L = E_{x_0, t, eps} || eps - eps_theta(x_t, t) ||^2,      t ~ Uniform{1..T}

**Sampling** runs the process backwards. ``DDPM.sample`` uses the deterministic DDIM update on a
sub-sequence of the T steps (Song et al. 2021), which needs a few dozen network calls instead of T.

**Features.** To use the denoiser as a representation, noise a clean image to a chosen t, run the
U-Net once, and read the activation of a chosen block b, average-pooled to a small grid:
``DDPM.features(images, t, blocks)``. Both choices matter: at a small t the task is easy and the
network barely needs to understand the image; at a large t the image is gone. The blocks are named
``enc1, enc2, mid, dec2, dec1`` (encoder at full and half resolution, the bottleneck, then the decoder).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = ("enc1", "enc2", "mid", "dec2", "dec1")


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """alpha_bar_t for t = 0..T (index 0 is the clean image, alpha_bar_0 = 1), DDPM's linear betas."""
    if T < 2:
        raise ValueError(f"a diffusion needs at least 2 steps, got T={T}")
    betas = torch.linspace(beta_1, beta_T, T, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)]).float()


def q_sample(x0: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor | None = None):
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, for a batch of timesteps ``t`` (N,)."""
    noise = torch.randn_like(x0) if noise is None else noise
    a = alpha_bar.to(x0.device)[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The Transformer's sinusoidal position code of the timestep (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the timestep added in between, and a skip connection."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class TinyUNet(nn.Module):
    """eps_theta(x_t, t): two resolutions down, a bottleneck, two up, with skip connections.

    ``channels=c`` gives c channels at full resolution, 2c at half and at a quarter. ``forward``
    returns the predicted noise and a dict of every block's activation (named as in ``BLOCKS``).
    """

    def __init__(self, channels: int = 16, in_channels: int = 3):
        super().__init__()
        c, t_dim = channels, 4 * channels
        self.t_dim = t_dim
        self.time_mlp = nn.Sequential(nn.Linear(c, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.stem = nn.Conv2d(in_channels, c, 3, padding=1)
        self.enc1 = ResBlock(c, c, t_dim)
        self.enc2 = ResBlock(c, 2 * c, t_dim)
        self.mid = ResBlock(2 * c, 2 * c, t_dim)
        self.dec2 = ResBlock(4 * c, 2 * c, t_dim)
        self.dec1 = ResBlock(3 * c, c, t_dim)
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))
        self.channels = channels

    def forward(self, x: torch.Tensor, t: torch.Tensor):
        temb = self.time_mlp(timestep_embedding(t, self.channels))
        acts = {}
        acts["enc1"] = e1 = self.enc1(self.stem(x), temb)  # H
        acts["enc2"] = e2 = self.enc2(F.avg_pool2d(e1, 2), temb)  # H/2
        acts["mid"] = m = self.mid(F.avg_pool2d(e2, 2), temb)  # H/4
        up = F.interpolate(m, scale_factor=2, mode="nearest")
        acts["dec2"] = d2 = self.dec2(torch.cat([up, e2], 1), temb)  # H/2
        up = F.interpolate(d2, scale_factor=2, mode="nearest")
        acts["dec1"] = d1 = self.dec1(torch.cat([up, e1], 1), temb)  # H
        return self.out(d1), acts


class DDPM(nn.Module):
    """A denoising diffusion model: ``loss`` trains the U-Net, ``sample`` draws images, ``features`` probes it."""

    def __init__(self, channels: int = 16, T: int = 1000):
        super().__init__()
        self.unet = TinyUNet(channels)
        self.T = T
        self.register_buffer("alpha_bar", linear_schedule(T), persistent=False)
        self.hparams = {"channels": channels, "T": T, "schedule": "linear 1e-4..0.02"}

    @staticmethod
    def _check(images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"expected images of shape (N, 3, H, W) in [0, 1], got {shape}")
        if images.shape[-1] % 4 or images.shape[-2] % 4:
            raise ValueError(f"the U-Net halves the image twice, so height and width must be multiples of 4, "
                             f"got {tuple(images.shape[-2:])}")

    def _timesteps(self, t, n: int, device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device).long()
        if t.ndim == 0:
            t = t.expand(n)
        if int(t.min()) < 0 or int(t.max()) > self.T:
            raise ValueError(f"timesteps must lie in 0..{self.T}, got {int(t.min())}..{int(t.max())}")
        return t

    def loss(self, batch):
        images, _ = batch  # unlabelled
        self._check(images)
        x0 = images * 2 - 1
        t = torch.randint(1, self.T + 1, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        eps_hat, _ = self.unet(q_sample(x0, t, self.alpha_bar, noise), t)
        return F.mse_loss(eps_hat, noise), {}

    def noised(self, images: torch.Tensor, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t of clean ``images`` in [0, 1], returned in [-1, 1] (the U-Net's input); ``generator`` fixes the noise."""
        self._check(images)
        x0 = images * 2 - 1
        noise = torch.randn(x0.shape, generator=generator, device=x0.device) if generator is not None else None
        return q_sample(x0, self._timesteps(t, len(x0), x0.device), self.alpha_bar, noise)

    @torch.no_grad()
    def features(self, images: torch.Tensor, t: int, blocks=BLOCKS, grid: int = 2, seed: int = 0,
                 batch_size: int = 512) -> dict[str, torch.Tensor]:
        """For each block, its activation on x_t (one U-Net call, fixed noise from ``seed``), average-pooled
        to ``grid`` x ``grid`` and flattened: ``{block: (N, C * grid * grid)}`` on the CPU."""
        unknown = [b for b in blocks if b not in BLOCKS]
        if unknown:
            raise ValueError(f"unknown blocks {unknown}; choose from {', '.join(BLOCKS)}")
        self.eval()
        device = self.alpha_bar.device
        g = torch.Generator(device=device).manual_seed(seed)
        out = {b: [] for b in blocks}
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            xt = self.noised(x, t, generator=g)
            _, acts = self.unet(xt, self._timesteps(t, len(x), device))
            for b in blocks:
                out[b].append(F.adaptive_avg_pool2d(acts[b], grid).flatten(1).cpu())
        return {b: torch.cat(v) for b, v in out.items()}

    @torch.no_grad()
    def sample(self, n: int, size: int, steps: int = 50, seed: int = 0) -> torch.Tensor:
        """``n`` images in [0, 1] by deterministic DDIM on ``steps`` evenly spaced timesteps."""
        if steps < 1 or steps > self.T:
            raise ValueError(f"steps must lie in 1..{self.T}, got {steps}")
        self.eval()
        device = self.alpha_bar.device
        g = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn((n, 3, size, size), generator=g, device=device)
        ts = torch.linspace(self.T, 0, steps + 1, device=device).round().long()
        for t, t_next in zip(ts[:-1], ts[1:]):
            a, a_next = self.alpha_bar[t], self.alpha_bar[t_next]
            eps, _ = self.unet(x, t.expand(n))
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)  # the model's guess of the clean image
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        return ((x + 1) / 2).clamp(0, 1)
