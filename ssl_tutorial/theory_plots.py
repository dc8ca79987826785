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
