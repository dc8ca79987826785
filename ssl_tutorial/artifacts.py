"""Models that several notebooks share, trained once per scale and seed and cached by ``fit``.

``tiny_ddpm`` is the curriculum's artifact A3: the unconditional DDPM of chapter 5, used by
notebooks/05_generative/02_diffusion_features.ipynb (its features) and 03_guidance.ipynb (guided
sampling). Both notebooks call it with the same preset, so the second loads what the first trained; a
notebook run alone trains it within its budget.
"""

from __future__ import annotations

from .data import load_dataset
from .methods.diffusion import DDPM
from .train import fit

# data, U-Net width and training of the tiny DDPM at each scale (batch 64)
DDPM_PRESETS = {
    "smoke": dict(data="digits", pixels=8, channels=8, steps=200, lr=3e-3),
    "cpu": dict(data="digits", pixels=8, channels=16, steps=3000, lr=2e-3),
    "gpu": dict(data="shapes", pixels=32, channels=32, steps=8000, lr=2e-3),  # not run on a GPU yet
}


def diffusion_data(cfg):
    """The preset of ``cfg.scale`` and its train and test sets: scikit-learn's 8x8 digits (1 437 / 360) at
    smoke and cpu scale, the shapes world at 32 px (20 000 / 2 000) at gpu scale."""
    preset = DDPM_PRESETS[cfg.scale]
    if preset["data"] == "digits":
        return preset, load_dataset("digits", "train", size=8), load_dataset("digits", "test", size=8)
    train = load_dataset("shapes", "train", n=20000, size=preset["pixels"], seed=cfg.seed)
    test = load_dataset("shapes", "test", n=2000, size=preset["pixels"], seed=cfg.seed)
    return preset, train, test


def tiny_ddpm(cfg, train, preset: dict, progress: bool = True) -> DDPM:
    """A3: the DDPM of ``preset``, trained on ``train`` (its labels are never used) and cached."""
    ddpm = DDPM(preset["channels"])
    fit(ddpm, train, cfg, steps=preset["steps"], batch_size=64, lr=preset["lr"], name="tiny-ddpm", progress=progress)
    return ddpm
