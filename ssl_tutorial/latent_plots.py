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


def factor_effects(effects: dict[str, pd.DataFrame], ymax: float = 1.2):
    """Grouped bars: for each generator, one group per direction and one bar per factor, the factor's change
    in units of its change between two different images (``directions.direction_effects``)."""
    fig, axes = plt.subplots(1, len(effects), figsize=(4.6 * len(effects), 3.0), squeeze=False, sharey=True)
    for ax, (name, table) in zip(axes[0], effects.items()):
        n_dirs, n_factors = table.shape
        width = 0.8 / n_factors
        for k, factor in enumerate(table.columns):
            ax.bar(np.arange(n_dirs) + (k - (n_factors - 1) / 2) * width, table[factor].to_numpy(), width,
                   label=factor, color=plt.cm.tab10(k))
        ax.set_xticks(range(n_dirs), table.index)
        ax.set(title=name, ylim=(0, ymax))
    axes[0, 0].set_ylabel("factor change")
    axes[0, -1].legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
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
