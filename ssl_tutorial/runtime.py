"""One switch for every notebook: the scale preset, the seed and the device.

Taught in notebooks/00_start/01_shapes_world.ipynb.

``SSL_TUTORIAL_SCALE``  smoke | cpu | gpu   (default: gpu when CUDA is present, else cpu)
``SSL_TUTORIAL_SEED``   an integer          (default: 0)
``SSL_TUTORIAL_DATASET`` shapes | digits | cifar10 | stl10  (default: shapes)
``SSL_TUTORIAL_DEVICE`` cuda | mps | cpu    (default: the best one available)

* smoke -- continuous integration: every notebook in <= 30 s on 2 CPU cores, claims still asserted.
* cpu   -- a laptop: every notebook in <= 5 min, the effect clear to the eye.
* gpu   -- one GPU, minutes: more data, more steps, wider nets.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

SCALES = ("smoke", "cpu", "gpu")
DEVICES = ("cuda", "mps", "cpu")


@dataclass(frozen=True)
class Config:
    """Everything a notebook sizes itself by. Notebooks never hard-code step counts."""

    scale: str
    seed: int
    device: str
    dataset: str
    image_size: int  # pixels per side
    n_train: int  # unlabelled / labelled training images
    n_test: int  # held-out images for every evaluation
    batch_size: int
    steps: int  # optimiser steps of a main training run
    lr: float
    widths: tuple[int, ...]  # channels of the ConvNet's blocks
    backbone: str  # "convnet" or "resnet18"
    embedding: str  # 2-D embedding for plots: "pca" (fast) or "umap"

    def key(self) -> dict:
        """What identifies results of this configuration (used in cache keys)."""
        d = asdict(self)
        d.pop("device")  # the same numbers are expected on any device
        return d

    def with_(self, **changes) -> Config:
        return replace(self, **changes)

    def __str__(self) -> str:
        # the thread count is part of what reproduces a CPU run: it sets the order of floating-point sums
        device = f"{self.device} ({torch.get_num_threads()} threads)" if self.device == "cpu" else self.device
        return (f"scale={self.scale} seed={self.seed} device={device} dataset={self.dataset} "
                f"({self.image_size}px, {self.n_train} train / {self.n_test} test images, "
                f"{self.steps} steps of batch {self.batch_size}, {self.backbone} {list(self.widths)})")


PRESETS = {
    "smoke": dict(image_size=16, n_train=2000, n_test=1000, batch_size=32, steps=250, lr=5e-3,
                  widths=(16, 32, 64, 64), backbone="convnet", embedding="pca"),
    "cpu": dict(image_size=32, n_train=6000, n_test=2000, batch_size=32, steps=1000, lr=2e-3,
                widths=(16, 32, 64, 128, 128), backbone="convnet", embedding="umap"),
    "gpu": dict(image_size=32, n_train=20000, n_test=5000, batch_size=128, steps=4000, lr=2e-3,
                widths=(64, 128, 256, 256, 256), backbone="convnet", embedding="umap"),
}


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _choice(value: str, valid: tuple[str, ...], what: str, env: str) -> str:
    if value not in valid:
        raise ValueError(f"{what} {value!r} is not valid (from {env} or the argument); choose one of: "
                         f"{', '.join(valid)}")
    return value


def resolve(scale: str | None = None, seed: int | str | None = None, dataset: str | None = None,
            device: str | None = None) -> tuple[str, int, str, str]:
    """The four switches, from the arguments or the environment, checked: a ``ValueError`` that names the
    variable and the valid values. The CLI calls it before it starts a kernel."""
    from .data import DATASETS

    env = os.environ
    scale = _choice(scale or env.get("SSL_TUTORIAL_SCALE") or ("gpu" if torch.cuda.is_available() else "cpu"),
                    SCALES, "scale", "SSL_TUTORIAL_SCALE")
    raw_seed = seed if seed is not None else env.get("SSL_TUTORIAL_SEED", "0")
    try:
        seed = int(raw_seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed must be an integer (SSL_TUTORIAL_SEED), got {raw_seed!r}") from None
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer (SSL_TUTORIAL_SEED), got {seed}")
    dataset = _choice(dataset or env.get("SSL_TUTORIAL_DATASET") or "shapes", DATASETS, "dataset",
                      "SSL_TUTORIAL_DATASET")
    device = _choice(device or env.get("SSL_TUTORIAL_DEVICE") or default_device(), DEVICES, "device",
                     "SSL_TUTORIAL_DEVICE")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; unset SSL_TUTORIAL_DEVICE")
    if device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but torch sees no Apple-silicon GPU; unset SSL_TUTORIAL_DEVICE")
    return scale, seed, dataset, device


def setup(scale: str | None = None, seed: int | None = None, dataset: str | None = None,
          device: str | None = None, verbose: bool = True) -> Config:
    """Read the switches (arguments win over environment variables), seed everything, pick the device.

    >>> cfg = setup("smoke", seed=3, verbose=False)
    >>> cfg.image_size, cfg.seed
    (16, 3)
    """
    scale, seed, dataset, device = resolve(scale, seed, dataset, device)
    preset = dict(PRESETS[scale])
    if dataset in ("cifar10", "stl10"):
        preset["image_size"] = max(preset["image_size"], 32)
    cfg = Config(scale=scale, seed=seed, device=device, dataset=dataset, **preset)
    seed_everything(seed)
    if verbose:
        print(cfg)
    return cfg
