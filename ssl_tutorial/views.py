"""Batched, on-device view generation: every image of a batch gets its own random parameters.

Taught in notebooks/00_start/01_shapes_world.ipynb; used by every method that compares views.

torchvision's ``transforms.v2`` apply *one* set of random parameters to a whole batch tensor,
which is wrong for self-supervised views (each image needs its own crop and jitter). So the
geometric part here is one ``affine_grid`` + ``grid_sample`` call for the whole batch, and the
photometric part is per-image factors broadcast over the batch: no per-image Python loop.
Random parameters are drawn on the CPU (from torch's global generator, which ``fit`` seeds) and
moved to the images' device, so the same seed gives the same views on every device.
``benchmarks/views.py`` compares the throughput with a per-image PIL pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _rand(n: int, device, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return (torch.rand(n) * (high - low) + low).to(device)


def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"views expect a batch of RGB images (N, 3, H, W), got {shape}")


def random_resized_crop(x: torch.Tensor, size: int | None = None, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                        flip: float = 0.5) -> torch.Tensor:
    """Crop a random area fraction ``scale`` with aspect ``ratio`` of each image, resize to ``size``,
    and mirror it left-right with probability ``flip`` -- one batched resampling."""
    _check(x)
    n, size = x.shape[0], size or x.shape[-1]
    area = _rand(n, "cpu", *scale)
    log_r = _rand(n, "cpu", math.log(ratio[0]), math.log(ratio[1]))
    w = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)  # fractions of the full width / height
    h = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
    cx = (torch.rand(n) * 2 - 1) * (1 - w)  # centre, in [-1, 1] grid units
    cy = (torch.rand(n) * 2 - 1) * (1 - h)
    sign = torch.where(torch.rand(n) < flip, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), (n, 3, size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601), kept as 3 channels."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def color_jitter(x: torch.Tensor, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8) -> torch.Tensor:
    """SimCLR's colour distortion with per-image factors, applied with probability ``p`` per image.

    Hue is a rotation of the chroma plane in YIQ space by up to ``hue`` of a full turn (a batched
    stand-in for the HSV round-trip; the order of the four changes is fixed).
    """
    _check(x)
    n, dev = x.shape[0], x.device
    on = (_rand(n, dev) < p).view(n, 1, 1, 1)
    b = _rand(n, dev, 1 - brightness, 1 + brightness).view(n, 1, 1, 1)
    c = _rand(n, dev, 1 - contrast, 1 + contrast).view(n, 1, 1, 1)
    s = _rand(n, dev, 1 - saturation, 1 + saturation).view(n, 1, 1, 1)
    angle = _rand(n, dev, -hue, hue) * 2 * math.pi
    y = x * b
    mean = grayscale(y).mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * c + mean
    gray = grayscale(y)
    y = gray + (y - gray) * s
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=dev)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, y)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    y = torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)
    return torch.where(on, y, x)


def random_grayscale(x: torch.Tensor, p: float = 0.2) -> torch.Tensor:
    on = (_rand(x.shape[0], x.device) < p).view(-1, 1, 1, 1)
    return torch.where(on, grayscale(x), x)


def gaussian_blur(x: torch.Tensor, sigma=(0.1, 2.0), p: float = 0.5, kernel_frac: float = 0.1) -> torch.Tensor:
    """Blur each image with its own sigma (as a fraction of 10% of the side, like SimCLR), with
    probability ``p``: one grouped, separable convolution for the whole batch."""
    _check(x)
    n, _, hgt, wid = x.shape
    k = max(3, int(kernel_frac * hgt) // 2 * 2 + 1)
    sig = _rand(n, x.device, *sigma) * (hgt / 32)  # sigma is given for 32 px images
    sig = torch.where(_rand(n, x.device) < p, sig, torch.full_like(sig, 1e-3))
    t = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(t.view(1, -1) ** 2) / (2 * sig.view(-1, 1) ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (3n, k)
    y = x.reshape(1, 3 * n, hgt, wid)
    y = F.conv2d(F.pad(y, (k // 2, k // 2, 0, 0), mode="reflect"), kern.view(3 * n, 1, 1, k), groups=3 * n)
    y = F.conv2d(F.pad(y, (0, 0, k // 2, k // 2), mode="reflect"), kern.view(3 * n, 1, k, 1), groups=3 * n)
    return y.view(n, 3, hgt, wid)


def rotate(x: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Rotate by k x 90 degrees counter-clockwise (exact, no interpolation). ``k`` is an int for the
    whole batch or a tensor with one k per image."""
    _check(x)
    if isinstance(k, int):
        return torch.rot90(x, k % 4, dims=(2, 3))
    k = k.to(x.device)
    out = x.clone()
    for r in range(1, 4):
        m = k % 4 == r
        out[m] = torch.rot90(x[m], r, dims=(2, 3))
    return out


def all_rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The four rotations of every image, stacked as [rot0 batch, rot90 batch, ...], with labels 0-3."""
    _check(x)
    views = torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return views, labels


@dataclass(frozen=True)
class Views:
    """A view recipe; calling it on a batch gives one random view per image.

    The default is SimCLR's recipe (Chen et al., 2020), scaled to small images.
    """

    size: int | None = None
    crop_scale: tuple[float, float] = (0.2, 1.0)
    flip: float = 0.5
    jitter: float = 0.8  # probability of colour jitter
    jitter_strength: float = 0.5
    hue: float | None = None  # max hue rotation in turns (default 0.2 * jitter_strength; 0.5 = any hue)
    gray: float = 0.2
    blur: float = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = random_resized_crop(x, self.size, self.crop_scale, flip=self.flip)
        if self.jitter > 0:
            s = self.jitter_strength
            hue = 0.2 * s if self.hue is None else self.hue
            x = color_jitter(x, 0.8 * s, 0.8 * s, 0.8 * s, hue, p=self.jitter)
        if self.gray > 0:
            x = random_grayscale(x, self.gray)
        if self.blur > 0:
            x = gaussian_blur(x, p=self.blur)
        return x


def multi_crop(x: torch.Tensor, n_large: int = 2, n_small: int = 4, small_size: int | None = None,
               large_scale=(0.35, 1.0), small_scale=(0.1, 0.35), **views) -> list[torch.Tensor]:
    """SwAV's multi-crop: ``n_large`` full-size views and ``n_small`` low-resolution views of small areas."""
    small_size = small_size or max(8, x.shape[-1] // 2)
    large = Views(crop_scale=large_scale, **views)
    small = Views(size=small_size, crop_scale=small_scale, **views)
    return [large(x) for _ in range(n_large)] + [small(x) for _ in range(n_small)]
