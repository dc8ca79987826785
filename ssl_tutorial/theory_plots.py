"""Chapter 10's figures: measured curves beside the theory's predicted ones. Every function returns its figure
(see ``plots.py``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

FLOOR = 0.1  # pts: excess risks below this are drawn at it, so a log axis can show a learner that reached Bayes


def risk_curves(table: pd.DataFrame, bayes: float, title: str = "", rates: bool = True):
    """Test error (left) and excess risk on log-log axes (right) against the number of labels n, one line per
    learner (mean over draws, band: min to max). ``rates`` draws reference slopes n^-1/2 and n^-1 through the
    first supervised point."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    stats = table.groupby(["learner", "n"])[["error", "excess"]].agg(["mean", "min", "max"])
    for k, learner in enumerate(table["learner"].unique()):
        s = stats.loc[learner]
        n = s.index.to_numpy()
        colour = plt.cm.tab10(k)
        left.plot(n, s[("error", "mean")], "o-", color=colour, label=learner)
        left.fill_between(n, s[("error", "min")], s[("error", "max")], color=colour, alpha=0.15)
        right.plot(n, np.maximum(s[("excess", "mean")], FLOOR), "o-", color=colour, label=learner)
    left.axhline(bayes, color="black", ls=":", lw=1, label=f"Bayes error {bayes:.1f} %")
    left.set(xscale="log", xlabel="labelled points n", ylabel="test error (%)", title=title)
    left.legend(fontsize=8)
    if rates:
        supervised = [name for name in table["learner"].unique() if name.startswith("supervised")]
        if supervised:
            s = stats.loc[supervised[0]]
            n0, e0 = s.index[0], max(s[("excess", "mean")].iloc[0], FLOOR)
            n = s.index.to_numpy(dtype=float)
            right.plot(n, e0 * (n / n0) ** -0.5, "k--", lw=1, label="∝ n^-1/2 (the bound's rate)")
            right.plot(n, e0 * (n / n0) ** -1.0, "k:", lw=1, label="∝ n^-1")
    right.set(xscale="log", yscale="log", xlabel="labelled points n", ylabel=f"excess risk (pts, ≥ {FLOOR:g})",
              title="excess risk = error - Bayes error")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def unlabelled_curve(table: pd.DataFrame, n: int):
    """Pretraining's excess risk at a fixed n against the number of unlabelled points m (columns m, excess)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    stats = table.groupby("m")["excess"].agg(["mean", "min", "max"])
    ax.plot(stats.index, np.maximum(stats["mean"], FLOOR), "o-", color="tab:blue")
    ax.fill_between(stats.index, np.maximum(stats["min"], FLOOR), np.maximum(stats["max"], FLOOR), alpha=0.2)
    ax.set(xscale="log", yscale="log", xlabel="unlabelled points m", ylabel=f"excess risk (pts, ≥ {FLOOR:g})",
           title=f"pretrain + ERM with n = {n} labels")
    fig.tight_layout()
    return fig


def mixture_view(x: np.ndarray, components: np.ndarray, labels: np.ndarray, title: str = ""):
    """The first two principal components of a mixture sample, coloured by latent component (left) and by label
    (right)."""
    from sklearn.decomposition import PCA

    xy = PCA(2, random_state=0).fit_transform(x)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharex=True, sharey=True)
    for ax, colour, name in zip(axes, (components, labels), ("latent component z", "label y")):
        ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="tab10", s=6, vmin=0, vmax=9)
        ax.set(title=f"coloured by {name}", xlabel="PC 1", ylabel="PC 2")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def smoother_view(X_train: np.ndarray, y_train: np.ndarray, models: dict, x0: float, grid: np.ndarray):
    """1-D: each model's fit over ``grid`` with the training points (top), and the smoother weights that its
    prediction at ``x0`` puts on each training point (bottom): f(x0) is their weighted mean."""
    from .methods.forest_smoother import smoother_weights

    fig, axes = plt.subplots(2, len(models), figsize=(4.6 * len(models), 5.0), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    x = X_train[:, 0]
    for k, (name, model) in enumerate(models.items()):
        top, bottom = axes[0, k], axes[1, k]
        w = smoother_weights(model, X_train, np.array([[x0]]))[0]
        top.scatter(x, y_train, s=8, c="lightgray")
        top.scatter(x[w > 0], y_train[w > 0], s=10 + 400 * w[w > 0], c="tab:red", alpha=0.6, label="weight > 0")
        top.plot(grid, model.predict(grid[:, None]), color="tab:blue", lw=1.2, label="prediction")
        top.axvline(x0, color="black", ls=":", lw=1)
        top.set(title=f"{name}: f(x0) = {w @ y_train:.2f}", ylabel="y")
        top.legend(fontsize=7, loc="lower left", markerscale=0.4)
        bottom.vlines(x, 0, w, color="tab:red")
        bottom.axvline(x0, color="black", ls=":", lw=1)
        bottom.set(xlabel="x", ylabel="weight ŵ_i(x0)",
                   title=f"{int((w > 0).sum())} training point{'s' if (w > 0).sum() > 1 else ''} share the weight; "
                         f"‖ŵ‖² = {np.sum(w ** 2):.2f}")
    fig.tight_layout()
    return fig


def effective_parameters_view(table: pd.DataFrame, by_distance: pd.Series, n_train: int):
    """Left: p_e against the number of trees (columns: trees, noise, where, p_e), on training and on test inputs.
    Right: p_e of test inputs grouped by their distance to the nearest training input."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    levels = sorted(table["noise"].unique())
    for k, noise in enumerate(levels):
        for where, style in (("train", "-"), ("test", "--")):
            sub = table[(table["noise"] == noise) & (table["where"] == where)]
            left.plot(sub["trees"], sub["p_e"], style, color=plt.cm.viridis(0.85 * k / max(1, len(levels) - 1)),
                      label=f"noise {noise:g}, {where}")
    left.set(xscale="log", xlabel="trees in the forest", ylabel="effective parameters p_e",
             title=f"n = {n_train}; a fully grown tree has p_e = n on its training inputs")
    left.legend(fontsize=7)
    right.bar(range(len(by_distance)), by_distance.to_numpy(), color="tab:purple")
    right.set_xticks(range(len(by_distance)), by_distance.index, fontsize=8)
    right.set(xlabel="test inputs, by distance to the nearest training input", ylabel="p_e",
              title="the forest smooths more where it has seen less")
    fig.tight_layout()
    return fig


def error_terms(table: pd.DataFrame):
    """The error decomposition against the number of trees: stacked bias², input variance and noise variance
    (columns trees, bias2, input_variance, noise_variance)."""
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    x = np.arange(len(table))
    bottom = np.zeros(len(table))
    for term, colour in (("bias2", "tab:gray"), ("input_variance", "tab:orange"), ("noise_variance", "tab:blue")):
        ax.bar(x, table[term], bottom=bottom, color=colour, label=term.replace("_", " "))
        bottom += table[term].to_numpy()
    ax.set_xticks(x, table["trees"])
    ax.set(xlabel="trees in the forest", ylabel="mean squared error to the true f", title="where the error goes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def schedules_view(curves: dict[str, np.ndarray], boundaries=(), title: str = ""):
    """Learning rate against step, one line per schedule, chunk boundaries dotted."""
    fig, ax = plt.subplots(figsize=(9, 2.6))
    for k, (name, lr) in enumerate(curves.items()):
        ax.plot(np.arange(len(lr)), lr, color=plt.cm.tab10(k), label=name)
    for b in boundaries:
        ax.axvline(b, color="gray", ls=":", lw=1)
    ax.set(xlabel="step", ylabel="learning rate", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def continual_view(runs: dict[str, pd.DataFrame], boundaries, column: str, window: int | None = None):
    """Top: each run's learning rate; bottom, on the same steps: its held-out ``column`` (a loss on the first
    chunk's data). Chunk boundaries dotted; ``window`` shades the steps right after each boundary."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    for k, (name, table) in enumerate(runs.items()):
        top.plot(table["step"], table["lr"], color=plt.cm.tab10(k), label=name)
        bottom.plot(table["step"], table[column], "o-", ms=2.5, color=plt.cm.tab10(k), label=name)
    for ax in (top, bottom):
        for b in boundaries:
            ax.axvline(b, color="gray", ls=":", lw=1)
            if window and ax is bottom:
                ax.axvspan(b, b + window, color="gray", alpha=0.12)
    top.set(ylabel="learning rate")
    top.legend(fontsize=8)
    bottom.set(xlabel="step", ylabel=column, title="held-out loss on the first domain (shaded: right after a switch)")
    fig.tight_layout()
    return fig


def task_map(xy: np.ndarray, lengths: np.ndarray, point=None, task_image=None, title: str = ""):
    """CLUTR's task manifold: 2-D coordinates of tasks' latent codes coloured by their optimal path length, and,
    if given, the task decoded at ``point`` (drawn as a cross) beside it."""
    fig, axes = plt.subplots(1, 2 if task_image is not None else 1, figsize=(8.6 if task_image is not None else 5, 3.8),
                             squeeze=False, gridspec_kw={"width_ratios": [1.6, 1]} if task_image is not None else None)
    ax = axes[0, 0]
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=lengths, cmap="viridis", s=9, alpha=0.8)
    fig.colorbar(sc, ax=ax, label="optimal path length (moves)")
    if point is not None:
        ax.plot(*point, "x", color="red", markersize=12, mew=2.5)
    ax.set(xlabel="latent PC 1", ylabel="latent PC 2", title=title or "held-out tasks in the VAE's latent space")
    if task_image is not None:
        axes[0, 1].imshow(task_image, interpolation="nearest")
        axes[0, 1].set(xticks=[], yticks=[], title="the task decoded at the cross")
    fig.tight_layout()
    return fig


def search_view(table: pd.DataFrame, reference: dict[str, float]):
    """The teacher's search, iteration by iteration (``table`` columns ``iteration``, ``regret``, ``path length``,
    ``picks: path length``): the population's mean regret; the mean optimal path length of its valid tasks and of
    the tasks it picks. Dashed: the same for codes drawn from the prior (``reference``, the same keys)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(table["iteration"], table["regret"], "o-", label="CEM population")
    axes[0].axhline(reference["regret"], ls="--", color="gray", label="prior")
    axes[0].set(xlabel="CEM iteration", ylabel="mean regret")
    for column, colour in (("path length", "C0"), ("picks: path length", "C1")):
        label = "population" if column == "path length" else "its picks (top eighth by regret)"
        axes[1].plot(table["iteration"], table[column], "o-", color=colour, label=f"CEM: {label}")
        axes[1].axhline(reference[column], ls="--", color=colour, alpha=0.6, label=f"prior: {label}")
    axes[1].set(xlabel="CEM iteration", ylabel="mean optimal path length")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def curriculum_view(curves: dict[str, pd.DataFrame], window: int = 25):
    """Students' training, per update (each frame: ``success`` and ``path length`` of its batch), smoothed over
    ``window`` updates: the success rate on the batch, and how hard the batch was (mean optimal path length)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, frame in curves.items():
        for ax, column in zip(axes, ("success", "path length")):
            ax.plot(frame[column].rolling(window, min_periods=1).mean().to_numpy(), label=name)
    axes[0].set(xlabel="update", ylabel="training success (batch)", ylim=(0, 1))
    axes[1].set(xlabel="update", ylabel="mean optimal path length of the batch")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def transfer_view(table: pd.DataFrame):
    """Zero-shot success (%) of each student (rows) on each test set (columns), as grouped bars."""
    ax = table.T.plot.bar(figsize=(7, 3.2), rot=0)
    ax.set(ylabel="success (%)", ylim=(0, 100), title="zero-shot success on held-out tasks")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def guidance_bars(table: pd.DataFrame):
    """Train and test accuracy (%) of each model (rows of ``table``, columns ``train`` and ``test``)."""
    ax = table[["train", "test"]].plot.barh(figsize=(7, 0.45 * len(table) + 1.2))
    ax.set(xlabel="accuracy (%)", xlim=(0, 100), title="guidance: what the MLP learns on 25 images per class")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    ax.figure.tight_layout()
    return ax.figure


def cka_heatmaps(matrices: dict[str, np.ndarray], target_layers, guide_layers):
    """One heatmap per model: linear CKA of each target layer (rows) with each guide layer (columns)."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.4 * len(matrices), 3.2), squeeze=False)
    for k, (ax, (name, m)) in enumerate(zip(axes[0], matrices.items())):
        im = ax.imshow(np.asarray(m), vmin=0, vmax=1, cmap="magma")
        ax.set(xticks=range(len(guide_layers)), xticklabels=guide_layers, yticks=range(len(target_layers)),
               yticklabels=target_layers if k == 0 else [], title=name)
        ax.tick_params(axis="x", rotation=30)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="linear CKA (test images)")
    return fig


def guidance_curves(curves: dict[str, list[dict]], title: str = ""):
    """Train (dashed) and test (solid) accuracy against the step, one colour per run; ``curves`` maps a run's name
    to ``fit``'s ``history.evals`` (dicts with ``step``, ``train`` and ``test``, in %)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for k, (name, evals) in enumerate(curves.items()):
        steps = [e["step"] for e in evals]
        colour = plt.cm.tab10(k)
        ax.plot(steps, [e["test"] for e in evals], "-", color=colour, label=f"{name}: test")
        ax.plot(steps, [e["train"] for e in evals], "--", color=colour, alpha=0.6, label=f"{name}: train")
    ax.set(xlabel="step", ylabel="accuracy (%)", ylim=(0, 102), title=title)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def memory_map(weights: np.ndarray, entities, units, title: str = ""):
    """The memory weight a_j of each entity's name (rows) on the units (columns) that are some entity's concept
    vector: one bright cell per row means each entity is kept in one value vector."""
    fig, ax = plt.subplots(figsize=(0.3 * len(units) + 2.5, 0.28 * len(entities) + 1.2))
    im = ax.imshow(np.asarray(weights), vmin=0, vmax=1, cmap="magma", aspect="auto")
    ax.set(xticks=range(len(units)), xticklabels=units, yticks=range(len(entities)), yticklabels=entities,
           xlabel="unit j (value vector)", title=title)
    ax.tick_params(axis="x", rotation=90, labelsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label="memory weight $a_j$")
    fig.tight_layout()
    return fig


def noise_view(table: pd.DataFrame, strength: float, chance: float | None = None):
    """QA accuracy (%) of the target entities and of the others against the noise put on each target's concept
    vector (``table``: index = strength, columns = groups), with the chosen strength (and chance) marked."""
    fig, ax = plt.subplots(figsize=(5.6, 3.3))
    for name in table.columns:
        ax.plot(table.index, table[name], "o-", label=name)
    ax.axvline(strength, color="grey", ls=":")
    if chance is not None:
        ax.axhline(chance, color="k", ls="--", lw=0.8, label="chance")
    ax.set(xlabel="noise on the concept vector (x its rms)", ylabel="QA accuracy (%)", ylim=(0, 104),
           title="the causal test: noise on one value vector")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def unlearning_bars(table: pd.DataFrame):
    """One group of bars per measurement (columns of ``table``, in %), one bar per unlearning method (rows)."""
    ax = table.T.plot.bar(figsize=(8, 3.4), rot=0)
    ax.set(ylabel="%", ylim=(-40, 105), title="what each unlearning method leaves (mean over the forgotten entities)")
    ax.axhline(0, color="k", lw=0.6)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def relearn_view(curves: dict[str, np.ndarray]):
    """Accuracy (%) on the forgotten facts against the relearning step; ``curves``: method -> (entities, steps+1)."""
    fig, ax = plt.subplots(figsize=(5.6, 3.3))
    for name, c in curves.items():
        c = 100 * np.asarray(c)
        line, = ax.plot(c.mean(0), lw=2, label=f"after {name} (mean)")
        for row in c:
            ax.plot(row, color=line.get_color(), alpha=0.25, lw=0.8)
    ax.set(xlabel="relearning step", ylabel="accuracy on the forgotten facts (%)", ylim=(0, 104),
           title="relearning: how fast the knowledge comes back")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def lens_bars(words, votes, facts, title: str = ""):
    """The logit lens of one value vector: its strongest votes (``votes`` over ``words``, best first), the
    entity's true facts (``facts``) in colour."""
    fig, ax = plt.subplots(figsize=(4.6, 0.3 * len(words) + 1.0))
    ax.barh(range(len(words)), votes, color=["tab:red" if w in facts else "tab:grey" for w in words])
    ax.set(yticks=range(len(words)), yticklabels=words, xlabel="vote $(U v_j)_w$", title=title)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
