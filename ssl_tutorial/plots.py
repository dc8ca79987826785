"""Figures: matplotlib for static plots, plotly for embeddings you can hover over.

Every function returns the figure (and draws nothing else), so that widgets can call it on
each change and tests can check it headless.
"""

from __future__ import annotations

import inspect

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

EMBEDDINGS = ("pca", "umap", "tsne")


def show_source(obj):
    """Show the source of a function or class in the notebook (what actually runs, not a copy)."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def image_grid(images: torch.Tensor, nrow: int = 8, titles=None, title: str | None = None, size: float = 1.1):
    """A grid of images (N, 3, H, W) in [0, 1], optionally with a title under each."""
    images = images.detach().cpu()
    rows = max(1, (len(images) + nrow - 1) // nrow)
    fig, axes = plt.subplots(rows, nrow, figsize=(nrow * size, rows * size * (1.25 if titles is not None else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def embedding_2d(features, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project features (N, D) to 2-D with PCA, UMAP (umap-learn) or t-SNE (scikit-learn)."""
    if method not in EMBEDDINGS:
        raise ValueError(f"unknown embedding method {method!r}; choose one of: {', '.join(EMBEDDINGS)}")
    x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, init="pca", random_state=seed, perplexity=min(30, len(x) - 1)).fit_transform(x)
    import umap

    return umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(x)


def scatter_2d(points: np.ndarray, factors: pd.DataFrame, color_by: str = "shape_name", title: str = ""):
    """A plotly scatter of 2-D points, coloured by any column of the factor table; hover shows the factors."""
    import plotly.express as px

    if color_by not in factors:
        raise ValueError(f"no factor {color_by!r}; choose one of: {', '.join(factors.columns)}")
    df = factors.reset_index(drop=True).copy()
    df["dim 1"], df["dim 2"] = points[:, 0], points[:, 1]
    hover = [c for c in ("shape_name", "colour_name", "texture_name", "domain_name", "rotation") if c in df]
    colour = df[color_by]
    if colour.dtype.kind in "iub" and colour.nunique() <= 20:
        df[color_by] = colour.astype(str)
    fig = px.scatter(df, x="dim 1", y="dim 2", color=color_by, hover_data=hover, title=title or f"coloured by {color_by}",
                     width=640, height=480, opacity=0.75)
    fig.update_traces(marker={"size": 4})
    return fig


def probe_curves(curves: dict[str, pd.DataFrame], title: str = "Linear probe accuracy per block"):
    """One line per model of linear-probe accuracy against the block it reads (``probe_layers`` tables)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label, df in curves.items():
        ax.plot(df["block"], 100 * df["accuracy"], marker="o", label=label)
    ax.set_xlabel("block")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks(list(next(iter(curves.values()))["block"]))
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def bars(values: dict[str, float], title: str = "", ylabel: str = "accuracy (%)", highlight: str | None = None):
    """A bar chart of named numbers (0-1, shown in %)."""
    fig, ax = plt.subplots(figsize=(min(1.1 * len(values) + 2, 11), 3.2))
    names = list(values)
    colours = ["tab:orange" if n == highlight else "tab:blue" for n in names]
    ax.bar(names, [100 * values[n] for n in names], color=colours)
    for i, n in enumerate(names):
        ax.text(i, 100 * values[n] + 1, f"{100 * values[n]:.1f}", ha="center", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def jitter_curve(table: pd.DataFrame, jitter: float, examples: torch.Tensor | None = None):
    """RotNet vs the data's rotation jitter: pretext accuracy and probe gain over random init, with the
    chosen ``jitter`` marked, and example images of that world when given."""
    if jitter not in set(table["jitter"]):
        raise ValueError(f"jitter {jitter} was not trained; choose one of {sorted(table['jitter'])}")
    ncols = 2 if examples is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(table["jitter"], 100 * table["rotation_acc"], marker="o", label="pretext: rotation accuracy")
    ax.plot(table["jitter"], 100 * table["probe_gain"], marker="s", label="probe gain over random init (pts)")
    ax.axvline(jitter, color="grey", ls="--")
    ax.set_xlabel("rotation jitter of the data (degrees; 180 = uniform)")
    ax.set_ylabel("%")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if examples is not None:
        ax = axes[0, 1]
        n = min(len(examples), 8)
        strip = torch.cat(list(examples[:n].detach().cpu()), dim=2).permute(1, 2, 0).clamp(0, 1)
        ax.imshow(strip.numpy(), interpolation="nearest")
        ax.set_title(f"the world at jitter {jitter:g} degrees")
        ax.axis("off")
    fig.tight_layout()
    return fig
