"""The tiny U-Net of the DDPM in ``diffusion.py``: eps_theta(x_t, t), and every block's activation.

Ronneberger et al., "U-Net", 2015, with the timestep conditioning of Ho et al., DDPM, 2020: a sinusoidal
code of t, through an MLP, added inside every residual block. Used by notebooks/05_generative/02_diffusion_features.ipynb
(where each block is probed) and 03_guidance.ipynb.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = ("enc1", "enc2", "mid", "dec2", "dec1")


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
