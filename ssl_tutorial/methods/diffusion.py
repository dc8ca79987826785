"""A tiny DDPM, and its U-Net as a feature extractor.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (the model);
Mukhopadhyay et al., "Diffusion Models Beat GANs on Image Classification", 2023 (the features).
Taught in notebooks/05_generative/02_diffusion_features.ipynb (the features) and used by
03_guidance.ipynb (guided sampling). The U-Net is in ``unet.py``.

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
``UNetAutoencoder`` is the baseline of equal budget: the same U-Net trained to reconstruct clean images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet import BLOCKS, TinyUNet


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

    def network_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The timestep the U-Net is told when ``features`` reads it: the true t (an autoencoder overrides this)."""
        return t

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
            _, acts = self.unet(xt, self.network_timestep(self._timesteps(t, len(x), device)))
            for b in blocks:
                out[b].append(F.adaptive_avg_pool2d(acts[b], grid).flatten(1).cpu())
        return {b: torch.cat(v) for b, v in out.items()}

    def sample(self, n: int, size: int, steps: int = 50, seed: int = 0, guide=None) -> torch.Tensor:
        """``n`` images in [0, 1] by deterministic DDIM on ``steps`` evenly spaced timesteps.

        ``guide(x_t, t)``, if given, returns the guidance gradient s * grad_x log p(y | x_t) (same shape as
        ``x_t``; it may run autograd itself). Classifier guidance for DDIM (Dhariwal & Nichol 2021, Alg. 2)
        shifts the predicted noise against it: eps <- eps - sqrt(1 - alpha_bar_t) * guide(x_t, t).
        """
        if steps < 1 or steps > self.T:
            raise ValueError(f"steps must lie in 1..{self.T}, got {steps}")
        self.eval()
        device = self.alpha_bar.device
        g = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn((n, 3, size, size), generator=g, device=device)
        ts = torch.linspace(self.T, 0, steps + 1, device=device).round().long()
        for t, t_next in zip(ts[:-1], ts[1:]):
            a, a_next = self.alpha_bar[t], self.alpha_bar[t_next]
            with torch.no_grad():
                eps, _ = self.unet(x, t.expand(n))
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)  # the model's guess of the clean image,
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()  # kept in range, and the noise that goes with it
            if guide is not None:  # shift the noise, and the guess with it (not clamped: that would undo the shift)
                shift = guide(x, t.expand(n)).detach()
                eps, x0 = eps - (1 - a).sqrt() * shift, x0 + (1 - a) / a.sqrt() * shift
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        return ((x + 1) / 2).clamp(0, 1)

    def denoised(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_0 estimate from x_t in [-1, 1]: (x_t - sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_bar_t).

        Differentiable (no ``no_grad``), so a guide can take the gradient of a classifier on it (EluCD)."""
        a = self.alpha_bar.to(x_t.device)[t].view(-1, 1, 1, 1)
        eps, _ = self.unet(x_t, t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


class UNetAutoencoder(DDPM):
    """The baseline of equal budget: the same U-Net trained to reconstruct clean images, t = 0 only,

        L = E_{x_0} || x_0 - f_theta(x_0, 0) ||^2 ,

    so it never sees noise. ``features`` still noises its input to t (the same x_t as the DDPM's), and tells
    the network t = 0, the only timestep it was trained on."""

    def loss(self, batch):
        images, _ = batch
        self._check(images)
        x0 = images * 2 - 1
        out, _ = self.unet(x0, torch.zeros(len(x0), dtype=torch.long, device=x0.device))
        return F.mse_loss(out, x0), {}

    def network_timestep(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)

    def sample(self, *args, **kwargs):
        raise TypeError("an autoencoder trained at t = 0 cannot denoise, so it cannot sample; use a DDPM")
