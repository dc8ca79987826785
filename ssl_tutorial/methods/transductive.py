"""Transductive few-shot learning by clustering the query set, with a Laplacian term.

Ziko, Boudiaf, Dolz, Granger and Ben Ayed, "Transductive Few-Shot Learning: Clustering is All You Need?" (2023), in
the line of LaplacianShot (Ziko et al., ICML 2020). Taught in ``notebooks/03_few_shot/01_transductive_clustering.ipynb``
on PCA features of scikit-learn's digits (the PCA fitted on base digits 0-4, episodes drawn from novel digits 5-9).

An episode gives K labelled support points per class and an unlabelled query set. An *inductive* classifier labels
each query alone: ProtoNet puts it in the class of the nearest prototype m_c (the mean of the class's support
features). A *transductive* one labels the queries together, as a clustering of support and queries in which the
support points' assignments are fixed to their labels. The paper's objective has a K-means term and a Laplacian term
(lambda/4) sum_{i,j in Q} w_ij ||z_i - z_j||^2 that charges kNN neighbours for disagreeing. Relaxing the one-hot z_i to
the simplex (on one-hot vectors ||z_i - z_j||^2 = 2 - 2 z_i^T z_j) and adding an entropy barrier, with a temperature T:

    E(Z, M) = (1/T) sum_{i in S+Q} sum_c z_ic ||x_i - m_c||^2  -  (lambda/2) sum_{i,j in Q} w_ij z_i^T z_j
              + sum_{i in Q} z_i^T log z_i.

The middle term is concave when W is positive semi-definite; replacing it by its tangent at the current Z gives a
closed form, one query at a time (exact for a symmetric W),

    z_ic  proportional to  exp( -||x_i - m_c||^2 / T  +  lambda sum_j w_ij z_jc ),

and the prototypes that minimise the K-means term are each class's weighted mean of its support and soft queries,

    m_c = ( sum_{s: y_s = c} x_s + sum_{i in Q} z_ic x_i ) / ( K + sum_{i in Q} z_ic ).

Here, as in LaplacianShot's code, each query uses its own kappa nearest queries (w_ij = 1), a graph that is neither
symmetric nor positive semi-definite, so the iteration carries no guarantee of improving E at each step. The code
alternates one prototype step and one assignment step (a simplification; not checked against the paper's schedule).
lambda = 0 is soft K-means at temperature T started from the prototypes, with the support kept in its clusters; as
T -> 0 it is the paper's K-means with supervision constraints, which it finds competitive with far more elaborate few-shot
methods. The features are centred on the base classes' mean and L2-normalised first (the usual preprocessing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# the notebook's episodes: scikit-learn's digits, 0-4 base and 5-9 novel, features from a PCA fitted on base digits
PRESETS = {
    "smoke": dict(pca_dim=32, n_way=5, n_query=15, n_episodes=300, temperature=0.2, n_iter=10, lam=0.5, k=5),
    "cpu": dict(pca_dim=32, n_way=5, n_query=15, n_episodes=2000, temperature=0.2, n_iter=10, lam=0.5, k=5),
}
PRESETS["gpu"] = PRESETS["cpu"]


def preprocess(features: torch.Tensor, base_mean: torch.Tensor) -> torch.Tensor:
    """Centre on the base classes' mean feature, then L2-normalise (each row)."""
    return F.normalize(features - base_mean, dim=-1)


def prototypes(support: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """(n_way, d): each class's mean support feature."""
    one_hot = F.one_hot(support_y.long(), n_way).float()
    return (one_hot.T @ support) / one_hot.sum(0)[:, None]


def knn_affinity(query: torch.Tensor, k: int = 5) -> torch.Tensor:
    """(Q, Q) w_ij = 1 when j is one of i's ``k`` (kappa) nearest queries (Euclidean, self excluded), else 0."""
    distance = torch.cdist(query, query)
    distance.fill_diagonal_(float("inf"))
    k = min(k, len(query) - 1)
    w = torch.zeros_like(distance)
    w.scatter_(1, distance.topk(k, largest=False).indices, 1.0)
    return w


def transductive_assign(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, n_way: int,
                        lam: float = 0.5, k: int = 5, temperature: float = 0.2, n_iter: int = 10,
                        return_history: bool = False):
    """Soft assignments of the queries (Q, n_way) after ``n_iter`` alternations of the prototype step and the bound
    step on Z, starting from ProtoNet's prototypes. ``lam`` = 0: soft K-means; ``lam`` > 0 adds the Laplacian term
    over the queries' ``k``-nearest-neighbour graph. With ``return_history``, also the (prototypes, assignments) of
    every iteration, iteration 0 being ProtoNet's (for the notebook's figures)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if lam < 0 or n_iter < 0:
        raise ValueError(f"lam and n_iter must be >= 0, got {lam} and {n_iter}")
    support_y = support_y.long()
    one_hot = F.one_hot(support_y, n_way).float()
    m = prototypes(support, support_y, n_way)
    w = knn_affinity(query, k) if lam > 0 else None
    z = torch.softmax(-torch.cdist(query, m) ** 2 / temperature, dim=1)
    history = [(m, z)]
    for _ in range(n_iter):
        m = (one_hot.T @ support + z.T @ query) / (one_hot.sum(0) + z.sum(0))[:, None]  # prototype step
        logits = -torch.cdist(query, m) ** 2 / temperature  # bound step on Z
        if w is not None:
            logits = logits + lam * (w @ z)
        z = torch.softmax(logits, dim=1)
        history.append((m, z))
    return (z, history) if return_history else z


def episode_accuracy(support, support_y, query, query_y, n_way: int, method: str = "protonet", **options) -> float:
    """Accuracy (%) on one episode's queries: ``"protonet"`` (inductive, nearest prototype), ``"kmeans"``
    (transductive, lam = 0) or ``"laplacian"`` (transductive, ``lam`` from ``options``, default 0.5)."""
    lam = options.pop("lam", 0.5)
    if method == "protonet":
        predicted = torch.cdist(query, prototypes(support, support_y.long(), n_way)).argmin(1)
    elif method in ("kmeans", "laplacian"):
        predicted = transductive_assign(support, support_y, query, n_way, lam=0.0 if method == "kmeans" else lam,
                                        **options).argmax(1)
    else:
        raise ValueError(f"unknown method {method!r}; choose from protonet, kmeans, laplacian")
    return 100 * (predicted == query_y).float().mean().item()
