"""Figures of chapter 4 (discovery, label shift, noise and the open world).

Taught in notebooks/04_discovery/. Each function draws one figure and returns it; the notebooks' widgets call
them as their callbacks.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def prior_heatmaps(panels: dict[str, np.ndarray], class_names, title: str = ""):
    """Side-by-side heatmaps of p_d(y): one panel per entry, domains as rows, classes as columns."""
    if not panels:
        raise ValueError("give at least one (domains, classes) matrix to draw")
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 + 1.9 * len(panels), 3.2), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], panels.items()):
        matrix = np.asarray(matrix)
        im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(matrix.shape[1]), class_names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(matrix.shape[0]), [f"d{d}" for d in range(matrix.shape[0])], fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=r"$p_d(y)$")
    if title:
        fig.suptitle(title, fontsize=10, y=1.04)
    return fig


def contingency(rows, columns, row_names, column_names, title: str = "", ax=None):
    """How a clustering (rows) spreads over a factor (columns): each row's fractions, as a heatmap."""
    rows, columns = np.asarray(rows), np.asarray(columns)
    table = np.zeros((len(row_names), len(column_names)))
    np.add.at(table, (rows, columns), 1)
    table = table / np.maximum(table.sum(1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(column_names) + 1.5, 0.35 * len(row_names) + 1.2))
    ax.imshow(table, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(column_names)), column_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(row_names)), row_names, fontsize=7)
    ax.set_title(title, fontsize=9)
    return ax.figure


def scatter_by_class(points: np.ndarray, labels, class_names, title: str = "", ax=None, axis_names=("PC 1", "PC 2")):
    """2-D points (a projection of per-sample vectors: domain posteriors, a latent space), coloured by class; the axes
    are named ``axis_names`` (by default the first two principal components)."""
    labels = np.asarray(labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.4))
    for k, name in enumerate(class_names):
        chosen = labels == k
        ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.5, label=name)
    ax.legend(markerscale=4, fontsize=7, loc="best")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel(axis_names[0], fontsize=8)
    ax.set_ylabel(axis_names[1], fontsize=8)
    ax.set_title(title, fontsize=9)
    return ax.figure


def silhouette_curve(scores, truth: int | None = None, title: str = "", ax=None):
    """The silhouette against the number of clusters k, its best k marked (and the true number, if given)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 2.8))
    ax.plot(scores.index, scores.values, "o-")
    best = scores.idxmax()
    ax.axvline(best, color="C1", ls="--", label=f"best k = {best}")
    if truth is not None:
        ax.axvline(truth, color="grey", ls=":", label=f"true k = {truth}")
    ax.set_xlabel("k")
    ax.set_ylabel("silhouette")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return ax.figure


def cv_folds(hidden: list, known, novel):
    """The hidden-class cross-validation: one row per fold, which classes are labelled, hidden (treated as novel
    and clustered) or truly novel (unlabelled: reconstruction only, never scored)."""
    known, novel = list(known), list(novel)
    classes = known + novel
    table = np.zeros((len(hidden), len(classes)))
    for f, fold in enumerate(hidden):
        for j, c in enumerate(classes):
            table[f, j] = 2 if c in novel else (1 if c in list(fold) else 0)
    fig, ax = plt.subplots(figsize=(0.42 * len(classes) + 1.6, 0.42 * len(hidden) + 1.1))
    cmap = plt.matplotlib.colors.ListedColormap(["#4c72b0", "#dd8452", "#cccccc"])
    ax.imshow(table, cmap=cmap, vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(classes)), [f"c{c}" for c in classes], fontsize=8)
    ax.set_yticks(range(len(hidden)), [f"fold {f}" for f in range(len(hidden))], fontsize=8)
    handles = [plt.matplotlib.patches.Patch(color=cmap(i), label=name)
               for i, name in enumerate(("labelled", "hidden: clustered", "novel: unlabelled, never scored"))]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("hidden-class cross-validation: no novel label is ever used", fontsize=9)
    return fig


METHOD_COLOURS = {"ERM": "tab:grey", "self-training": "tab:orange", "RSS": "tab:blue"}
METHOD_LINES = {"self-training": "--"}  # dashed: visible where RSS's boundary lies on top of it
REFERENCE_LINES = {"Bayes error": ":", "shifted domain's limit": "--"}  # any other reference: dash-dotted


def robust_loss_view(gammas=(0.3, 0.5, 1.0, 2.0)):
    """The robust 0-1 loss phi_gamma: against the signed distance to the boundary for a labelled point (left), and
    against theta . x / ||theta|| for an unlabelled point with its own pseudo-label (right)."""
    import torch

    from .methods.rss import robust_loss

    rho = torch.linspace(-4, 4, 401)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    left.step(rho, (rho <= 0).float(), "k:", where="post", label="0-1 loss (gamma = infinity)")
    right.plot(rho, torch.zeros_like(rho), "k:", label="0-1 loss on its own pseudo-label: always 0")
    for k, gamma in enumerate(gammas):
        left.plot(rho, robust_loss(rho, gamma), color=plt.cm.viridis(k / len(gammas)), label=f"gamma = {gamma:g}")
        right.plot(rho, robust_loss(rho.abs(), gamma), color=plt.cm.viridis(k / len(gammas)), label=f"gamma' = {gamma:g}")
    left.set(xlabel=r"signed distance to the boundary  $y\,\theta\cdot x / \|\theta\|$", ylabel=r"$\phi_\gamma$",
             title="labelled point: a ramp instead of a step")
    right.set(xlabel=r"$\theta\cdot x' / \|\theta\|$", ylabel=r"$\phi_{\gamma'}$",
              title="unlabelled point, pseudo-labelled: a tent at the boundary")
    for ax in (left, right):
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def error_curves(table, x: str, references: dict | None = None, title: str = "", xlabel: str | None = None,
                 log: bool = False, ax=None):
    """The test error of each method (column ``method``) against column ``x``: the mean over draws, and a band from
    the smallest to the largest. ``references`` maps a label to a constant (a horizontal line) or to a series
    indexed like ``x`` (a curve); each reference keeps its line style across figures (``REFERENCE_LINES``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 3.3))
    stats = table.groupby(["method", x])["error"].agg(["mean", "min", "max"])
    for method in table["method"].unique():
        s = stats.loc[method]
        colour = METHOD_COLOURS.get(method)
        ax.plot(s.index, s["mean"], "o-", color=colour, label=method)
        ax.fill_between(s.index, s["min"], s["max"], color=colour, alpha=0.15)
    for label, value in (references or {}).items():
        style = REFERENCE_LINES.get(label, "-.")
        if np.isscalar(value):
            ax.axhline(value, color="black", ls=style, lw=1, label=label)
        else:
            ax.plot(value.index, value.values, color="black", ls=style, lw=1, label=label)
    ax.set(xscale="log" if log else "linear", xlabel=xlabel or x, ylabel="test error (%)", title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.figure.tight_layout()
    return ax.figure


def boundaries_2d(world, x_l, y_l, x_u, thetas: dict, title: str = ""):
    """A 2-D shifted mixture: the labelled points by class, the unlabelled cloud in grey, and the decision boundary
    of each method (a line through the origin, orthogonal to its theta) beside the Bayes boundary and, thin and
    dashed, the shifted domain's own (orthogonal to mu_1). Drawn in the
    basis (mu_0 / ||mu_0||, the shift's direction), so the labelled domain's classes sit left and right."""
    u = world.mu_0 / np.linalg.norm(world.mu_0)
    v = np.array([-u[1], u[0]])
    if (world.mu_1 - world.mu_0) @ v < 0:
        v = -v
    basis = np.stack([u, v], 1)
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    unlabelled = np.asarray(x_u) @ basis
    ax.scatter(unlabelled[:, 0], unlabelled[:, 1], s=4, color="0.7", label="unlabelled (shifted domain)")
    labelled = np.asarray(x_l) @ basis
    for sign, marker, colour in ((-1, "o", "tab:red"), (1, "s", "tab:green")):
        chosen = np.asarray(y_l) == sign
        ax.scatter(labelled[chosen, 0], labelled[chosen, 1], s=40, marker=marker, color=colour, edgecolor="black",
                   zorder=3, label=f"labelled, y = {sign:+d}")
    limit = 4
    lines = {"Bayes": (world.mu_0, ":", 2), "shifted domain's optimum": (world.mu_1, "--", 0.8),
             **{name: (theta, METHOD_LINES.get(name, "-"), 2) for name, theta in thetas.items()}}
    for name, (theta, style, width) in lines.items():
        t = np.asarray(theta) @ basis
        direction = np.array([-t[1], t[0]]) / np.linalg.norm(t)
        error = f" ({float(world.error(theta)):.1f} %)"
        ax.plot(*np.stack([-limit * direction, limit * direction], 1), color=METHOD_COLOURS.get(name, "black"),
                ls=style, lw=width, label=name + error, zorder=2.5 if style == "--" else 2)  # dashed on top
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", title=title,
           xlabel=r"along $\mu_0$", ylabel="along the shift")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


GROUP_COLOURS = {"inliers": "tab:green", "virtual outliers": "tab:purple", "anomalies": "tab:red"}


def score_strips(scores: dict, title: str = "", ax=None):
    """One strip per group of test images (e.g. inliers, virtual outliers, anomalies): each image's anomaly score
    (here the cosine similarity to the inliers' concentration), jittered vertically, with the group's mean."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 2.6))
    rng = np.random.default_rng(0)
    for k, (group, values) in enumerate(scores.items()):
        values = np.asarray(values, dtype=float)
        colour = GROUP_COLOURS.get(group, f"C{k}")
        ax.scatter(values, k + 0.15 * rng.standard_normal(len(values)), s=10, alpha=0.6, color=colour)
        ax.plot([values.mean()] * 2, [k - 0.35, k + 0.35], color="black", lw=2)
    ax.set_yticks(range(len(scores)), list(scores))
    ax.set(xlim=(-1.05, 1.05), xlabel="cosine similarity to the inliers' concentration", title=title)
    ax.invert_yaxis()
    ax.figure.tight_layout()
    return ax.figure


def auroc_bars(table, title: str = "", ax=None):
    """AUROC (%) per anomaly class (rows of ``table``) for each detector (its columns), with chance at 50."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(table) * len(table.columns) / 2 + 2), 3))
    width = 0.8 / len(table.columns)
    for k, column in enumerate(table.columns):
        ax.bar(np.arange(len(table)) + (k - (len(table.columns) - 1) / 2) * width, table[column], width, label=column)
    ax.axhline(50, color="black", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(table)), table.index, rotation=45, ha="right", fontsize=8)
    ax.set(ylim=(0, 100), ylabel="AUROC (%)", title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.figure.tight_layout()
    return ax.figure


NOISE_COLOURS = {"clean": "tab:green", "ID-noisy": "tab:orange", "OOD": "tab:red"}


def group_histograms(values, groups: dict, xlabel: str, title: str = "", threshold: float | None = None,
                     ax=None):
    """Overlaid histograms of one per-sample value (a loss, a hyperplane score) for each group of training samples
    (``groups`` maps a name, e.g. clean, ID-noisy, OOD, to a boolean mask); an optional vertical threshold."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3))
    values = np.asarray(values, dtype=float)
    bins = np.linspace(values.min(), values.max(), 40)
    for k, (name, mask) in enumerate(groups.items()):
        ax.hist(values[np.asarray(mask)], bins=bins, alpha=0.55, density=True, label=name,
                color=NOISE_COLOURS.get(name, f"C{k}"))
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1)
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def flag_composition(table, title: str = ""):
    """One panel per method: the share (%) of each group flagged noisy at every epoch (rows of ``table`` are
    method, epoch, group; its column ``flagged`` is in %). A detector flags OOD and ID-noisy samples and keeps
    the clean ones."""
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 2.8), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods):
        rows = table[table["method"] == method]
        for k, (group, part) in enumerate(rows.groupby("group", sort=False)):
            ax.plot(part["epoch"], part["flagged"], marker="o", ms=3, label=group, color=NOISE_COLOURS.get(group, f"C{k}"))
        ax.set(title=method, xlabel="epoch", ylim=(-3, 103))
    axes[0, 0].set_ylabel("flagged noisy (%)")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def poincare_disk(points: dict, centroids: dict | None = None, title: str = "", ax=None):
    """Points of the 2-D Poincaré disk (the unit circle is its boundary, at infinite distance): ``points`` maps a
    group name to (n, 2) coordinates, or to (coordinates, colour labels) to colour the group by label (e.g. the
    known proposals by superclass); ``centroids`` maps a name to (k, 2) coordinates drawn as large markers."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="black", lw=1))
    markers = {"unknown": "x", "background": "."}
    for k, (name, value) in enumerate(points.items()):
        xy, labels = value if isinstance(value, tuple) else (value, None)
        xy = np.asarray(xy)
        if labels is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=10, marker=markers.get(name, "o"), alpha=0.6, label=name,
                       color="black" if name == "unknown" else "0.6" if name == "background" else f"C{k}")
        else:
            labels = np.asarray(labels)
            for j, lab in enumerate(dict.fromkeys(labels)):
                sel = labels == lab
                ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.35, color=f"C{j}", label=f"{name}: {lab}")
    for k, (name, xy) in enumerate((centroids or {}).items()):
        xy = np.asarray(xy)
        ax.scatter(xy[:, 0], xy[:, 1], s=120 if k else 60, marker="*" if k else "D", edgecolor="black",
                   color="white" if k else "gold", zorder=5, label=name)
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), aspect="equal", title=title, xticks=[], yticks=[])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.figure.tight_layout()
    return ax.figure


def relabel_view(scores, is_unknown, matched_scores, quantile: float, title: str = ""):
    """The relabelling decision at one threshold: histograms of the unmatched proposals' distances to the nearest
    known class centroid (true unknown objects and background) and the matched proposals' own, the threshold at
    ``quantile`` of the matched ones, and the precision and recall of the proposals relabelled *unknown*."""
    scores, is_unknown = np.asarray(scores, dtype=float), np.asarray(is_unknown, dtype=bool)
    matched_scores = np.asarray(matched_scores, dtype=float)
    threshold = float(np.quantile(matched_scores, quantile))
    chosen = scores <= threshold
    precision = 100 * is_unknown[chosen].mean() if chosen.any() else float("nan")
    recall = 100 * chosen[is_unknown].mean()
    values = np.concatenate([matched_scores, scores])
    n = len(matched_scores)
    groups = {"matched (known)": np.r_[np.ones(n, bool), np.zeros(len(scores), bool)],
              "unmatched: unknown object": np.r_[np.zeros(n, bool), is_unknown],
              "unmatched: background": np.r_[np.zeros(n, bool), ~is_unknown]}
    fig = group_histograms(values, groups, "distance to the nearest known class centroid", threshold=threshold)
    fig.axes[0].set_title(f"{title}quantile {quantile:.2f}: relabelled {chosen.mean():.0%} of the unmatched, "
                          f"precision {precision:.0f} %, recall {recall:.0f} %", fontsize=9)
    return fig
