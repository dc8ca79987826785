"""Figures of chapter 3 (few-shot and transductive learning).

Taught in notebooks/03_few_shot/. Each function draws one figure and returns it; the notebooks' widgets call them as
their callbacks.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA


def episode_iterations(support, support_y, query, query_y, history, iteration: int, title: str = ""):
    """One episode in 2-D (PCA of its support and query features): queries coloured by their current soft
    assignment (marker: true class), support points as stars, and the prototypes' path up to ``iteration`` of
    ``history`` (a list of (prototypes, assignments) from ``transductive_assign(..., return_history=True)``)."""
    if not 0 <= iteration < len(history):
        raise ValueError(f"iteration must be in 0..{len(history) - 1}, got {iteration}")
    support, query = np.asarray(support), np.asarray(query)
    pca = PCA(2).fit(np.concatenate([support, query]))
    s2, q2 = pca.transform(support), pca.transform(query)
    paths = np.stack([pca.transform(np.asarray(m)) for m, _ in history[:iteration + 1]])  # (t, n_way, 2)
    z = np.asarray(history[iteration][1])
    n_way = z.shape[1]
    colours = plt.get_cmap("tab10")(np.arange(n_way))
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    mixed = np.clip(z @ colours[:, :3], 0, 1)  # each query's colour: its assignment's mixture of the class colours
    markers = "os^vDPX*hp"
    for k in range(n_way):
        rows = np.asarray(query_y) == k
        ax.scatter(q2[rows, 0], q2[rows, 1], c=mixed[rows], marker=markers[k % len(markers)], s=28,
                   edgecolors="none", alpha=0.85)
        ax.scatter(*s2[np.asarray(support_y) == k].T, color=colours[k], marker="*", s=260, edgecolors="black")
        ax.plot(paths[:, k, 0], paths[:, k, 1], color=colours[k], lw=1.5)
        ax.scatter(paths[-1, k, 0], paths[-1, k, 1], color=colours[k], marker="X", s=140, edgecolors="black")
    correct = (z.argmax(1) == np.asarray(query_y)).mean()
    ax.set_title(title or f"iteration {iteration}: {100 * correct:.0f} % of the queries right", fontsize=10)
    ax.set(xticks=[], yticks=[])
    ax.text(0.01, 0.01, "star: support   X: prototype (line: its path)   marker: true class   colour: assignment",
            transform=ax.transAxes, fontsize=7, va="bottom")
    fig.tight_layout()
    return fig


def session_curves(tables: dict, highlight: str | None = None, title: str = ""):
    """FSCIL: accuracy on every class seen so far after each session (left), and on the base classes alone
    (right), one line per strategy (``tables``: name -> ``fscil`` session table)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), sharey=True)
    for name, table in tables.items():
        style = dict(lw=3) if name == highlight else dict(lw=1.5)
        for ax, column in zip(axes, ("accuracy (%)", "base (%)")):
            ax.plot(table.index, table[column], marker="o", label=name, **style)
    axes[0].set(xlabel="session", ylabel="accuracy (%)", title="all classes seen so far")
    axes[1].set(xlabel="session", title="base classes")
    for ax in axes:
        ax.set_xticks(list(next(iter(tables.values())).index))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def stability_adaptability(points: dict, title: str = "after the last session"):
    """FSCIL: one point per strategy, base-class accuracy (stability) against novel-class accuracy (adaptability)
    after the last session (``points``: name -> (base %, novel %))."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, (base, novel) in points.items():
        ax.scatter(base, novel, s=50, label=name)
    ax.set(xlabel="base classes (%): stability", ylabel="novel classes (%): adaptability", title=title)
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig
