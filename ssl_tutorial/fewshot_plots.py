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
