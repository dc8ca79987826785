"""Chapter 5's figures of latent directions: how strongly each direction changes the images, which
factors it changes, and the images a set of slider values generates. Every function returns its
figure (see ``plots.py``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch


def direction_strengths(changes: dict[str, np.ndarray], meaningful: float | None = None):
    """One bar per direction, in each generator's own order: its image change divided by that
    generator's largest. ``meaningful`` draws the fraction a direction must reach to count."""
    fig, axes = plt.subplots(1, len(changes), figsize=(4.2 * len(changes) + 2, 2.8), squeeze=False,
                             gridspec_kw={"width_ratios": [max(len(c), 24) for c in changes.values()]})
    for ax, (name, change) in zip(axes[0], changes.items()):
        ratio = np.asarray(change, dtype=float) / max(float(np.max(change)), 1e-12)
        colours = ["tab:blue" if meaningful is None or r >= meaningful else "tab:gray" for r in ratio]
        ax.bar(np.arange(1, len(ratio) + 1), ratio, color=colours)
        if meaningful is not None:
            ax.axhline(meaningful, color="tab:red", ls="--", lw=1)
        ax.set(title=name, xlabel="direction", ylim=(0, 1.05))
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0, 0].set_ylabel("image change / largest")
    fig.tight_layout()
    return fig


def factor_effects(effects: dict[str, pd.DataFrame], vmax: float = 1.0):
    """Heatmaps (directions x factors) of how much each direction moves each factor, in units of the
    factor's change between two independent samples (``directions.direction_effects``)."""
    fig, axes = plt.subplots(1, len(effects), figsize=(3.4 * len(effects), 0.35 * max(len(e) for e in effects.values())
                                                          + 1.6), squeeze=False)
    for ax, (name, table) in zip(axes[0], effects.items()):
        im = ax.imshow(table.to_numpy(), cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
        ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="factor change")
    return fig


def generated_side_by_side(images: dict[str, torch.Tensor], nrow: int = 4, size: float = 0.9):
    """Each generator's images (N, 3, H, W) in [0, 1] as a small grid, the generators side by side."""
    n = max(len(x) for x in images.values())
    rows = (n + nrow - 1) // nrow
    fig, axes = plt.subplots(rows, len(images) * nrow, figsize=(len(images) * nrow * size + 0.4 * len(images),
                                                              rows * size + 0.4), squeeze=False)
    for g, (name, x) in enumerate(images.items()):
        x = x.detach().cpu().clamp(0, 1)
        for i in range(rows * nrow):
            ax = axes[i // nrow, g * nrow + i % nrow]
            ax.axis("off")
            if i < len(x):
                ax.imshow(x[i].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[0, g * nrow].set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    return fig
