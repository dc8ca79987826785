"""Translated glyphs: a world where a convolutional prior matters, for the untrainable-network notebook.

Taught in notebooks/10_theory/03_untrainable.ipynb.

Each class is one fixed random binary ``glyph`` x ``glyph`` pattern; an image places its class's pattern at a random
position on a ``canvas`` x ``canvas`` background, plus Gaussian pixel noise. Position is the only nuisance, so a
network that is translation invariant by construction (convolutions and a global max pool) sorts the images even
with random weights, while a plain MLP must learn each position separately: with a few labelled images per class
it memorises them and fails on new positions.
"""

from __future__ import annotations

import numpy as np
import torch

from . import Dataset


def glyph_set(n_classes: int = 10, glyph: int = 5, seed: int = 0) -> np.ndarray:
    """``n_classes`` distinct random binary patterns (n_classes, glyph, glyph), about half their cells on."""
    if n_classes < 2 or glyph < 2:
        raise ValueError(f"need n_classes >= 2 and glyph >= 2, got {n_classes} and {glyph}")
    rng = np.random.default_rng(seed)
    while True:
        g = (rng.random((n_classes, glyph, glyph)) < 0.5).astype(np.float32)
        if len({p.tobytes() for p in g}) == n_classes and g.reshape(n_classes, -1).sum(1).min() > 0:
            return g


def translated_glyphs(n_per_class: int, glyphs: np.ndarray, canvas: int = 20, noise: float = 0.1,
                      seed: int = 0) -> Dataset:
    """``n_per_class`` images of every glyph at uniform random positions: (N, 3, canvas, canvas) in grey (the three
    channels equal), labels = the glyph index, ``factors`` = the row and column of the glyph's corner."""
    import pandas as pd

    glyphs = np.asarray(glyphs, np.float32)
    n_classes, size = glyphs.shape[0], glyphs.shape[1]
    if canvas < size:
        raise ValueError(f"the canvas ({canvas}) must be at least as large as a glyph ({size})")
    if n_per_class < 0 or noise < 0:
        raise ValueError(f"n_per_class and noise must be >= 0, got {n_per_class} and {noise}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    corners = rng.integers(0, canvas - size + 1, (len(labels), 2))
    x = np.zeros((len(labels), canvas, canvas), np.float32)
    for i, (c, (r, q)) in enumerate(zip(labels, corners)):
        x[i, r:r + size, q:q + size] = glyphs[c]
    x += noise * rng.standard_normal(x.shape).astype(np.float32)
    images = torch.from_numpy(x)[:, None].repeat(1, 3, 1, 1)
    factors = pd.DataFrame({"row": corners[:, 0], "col": corners[:, 1]})
    return Dataset(images, torch.from_numpy(labels), [f"glyph {k}" for k in range(n_classes)], factors,
                   name="translated glyphs")
