"""Chapter 5's figures of diffusion models: the forward process, where the class survives in a denoiser's
features (probe accuracy over timestep and block), and a feature map seen through PCA. Every function
returns its figure (see ``plots.py``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch


def _show(ax, image: torch.Tensor) -> None:
    ax.imshow(image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])


def noising_strip(model, images: torch.Tensor, ts, seed: int = 0, size: float = 0.9):
    """One row per image, one column per timestep: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, shown in [0, 1]."""
    fig, axes = plt.subplots(len(images), len(ts), figsize=(len(ts) * size + 0.3, len(images) * size + 0.5),
                             squeeze=False)
    for j, t in enumerate(ts):
        x_t = (model.noised(images, t, generator=torch.Generator().manual_seed(seed)) + 1) / 2
        abar = float(model.alpha_bar[t])
        axes[0, j].set_title(f"t={t}\n" + r"$\sqrt{\bar\alpha_t}$" + f"={abar ** 0.5:.2f}", fontsize=8)
        for i in range(len(images)):
            _show(axes[i, j], x_t[i])
    fig.tight_layout()
    return fig


def probe_heatmaps(tables: dict[str, pd.DataFrame], title: str = "linear-probe accuracy (%) of the class"):
    """One heatmap per model: timestep (rows) x block (columns), the accuracy written in each cell."""
    lo = min(float(t.to_numpy().min()) for t in tables.values())
    hi = max(float(t.to_numpy().max()) for t in tables.values())
    fig, axes = plt.subplots(1, len(tables), figsize=(3.3 * len(tables) + 0.8, 3.0), squeeze=False, sharey=True)
    for ax, (name, table) in zip(axes[0], tables.items()):
        values = table.to_numpy(dtype=float)
        im = ax.imshow(values, cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if v < (lo + hi) / 2 else "black")
        ax.set_xticks(range(table.shape[1]), table.columns, fontsize=8)
        ax.set_yticks(range(table.shape[0]), table.index)
        ax.set(title=name, xlabel="block")
    axes[0, 0].set_ylabel("t")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig


def feature_view(model, images: torch.Tensor, labels, t: int, block: str, accuracy: float | None = None,
                 n_show: int = 8, grid: int = 1, seed: int = 0):
    """What a probe at (t, block) sees: eight noised inputs, and a PCA of the block's features (pooled to
    ``grid`` x ``grid``, noise from ``seed``) of every image, coloured by class."""
    from sklearn.decomposition import PCA

    feats = model.features(images, t, blocks=(block,), grid=grid, seed=seed)[block].numpy()
    points = PCA(2, random_state=0).fit_transform(feats - feats.mean(0))
    x_t = (model.noised(images[:n_show], t, generator=torch.Generator().manual_seed(seed)) + 1) / 2
    fig = plt.figure(figsize=(7.5, 4.2))
    grid = fig.add_gridspec(2, n_show, height_ratios=[1, 4.5])
    for i in range(n_show):
        _show(fig.add_subplot(grid[0, i]), x_t[i])
    ax = fig.add_subplot(grid[1, :])
    labels = np.asarray(labels)
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10" if labels.max() < 10 else "tab20", s=8)
    ax.legend(*scatter.legend_elements(), fontsize=7, ncol=2, loc="best", title="class", title_fontsize=7)
    ax.set(xticks=[], yticks=[], xlabel="PC 1", ylabel="PC 2")
    acc = "" if accuracy is None else f": linear probe {accuracy:.1f} %"
    fig.suptitle(f"{type(model).__name__} features at t={t}, block {block}{acc}", fontsize=10)
    return fig


def best_block_curves(tables: dict[str, pd.DataFrame], title: str = "the best block at each noise level"):
    """For each model, the probe accuracy of its best block at each timestep (max over the columns)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    for name, table in tables.items():
        ax.plot(table.index, table.max(axis=1), marker="o", label=name)
    ax.set(xlabel="t (noise level of the input)", ylabel="probe accuracy (%)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_vs_t(ts, curves: dict[str, list], chance: float | None = None,
                  title: str = "classifier accuracy on noised test images"):
    """One line per reader (a classifier on x_t, on the denoised estimate, the experts), accuracy (%) against t."""
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    for name, accs in curves.items():
        ax.plot(ts, [100 * a for a in accs], marker="o", label=name)
    if chance is not None:
        ax.axhline(100 * chance, color="gray", ls=":", lw=1, label="chance")
    ax.set(xlabel="t", ylabel="accuracy (%)", ylim=(0, 102), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def guided_samples(samples: dict[str, torch.Tensor], scores: dict[str, str] | None = None, n: int = 20,
                   size: float = 0.55):
    """One row of ``n`` samples per variant (requested classes 0, 1, 2, ... in order), its score beside the name."""
    fig, axes = plt.subplots(len(samples), n, figsize=(n * size + 1.8, len(samples) * size + 0.3), squeeze=False)
    for r, (name, images) in enumerate(samples.items()):
        for i in range(n):
            ax = axes[r, i]
            ax.axis("off")
            if i < len(images):
                _show(ax, images[i])
        label = name if scores is None else f"{name}\n{scores[name]}"
        axes[r, 0].text(-0.3, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(left=0.16, wspace=0.05, hspace=0.1)
    return fig


def guidance_tradeoff(table: pd.DataFrame):
    """Judge accuracy against diversity, one line per variant through its guidance scales (columns
    ``variant, scale, accuracy, diversity``), each point labelled with its scale."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for name, rows in table.groupby("variant", sort=False):
        ax.plot(rows["diversity"], 100 * rows["accuracy"], marker="o", label=name)
        for _, row in rows.iterrows():
            ax.annotate(f"{row['scale']:g}", (row["diversity"], 100 * row["accuracy"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set(xlabel="diversity (mean distance between same-class samples)", ylabel="judge accuracy (%)",
           title="accuracy against diversity, by guidance scale")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def readers_at_t(ts, curves: dict[str, list], t: int, noisy: torch.Tensor, labels, predictions: dict[str, list],
                 chance: float | None = None):
    """The accuracy-against-t curves with a marker at ``t``, above a row of test images noised to ``t``,
    each with its true class and what every reader (a key of ``predictions``, as in ``curves``) says."""
    n = len(noisy)
    fig = plt.figure(figsize=(max(6.0, 0.75 * n), 4.6))
    grid = fig.add_gridspec(2, n, height_ratios=[3, 1.3])
    ax = fig.add_subplot(grid[0, :])
    for k, (name, accs) in enumerate(curves.items()):
        ax.plot(ts, [100 * a for a in accs], marker="o", label=f"{'abc'[k]}: {name}")
    if chance is not None:
        ax.axhline(100 * chance, color="gray", ls=":", lw=1)
    ax.axvline(t, color="tab:red", lw=1)
    ax.set(xlabel="t", ylabel="accuracy (%)", ylim=(0, 102))
    ax.legend(fontsize=7)
    for i in range(n):
        sub = fig.add_subplot(grid[1, i])
        _show(sub, noisy[i])
        guesses = " ".join(f"{'abc'[k]}{int(p[i])}" for k, p in enumerate(predictions.values()))
        sub.set_title(f"is {int(labels[i])}", fontsize=7)
        sub.set_xlabel(guesses, fontsize=6)
    fig.tight_layout()
    return fig
