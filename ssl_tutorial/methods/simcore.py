"""SimCore: "Coreset Sampling from Open-Set for Fine-Grained Self-Supervised Learning".

Kim, Kim, Park, Jung & Yun (CVPR 2023). Taught in notebooks/01_foundations/08_simcore.ipynb.

Self-supervised pretraining on a small, fine-grained target set X_t (say, 200 images of star
variants) has too little data; a large unlabeled **open set** U is at hand, but most of it is
different (other shapes, other backgrounds). SimCore selects the **coreset** S, a subset of U that
lies close to the target in a representation space, and pretrains on X_t + S. With c_1..c_M the
k-means centroids of the target's embeddings (for efficiency, instead of every target point), it
greedily reduces

    sum_m  min_{s in S} || c_m - s ||,

round after round: in each round every centroid takes its nearest open-set sample that is not yet
selected, until the budget is spent. ``round_distances`` traces how far each round's new samples
are from the target; the official code stops when that distance jumps (the rest of the open set is
not like the target). The SSL method itself is unchanged (here: SimCLR from ``simclr.py``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _distances(target: torch.Tensor, open_set: torch.Tensor, n_centroids: int, seed: int) -> torch.Tensor:
    """Cosine distances (M, N_u) from the k-means centroids c_1..c_M of the target to every open-set sample."""
    from sklearn.cluster import KMeans

    target = F.normalize(target.detach().float().cpu(), dim=1)
    open_set = F.normalize(open_set.detach().float().cpu(), dim=1)
    n_centroids = min(n_centroids, len(target))
    centroids = KMeans(n_centroids, n_init=3, random_state=seed).fit(target.numpy()).cluster_centers_
    centroids = F.normalize(torch.as_tensor(centroids, dtype=torch.float32), dim=1)
    return 1 - centroids @ open_set.T


def coreset(target: torch.Tensor, open_set: torch.Tensor, budget: int, n_centroids: int = 32,
            seed: int = 0) -> torch.Tensor:
    """Indices (into ``open_set``) of the SimCore coreset, in the order they were selected.

    ``target`` (N_t, d) and ``open_set`` (N_u, d) are embeddings (compared by cosine distance).
    """
    if target.ndim != 2 or open_set.ndim != 2 or target.shape[1] != open_set.shape[1]:
        raise ValueError(f"target and open_set must be (N, d) with the same d, got {tuple(target.shape)} "
                         f"and {tuple(open_set.shape)}")
    if not 0 < budget <= len(open_set):
        raise ValueError(f"budget must be in 1..{len(open_set)} (the open-set size), got {budget!r}")
    distance = _distances(target, open_set, n_centroids, seed)  # (M, N_u) cosine distances
    n_centroids = len(distance)
    order = distance.argsort(dim=1)  # each centroid's open-set samples, nearest first
    taken = np.zeros(len(open_set), dtype=bool)
    cursor = np.zeros(n_centroids, dtype=np.int64)
    selected: list[int] = []
    while len(selected) < budget:
        for m in range(n_centroids):  # one round: every centroid takes its nearest free sample
            while taken[order[m, cursor[m]]]:
                cursor[m] += 1
            i = int(order[m, cursor[m]])
            taken[i] = True
            selected.append(i)
            if len(selected) == budget:
                break
    return torch.tensor(selected)


def round_distances(target: torch.Tensor, open_set: torch.Tensor, order: torch.Tensor, n_centroids: int = 32,
                    seed: int = 0) -> torch.Tensor:
    """For each round of :func:`coreset`, the mean cosine distance between the samples it added and the
    centroids that took them: shape (number of rounds,), never decreasing. It stays low while every
    centroid still finds close neighbours and rises when they run out; the official code stops
    sampling at the first round whose mean similarity falls below a fraction of an early round's."""
    distance = _distances(target, open_set, n_centroids, seed)
    M = len(distance)
    order = torch.as_tensor(order).long()
    taken_by = torch.arange(len(order)) % M  # round-robin: the j-th sample was taken by centroid j mod M
    d = distance[taken_by, order]
    return torch.stack([chunk.mean() for chunk in d.split(M)])
