"""Chapter 6's figures: images against captions. Every function returns its figure (see ``plots.py``)."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch


def similarity_matrix(similarity, images: torch.Tensor, captions: list[str], title: str = ""):
    """The cosine of every image (rows, drawn on the left) with every caption (columns), the matching pairs on the
    diagonal outlined."""
    similarity = np.asarray(similarity, dtype=float)
    n = len(similarity)
    fig = plt.figure(figsize=(1.1 + 0.75 * n, 1.6 + 0.75 * n))
    grid = fig.add_gridspec(n, n + 2, width_ratios=[1, 0.1] + [1] * n)
    for i in range(n):
        ax = fig.add_subplot(grid[i, 0])
        ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
        ax.axis("off")
    ax = fig.add_subplot(grid[:, 2:])
    ax.imshow(similarity, cmap="viridis")
    for i in range(n):
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, color="white", lw=1.5))
        for j in range(n):
            ax.text(j, i, f"{similarity[i, j]:.2f}", ha="center", va="center", fontsize=6, color="white")
    ax.set_xticks(range(n), [textwrap.fill(c, 18) for c in captions], rotation=90, fontsize=7)
    ax.set_yticks([])
    ax.set_title(title or "cosine of each image (rows) with each caption (columns)", fontsize=9)
    fig.tight_layout()
    return fig


def ranked_images(images: torch.Tensor, scores, k: int = 8, title: str = ""):
    """The ``k`` images of highest score, best first, each with its score."""
    scores = torch.as_tensor(scores)
    top = scores.topk(min(k, len(scores))).indices
    fig, axes = plt.subplots(1, len(top), figsize=(1.2 * len(top), 1.6), squeeze=False)
    for ax, i in zip(axes[0], top.tolist()):
        ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
        ax.set_title(f"{float(scores[i]):.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def message(text: str):
    """A small figure that only says ``text`` (what a widget shows instead of a crash)."""
    fig, ax = plt.subplots(figsize=(6, 0.8))
    ax.text(0.01, 0.5, textwrap.fill(text, 90), va="center", fontsize=9, color="tab:red")
    ax.axis("off")
    return fig


def word_patch_maps(image: torch.Tensor, words: list[str], maps, title: str = ""):
    """One picture and, for each word of its caption, the word's cosine with each patch (``maps`` (L, h, w), one
    per word, in the caption's order) drawn over the picture: where each word "looks"."""
    maps = np.asarray(maps, dtype=float)
    picture = image.permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    S = picture.shape[0]
    fig, axes = plt.subplots(1, len(words) + 1, figsize=(1.25 * (len(words) + 1), 1.7), squeeze=False)
    axes[0, 0].imshow(picture, interpolation="nearest")
    axes[0, 0].set_title("picture", fontsize=8)
    low, high = maps.min(), maps.max()
    for ax, word, m in zip(axes[0, 1:], words, maps):
        ax.imshow(picture, interpolation="nearest")
        ax.imshow(m, cmap="magma", alpha=0.6, vmin=low, vmax=high, extent=(-0.5, S - 0.5, S - 0.5, -0.5),
                  interpolation="nearest")
        h, w = m.shape
        row, col = np.unravel_index(m.argmax(), m.shape)
        ax.add_patch(plt.Rectangle((col * S / w - 0.5, row * S / h - 0.5), S / w, S / h, fill=False, color="cyan",
                                   lw=1.5))
        ax.set_title(word, fontsize=8)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
