"""DDFA, unsupervised learning under latent label shift: Discriminate, Discretize, Factorize, Adjust.

Roberts, Mani, Garg & Lipton, "Unsupervised Learning under Latent Label Shift", NeurIPS 2022.
Taught in notebooks/04_discovery/01_latent_label_shift.ipynb.

Latent label shift: data come from D domains that share the class conditionals p(x | y) while their class
proportions p_d(y) differ. No label is seen, only each sample's domain. Then

    p(d | x) = sum_y p(d | y) p(y | x)                                         (1)

the domain posterior of an image is a mixture of its class posterior, and for any discretisation c(x),

    p(c | d) = sum_y p(c | y) p(y | d)                                         (2)

is a topic model: domains are the documents, the clusters c its words, the classes its topics. So:

1. **Discriminate**: train a classifier f(x) ~ p(d | x) to tell the domains apart (here
   :class:`~ssl_tutorial.methods.supervised.Supervised` with the domain as its label). Whatever shifts with
   the domain is what it must see: the class, not the colour.
2. **Discretize**: k-means of f(x) into m >= K clusters (:func:`discretize`).
3. **Factorize**: non-negative matrix factorisation of the m x D matrix p(c | d) into p(c | y) and p(y | d)
   (:func:`factorize`); this is where the proportions p_d(y) come from. The paper uses NMF. The factorisation is
   identified when every class has an *anchor* cluster that belongs to it alone; this package's default finds the
   anchors (:func:`anchors`) instead, which on sampled counts is more accurate.
4. **Adjust**: solve (1) for p(y | x) by least squares (non-negative here), with p(d | y) = p(y | d) p(d) / p(y), and
   put the domain's proportions back: p_d(y | x) ~ p(y | x) p_d(y) / p(y) (:func:`adjust`).
   :func:`cluster_posterior` is the topic model's own answer, p_d(y | c) ~ p(c | y) p_d(y).

The classes come out in an arbitrary order, as clusters do: :func:`match` finds the one-to-one map onto the true
classes (for evaluation only), and :func:`prior_error` compares recovered and true proportions under that map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment, nnls
from sklearn.cluster import KMeans
from sklearn.decomposition import NMF

NNLS_STEPS = 1000  # scipy's default (3 x the number of classes) can stop short when two class rows nearly coincide


@dataclass
class Factorisation:
    """The topic model of step 3: p(c | y) (m, K), p(y | d) (K, D) and the domain frequencies p(d) (D,)."""

    p_c_given_y: np.ndarray
    p_y_given_d: np.ndarray
    p_d: np.ndarray

    @property
    def priors(self) -> np.ndarray:
        """The recovered p_d(y), one row per domain (D, K), in the factorisation's own class order."""
        return self.p_y_given_d.T

    @property
    def p_y(self) -> np.ndarray:
        """The marginal class frequencies, p(y) = sum_d p(y | d) p(d), (K,)."""
        return self.p_y_given_d @ self.p_d

    @property
    def p_d_given_y(self) -> np.ndarray:
        """Bayes: p(d | y) = p(y | d) p(d) / p(y), (D, K)."""
        return (self.p_y_given_d * self.p_d[None]).T / np.maximum(self.p_y[None], 1e-12)


def _counts(index: np.ndarray, n: int) -> np.ndarray:
    index = np.asarray(index)
    if index.ndim != 1 or (len(index) and (index.min() < 0 or index.max() >= n)):
        raise ValueError(f"expected a 1-D array of integers in 0..{n - 1}")
    return np.bincount(index, minlength=n)


@torch.no_grad()
def domain_posterior(discriminator: torch.nn.Module, images: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Step 1's output f(x) = p(d | x), (N, D): the softmax of a trained domain classifier (left in eval mode)."""
    discriminator.eval()
    device = next(discriminator.parameters()).device
    return torch.cat([discriminator(images[i:i + batch_size].to(device)).softmax(1).cpu()
                      for i in range(0, len(images), batch_size)]).double().numpy()


def discretize(p_d_given_x: np.ndarray, m: int, seed: int = 0) -> KMeans:
    """Step 2: k-means with ``m`` clusters in the space of domain posteriors; ``.predict`` discretises new images."""
    if m < 1 or m > len(p_d_given_x):
        raise ValueError(f"the number of clusters m must be between 1 and the number of samples, got {m}")
    return KMeans(m, n_init=4, random_state=seed).fit(p_d_given_x)


def cluster_proportions(clusters: np.ndarray, domains: np.ndarray, n_clusters: int, n_domains: int) -> np.ndarray:
    """p(c | d) as a (D, m) matrix: the fraction of each domain's samples in each cluster (or class)."""
    if len(clusters) != len(domains):
        raise ValueError(f"{len(clusters)} cluster indices but {len(domains)} domains: give one of each per sample")
    _counts(clusters, n_clusters)  # validates the indices
    _counts(domains, n_domains)
    table = np.zeros((n_domains, n_clusters))
    np.add.at(table, (np.asarray(domains), np.asarray(clusters)), 1)
    return table / np.maximum(table.sum(1, keepdims=True), 1)


def anchors(rows: np.ndarray, k: int, candidates: np.ndarray | None = None) -> list[int]:
    """The successive projection algorithm (Gillis & Vavasis, 2014): ``k`` rows whose convex hull contains the others.

    Every row of p(d | c) (a cluster's distribution over domains) is a mixture of the classes' p(d | y). Under
    separability some clusters belong to one class alone, so the classes' rows are among the cluster rows, as the
    corners of their hull. The row farthest from the origin is a corner; project every row onto the complement of
    its direction and repeat. ``candidates`` (a boolean mask) limits which rows may be chosen.
    """
    residual = np.array(rows, dtype=float)
    allowed = np.ones(len(residual), bool) if candidates is None else np.asarray(candidates, bool)
    if allowed.sum() < k:
        raise ValueError(f"need at least {k} candidate rows to choose {k} anchors, got {allowed.sum()}")
    chosen = []
    for _ in range(k):
        j = int(np.argmax(np.where(allowed, (residual ** 2).sum(1), -1.0)))
        chosen.append(j)
        u = residual[j] / max(np.linalg.norm(residual[j]), 1e-12)
        residual = residual - np.outer(residual @ u, u)
    return chosen


def factorize(clusters: np.ndarray, domains: np.ndarray, n_classes: int, n_clusters: int, n_domains: int,
              seed: int = 0, method: str = "anchors", purity: float = 0.9) -> Factorisation:
    """Step 3: factorise p(c | d) = p(c | y) p(y | d), both factors rescaled to be column-stochastic.

    ``method="nmf"`` is the paper's: scikit-learn's NMF (``seed`` seeds it). Its answer is not unique, and on a
    sampled matrix it often settles on a different factorisation from the true one.
    ``method="anchors"`` (this package's default, not the paper's) uses separability directly:

    1. the rows p(d | c) of the clusters, as if p(d) were uniform (the domains have about equal sizes here);
    2. one anchor cluster per class with :func:`anchors`;
    3. each class's p(d | y) refined as the size-weighted mean of the clusters that are at least ``purity`` its own
       (one anchor cluster alone is noisy);
    4. every cluster solved as a non-negative mixture of the classes' rows.
    """
    if not 1 <= n_classes <= min(n_clusters, n_domains):
        raise ValueError(f"n_classes must be at most the number of clusters ({n_clusters}) and of domains "
                         f"({n_domains}), got {n_classes}: the factorisation has too few columns to find it")
    if method not in ("anchors", "nmf"):
        raise ValueError(f"method must be 'anchors' or 'nmf', got {method!r}")
    p_c_given_d = cluster_proportions(clusters, domains, n_clusters, n_domains).T  # (m, D)
    if method == "nmf":
        nmf = NMF(n_classes, init="nndsvda", max_iter=2000, random_state=seed)
        p_c_given_y = nmf.fit_transform(p_c_given_d)  # (m, K), unnormalised
        p_y_given_d = nmf.components_  # (K, D), unnormalised
    else:
        p_d_given_c = p_c_given_d / np.maximum(p_c_given_d.sum(1, keepdims=True), 1e-12)  # (m, D)
        size = _counts(clusters, n_clusters).astype(float)
        rows = p_d_given_c[anchors(p_d_given_c, n_classes)]  # (K, D)
        # each cluster as a mixture of the classes, then each class refined over its (almost) pure clusters
        share = np.stack([nnls(rows.T, row, maxiter=NNLS_STEPS)[0] for row in p_d_given_c])
        share = share / np.maximum(share.sum(1, keepdims=True), 1e-12)
        for k in range(n_classes):
            pure = share[:, k] >= purity
            if pure.any():
                rows[k] = size[pure] @ p_d_given_c[pure] / size[pure].sum()
        p_c_given_y = np.stack([nnls(rows.T, row, maxiter=NNLS_STEPS)[0] for row in p_c_given_d])  # (m, K), unnormalised
        p_y_given_d = rows  # (K, D), unnormalised
    scale = np.maximum(p_c_given_y.sum(0), 1e-12)
    p_c_given_y, p_y_given_d = p_c_given_y / scale, p_y_given_d * scale[:, None]
    p_y_given_d = p_y_given_d / np.maximum(p_y_given_d.sum(0, keepdims=True), 1e-12)
    p_d = _counts(domains, n_domains) / len(domains)
    return Factorisation(p_c_given_y=p_c_given_y, p_y_given_d=p_y_given_d, p_d=p_d)


def adjust(p_d_given_x: np.ndarray, fac: Factorisation, domains: np.ndarray) -> np.ndarray:
    """Step 4: p_d(y | x) for each sample, (N, K): solve (1) for p(y | x), then reweight by the sample's own domain,
    p_d(y | x) ~ p(y | x) p_d(y) / p(y).

    The paper solves (1) by least squares (a pseudo-inverse) and clips; here it is non-negative least squares, so
    p(y | x) is a distribution without clipping. (1) holds for the discriminator's own p(d), the domain sizes of its
    training images; ``fac.p_d`` is measured on the images factorised, which must be about the same."""
    p_d_given_y = fac.p_d_given_y
    if p_d_given_x.shape[1] != p_d_given_y.shape[0]:
        raise ValueError(f"p(d | x) has {p_d_given_x.shape[1]} domains, the factorisation {p_d_given_y.shape[0]}")
    p_y_given_x = np.stack([nnls(p_d_given_y, row, maxiter=NNLS_STEPS)[0] for row in p_d_given_x])
    p_y_given_x = p_y_given_x / np.maximum(p_y_given_x.sum(1, keepdims=True), 1e-12)
    posterior = p_y_given_x * fac.priors[np.asarray(domains)] / np.maximum(fac.p_y[None], 1e-12)
    return posterior / np.maximum(posterior.sum(1, keepdims=True), 1e-12)


def cluster_posterior(clusters: np.ndarray, fac: Factorisation, domains: np.ndarray) -> np.ndarray:
    """The topic model's posterior of a sample's class from its cluster and domain, p_d(y | c) ~ p(c | y) p_d(y),
    (N, K): the official code's "naive" classifier, which uses the cluster only, not p(d | x) itself."""
    posterior = fac.p_c_given_y[np.asarray(clusters)] * fac.priors[np.asarray(domains)]
    return posterior / np.maximum(posterior.sum(1, keepdims=True), 1e-12)


def match(y_true, y_pred, n_classes: int) -> np.ndarray:
    """The one-to-one map of predicted classes onto true ones that maximises agreement: ``perm[k]`` is the true
    class of predicted class k (Hungarian matching, as for clusters)."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_pred), np.asarray(y_true)), 1)
    rows, cols = linear_sum_assignment(-counts)
    perm = np.empty(n_classes, dtype=int)
    perm[rows] = cols
    return perm


def prior_error(estimated: np.ndarray, truth: np.ndarray, perm: np.ndarray) -> float:
    """Mean absolute error between estimated p_d(y) (D, K), its classes mapped by ``perm``, and the truth (D, K)."""
    aligned = np.zeros_like(truth, dtype=float)
    aligned[:, perm] = estimated
    return float(np.abs(aligned - truth).mean())
