"""Backbones and heads.

Taught in notebooks/00_start/01_shapes_world.ipynb (and used by every method).

A backbone is an ``nn.Module`` with ``blocks`` (an ``nn.ModuleList``), ``out_dim`` and
``features(x)``, which returns the output of every block, so that any layer can be probed
(RotNet's layer-wise probe in notebooks/01_foundations/01_rotnet.ipynb). ``forward(x)`` is the
globally pooled output of the last block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """A 3x3 convolution with batch norm and ReLU, then 2x2 max-pooling (rounding up, so that a 1x1 map
    stays 1x1 and small crops, e.g. SwAV's 8-pixel views, pass through every block)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class ConvNet(nn.Module):
    """A small VGG-style ConvNet: one :func:`conv_block` per entry of ``widths``."""

    def __init__(self, widths=(16, 32, 64), in_channels: int = 3):
        super().__init__()
        chans = (in_channels, *widths)
        self.blocks = nn.ModuleList(conv_block(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.out_dim = widths[-1]
        self.widths = tuple(widths)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_images(x)
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1].mean(dim=(2, 3))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool); 4 blocks."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        from torchvision.models import resnet18

        r = resnet18(weights=None)
        stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), r.bn1, r.relu)
        self.blocks = nn.ModuleList([nn.Sequential(stem, r.layer1), r.layer2, r.layer3, r.layer4])
        self.out_dim = 512

    features = ConvNet.features
    forward = ConvNet.forward


class MLPNet(nn.Module):
    """A fully connected encoder for tiny images (e.g. 8x8 digits): flatten, then Linear-BN-ReLU layers.

    Each layer counts as a block, so ``features`` and the layer-wise probe work as for :class:`ConvNet`.
    """

    def __init__(self, in_dim: int, widths=(256, 128)):
        super().__init__()
        dims = (in_dim, *widths)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True))
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.in_dim, self.out_dim, self.widths = in_dim, widths[-1], tuple(widths)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.flatten(1)
        if x.shape[1] != self.in_dim:
            raise ValueError(f"MLPNet expects inputs of {self.in_dim} values per image, got {x.shape[1]}")
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x.view(*x.shape, 1, 1))  # as 1x1 feature maps, like a ConvNet's
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1].flatten(1)


def make_backbone(cfg, seed: int | None = None) -> nn.Module:
    """The backbone named by ``cfg.backbone``, initialised from ``seed`` (default ``cfg.seed``), on the CPU."""
    if cfg.backbone == "convnet":
        net = ConvNet(cfg.widths)
    elif cfg.backbone == "resnet18":
        net = ResNet18()
    else:
        raise ValueError(f"unknown backbone {cfg.backbone!r}; choose 'convnet' or 'resnet18'")
    return seeded_init(net, cfg.seed if seed is None else seed)


def mlp(*dims: int, batch_norm: bool = True) -> nn.Sequential:
    """An MLP head, e.g. ``mlp(64, 128, 32)``: Linear-BN-ReLU between layers, a plain Linear last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(b)] if batch_norm else []
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def seeded_init(module: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every layer from ``seed`` so that the initial weights depend on the seed alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return module


def pooled(feature_map: torch.Tensor, grid: int = 2) -> torch.Tensor:
    """Average-pool a feature map to ``grid`` x ``grid`` cells and flatten: the per-layer probe input."""
    return F.adaptive_avg_pool2d(feature_map, grid).flatten(1)


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a batch of RGB images of shape (N, 3, H, W), got {shape}")
