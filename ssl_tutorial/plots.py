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
    height = rows * size * (1.25 if titles is not None else 1) + (0.35 if title else 0)  # room for the title
    fig, axes = plt.subplots(rows, nrow, figsize=(nrow * size, height), squeeze=False)
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


# -- the temperature story (notebooks/01_foundations/04_temperature.ipynb) --------------------------
def penalty_curve(similarities, temperature: float, ax=None):
    """The relative penalty InfoNCE puts on each negative of one anchor, against the negative's
    similarity: r(s) = exp(s / tau) / sum exp(s' / tau) (Wang & Liu, 2021). Pure function, no training."""
    from .evaluate import negative_weights

    s = torch.as_tensor(np.asarray(similarities, dtype=np.float64))
    r = negative_weights(torch.cat([s.new_ones(1), s]), positive=0, temperature=temperature).numpy()
    order = np.argsort(-s.numpy())
    top = max(1, len(s) // 20)
    share = r[order[:top]].sum()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.4))
    ax.scatter(s.numpy(), r, s=8, alpha=0.7)
    ax.axhline(1 / len(s), color="grey", ls=":", label="equal weights")
    ax.set_yscale("log")
    ax.set_ylim(max(r.min(), 1e-12) / 2, 2)
    ax.set(xlabel="similarity of the negative to the anchor", ylabel="relative penalty r (log)",
           title=f"tau = {temperature:g}: the hardest 5% of negatives get {share:.0%} of the penalty")
    ax.legend(loc="lower right")
    return fig


def temperature_curves(table: pd.DataFrame, variant: pd.DataFrame | None = None):
    """Uniformity and tolerance against the temperature (the paper's figure), and kNN accuracy.

    ``table`` has columns tau, uniformity, tolerance, knn; ``variant`` (same columns, optional) is
    drawn as separate markers, e.g. the hard-negative (top-K) loss."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, col, title in zip(axes, ("uniformity", "tolerance", "knn"),
                              ("uniformity (lower = more uniform)", "tolerance (same-class similarity)",
                               "accuracy (%)")):
        scale = 100 if col == "knn" else 1
        ax.plot(table["tau"], scale * table[col], marker="o", label="InfoNCE")
        if variant is not None:
            ax.scatter(variant["tau"], scale * variant[col], marker="*", s=140, color="tab:red", zorder=3,
                       label=variant.get("label", pd.Series(["variant"])).iloc[0])
        ax.set_xscale("log")
        ax.set(xlabel="temperature tau", title=title)
    axes[0].legend()
    fig.tight_layout()
    return fig


def similarity_histograms(similarities: dict, bins: int = 40):
    """One panel per temperature: histograms of the cosine similarity of positive pairs (two views of
    one image), same-class pairs and negative pairs. ``similarities[tau][kind]`` is an array."""
    taus = list(similarities)
    fig, axes = plt.subplots(1, len(taus), figsize=(3.1 * len(taus), 2.9), sharey=True, squeeze=False)
    edges = np.linspace(-1, 1, bins + 1)
    for ax, tau in zip(axes[0], taus):
        for kind, values in similarities[tau].items():
            ax.hist(np.asarray(values), bins=edges, density=True, histtype="step", lw=1.5, label=kind)
        ax.set(title=f"tau = {tau:g}", xlabel="cosine similarity")
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def sphere(points: dict, labels, class_names=None, title: str = "embeddings on the sphere"):
    """A plotly 3-D scatter of unit vectors, one set per key of ``points`` (e.g. per temperature),
    with a slider that switches between them; coloured by ``labels``."""
    import plotly.express as px
    import plotly.graph_objects as go

    labels = np.asarray(labels)
    names = class_names or [str(c) for c in np.unique(labels)]
    colours = px.colors.qualitative.Plotly + px.colors.qualitative.Dark24
    keys = list(points)
    fig = go.Figure()
    for n, key in enumerate(keys):
        p = np.asarray(points[key], dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"points[{key!r}] must have shape (N, 3), got {p.shape}")
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
        for c in np.unique(labels):
            m = labels == c
            fig.add_trace(go.Scatter3d(x=p[m, 0], y=p[m, 1], z=p[m, 2], mode="markers", name=names[c],
                                       legendgroup=str(c), showlegend=n == 0, visible=n == 0,
                                       marker={"size": 2.5, "color": colours[int(c) % len(colours)]}))
    per = len(np.unique(labels))
    steps = [{"label": f"{k}", "method": "update",
              "args": [{"visible": [i // per == n for i in range(per * len(keys))]}]} for n, k in enumerate(keys)]
    fig.update_layout(title=title, width=640, height=560, margin={"l": 0, "r": 0, "b": 0, "t": 40},
                      sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "tau = "}}],
                      scene={"aspectmode": "cube"})
    return fig


# -- Hydra (notebooks/01_foundations/05_hydra.ipynb) ------------------------------------------------
def gate_pair(gates: torch.Tensor, class_names, first: str, second: str):
    """The gate g_ij of a pair of classes over the embedding dimensions (sorted by g_ij), with each
    class's own gate g_ii and g_jj: which dimensions the pair is compared in. ``gates`` is (C, C, d)."""
    if first not in class_names or second not in class_names:
        raise ValueError(f"unknown class {first if first not in class_names else second!r}; "
                         f"choose from: {', '.join(class_names)}")
    i, j = class_names.index(first), class_names.index(second)
    g = gates.detach().cpu().numpy()
    order = np.argsort(-g[i, j])
    fig, ax = plt.subplots(figsize=(11, 2.6))
    ax.bar(range(g.shape[-1]), g[i, j][order], color="grey", alpha=0.5, label="g_ij (the pair)")
    ax.plot(g[i, i][order], lw=1, label=f"g_ii ({first})")
    ax.plot(g[j, j][order], lw=1, label=f"g_jj ({second})")
    ax.set(xlabel="embedding dimension (sorted by g_ij)", ylabel="gate", ylim=(0, 1))
    ax.legend(fontsize=7, ncol=3)
    return fig


# -- SwAV (notebooks/01_foundations/06_swav.ipynb) --------------------------------------------------
def sinkhorn_steps(scores: torch.Tensor, epsilon: float, n_iters: int):
    """The assignment of a batch after ``n_iters`` Sinkhorn-Knopp iterations (0: a plain softmax of
    scores / epsilon per sample), as a heatmap with each sample's row sum and each prototype's share
    of the batch beside it. Equipartition: the shares become 1 / K while the rows stay at 1."""
    from .methods.swav import sinkhorn

    scores = torch.as_tensor(scores, dtype=torch.float32).detach().cpu()
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (batch, prototypes) matrix, got shape {tuple(scores.shape)}")
    if n_iters < 0:
        raise ValueError(f"n_iters must be >= 0, got {n_iters!r}")
    q = torch.softmax(scores / epsilon, dim=1) if n_iters == 0 else sinkhorn(scores, epsilon, n_iters)
    q = q.numpy()
    b, k = q.shape
    fig = plt.figure(figsize=(9, 4.6))
    grid = fig.add_gridspec(2, 2, width_ratios=(6, 1), height_ratios=(4, 1.3), wspace=0.05, hspace=0.08)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(q, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set(ylabel=f"sample ({b})", xticks=[],
           title=f"Q after {n_iters} Sinkhorn iteration{'s' if n_iters != 1 else ''}, epsilon = {epsilon:g}")
    rows = fig.add_subplot(grid[0, 1], sharey=ax)
    rows.barh(np.arange(b), q.sum(1), height=1.0, color="tab:blue")
    rows.axvline(1.0, color="k", lw=0.8)
    rows.set(xlim=(0, 1.5), xlabel="row sum")
    rows.tick_params(labelleft=False)
    cols = fig.add_subplot(grid[1, 0], sharex=ax)
    share = q.sum(0) / b
    cols.bar(np.arange(k), share, width=1.0, color="tab:orange")
    cols.axhline(1 / k, color="k", lw=0.8, label="1 / K")
    cols.set(xlabel=f"prototype ({k})", ylabel="share", ylim=(0, max(3 / k, share.max() * 1.1)))
    cols.legend(fontsize=7, loc="upper right")
    return fig


def cluster_gallery(images: torch.Tensor, assignments, clusters=None, per_cluster: int = 8, size: float = 0.8):
    """One row per cluster (prototype): the first ``per_cluster`` images assigned to it, labelled with the
    cluster's id and size. ``clusters`` picks which rows (default: the largest ones, up to 8). Drawn as
    one image, so it stays fast for many rows."""
    assignments = np.asarray(assignments.cpu() if isinstance(assignments, torch.Tensor) else assignments)
    if len(assignments) != len(images):
        raise ValueError(f"{len(images)} images but {len(assignments)} assignments")
    ids, counts = np.unique(assignments, return_counts=True)
    if clusters is None:
        clusters = ids[np.argsort(-counts, kind="stable")][:8]
    images = images.detach().cpu().clamp(0, 1)
    _, c, h, w = images.shape
    pad = max(1, h // 8)
    canvas = torch.ones(c, len(clusters) * (h + pad) + pad, per_cluster * (w + pad) + pad)
    for r, k in enumerate(clusters):
        for i, n in enumerate(np.flatnonzero(assignments == k)[:per_cluster]):
            top, left = pad + r * (h + pad), pad + i * (w + pad)
            canvas[:, top:top + h, left:left + w] = images[n]
    fig, ax = plt.subplots(figsize=(per_cluster * size + 0.8, len(clusters) * size))
    ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(len(clusters))],
                  [f"#{k} ({int((assignments == k).sum())})" for k in clusters], fontsize=7)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout(pad=0.2)
    return fig


def collapse_curves(runs: dict, n_prototypes: int, window: int = 5):
    """Training curves of clustering runs: the loss against ln K (a uniform prediction) and the
    number of prototypes in use per batch. ``runs[name]`` is a :class:`train.History`."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for name, history in runs.items():
        axes[0].plot(pd.Series(history.loss).rolling(window, min_periods=1).mean(), label=name)
        axes[1].plot(pd.Series(history.logs["prototypes_used"]).rolling(window, min_periods=1).mean(), label=name)
    axes[0].axhline(np.log(n_prototypes), color="k", lw=0.8, ls="--", label="ln K")
    axes[0].set(title="swapped-prediction loss", xlabel="step")
    axes[1].axhline(n_prototypes, color="k", lw=0.8, ls="--", label="K")
    axes[1].set(title="prototypes used in a batch (argmax)", xlabel="step", ylim=(0, n_prototypes * 1.1))
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# -- OBoW (notebooks/01_foundations/07_obow.ipynb) ---------------------------------------------------
def word_patches(patches: torch.Tensor, codes: torch.Tensor, word: int, n: int = 24, nrow: int = 12):
    """The image patches most strongly assigned to one visual word: ``patches`` (M, 3, h, w) are the
    regions seen by M feature-map locations, ``codes`` (M, K) their soft assignments to the words."""
    codes = torch.as_tensor(codes)
    if not 0 <= word < codes.shape[1]:
        raise ValueError(f"word must be in 0..{codes.shape[1] - 1}, got {word!r}")
    if len(patches) != len(codes):
        raise ValueError(f"{len(patches)} patches but {len(codes)} rows of codes")
    top = torch.argsort(codes[:, word], descending=True)[:n]
    share = float((codes.argmax(1) == word).float().mean())
    return image_grid(patches[top], nrow=nrow, size=0.7,
                      title=f"word {word}: closest word of {100 * share:.1f} % of the locations")


def bow_prediction(target, prediction, top: int = 16, title: str = ""):
    """An image's bag of words (the teacher's target) next to the student's prediction, over the
    ``top`` words with the largest target weight."""
    target, prediction = np.asarray(torch.as_tensor(target).cpu()), np.asarray(torch.as_tensor(prediction).cpu())
    order = np.argsort(-target)[:top]
    fig, ax = plt.subplots(figsize=(8, 2.6))
    x = np.arange(len(order))
    ax.bar(x - 0.2, target[order], width=0.4, label="teacher's BoW (its input)")
    ax.bar(x + 0.2, prediction[order], width=0.4, label="student's prediction (small crop)")
    ax.set_xticks(x, [str(k) for k in order], fontsize=7)
    ax.set(xlabel="word", ylabel="weight", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# -- SimCore (notebooks/01_foundations/08_simcore.ipynb) ----------------------------------------------
def coreset_budget(points: np.ndarray, groups, target_points: np.ndarray, order, curve, budget: int):
    """The first ``budget`` samples of a coreset ``order``: where they lie in a 2-D embedding of the open set
    (``points``, coloured by ``groups``; the target as black stars), the distance of each selection round's
    new samples (``curve``, from ``simcore.round_distances``), and what the coreset is made of next to the open set."""
    groups = np.asarray(groups)
    order = np.asarray(torch.as_tensor(order).cpu())
    if len(points) != len(groups):
        raise ValueError(f"{len(points)} points but {len(groups)} group labels")
    if not 1 <= budget <= len(order):
        raise ValueError(f"budget must be in 1..{len(order)}, got {budget!r}")
    chosen = order[:budget]
    names = sorted(set(groups))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    ax = axes[0]
    for i, g in enumerate(names):
        m = groups == g
        ax.scatter(points[m, 0], points[m, 1], s=4, alpha=0.25, color=f"C{i}", label=g)
    for i, g in enumerate(names):
        c = chosen[groups[chosen] == g]
        ax.scatter(points[c, 0], points[c, 1], s=14, color=f"C{i}", edgecolor="k", linewidth=0.6)
    ax.scatter(target_points[:, 0], target_points[:, 1], s=90, marker="*", color="k", label="target")
    ax.set(title=f"open set; the {budget} selected samples outlined", xticks=[], yticks=[])
    ax.legend(fontsize=7, markerscale=2)
    curve = np.asarray(torch.as_tensor(curve).cpu())
    per_round = len(order) / len(curve)
    axes[1].plot(per_round * np.arange(1, len(curve) + 1), curve)
    axes[1].axvline(budget, color="k", ls="--", lw=0.8)
    axes[1].set(title="how far each round's new samples are\nfrom the target centroids that took them",
                xlabel="samples selected", ylabel="mean cosine distance")
    share_open = [100 * float(np.mean(groups == g)) for g in names]
    share_core = [100 * float(np.mean(groups[chosen] == g)) for g in names]
    x = np.arange(len(names))
    axes[2].bar(x - 0.2, share_open, width=0.4, label="open set", color="0.7")
    axes[2].bar(x + 0.2, share_core, width=0.4, label=f"coreset ({budget})", color="C3")
    axes[2].set_xticks(x, names, fontsize=8)
    axes[2].set(ylabel="% of the samples", title="what the coreset is made of", ylim=(0, 100))
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig
