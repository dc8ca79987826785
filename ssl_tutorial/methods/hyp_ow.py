"""Hyp-OW's hierarchy in the Poincaré ball: the SuperClass Regulariser and the distance-based relabelling.

Doan, Li, Behpour, He, Gou & Ren, "Hyp-OW: Exploiting Hierarchical Structure Learning with Hyperbolic Distance
Enhances Open World Object Detection", AAAI 2024. Taught in ``notebooks/04_discovery/06_hyp_ow.ipynb``; the geometry
itself is in :mod:`ssl_tutorial.poincare`.

An open-world detector must label the objects of the known classes, and flag as *unknown* the objects of classes it
was never told about, without calling the background an object. Hyp-OW's bet: unknown objects share structure with
known ones (an unseen animal looks like the known animals), and a hyperbolic embedding of the known hierarchy
(superclasses near the origin, their classes further out) makes that structure measurable by a distance.

* **Into the ball** (``to_ball``): a feature x is clipped to norm at most r, x <- min(1, r / ||x||) x, then mapped
  by exp_0 (the official code: curvature c = 0.1, r = 1.0 in its run script).
* **Class term** (``hyperbolic_contrastive``): each anchor a_i is pulled to a positive p_i of its class (in the
  official code, a random embedding of that class from a memory of recent ones) and pushed from the other
  anchors' positives and from the other anchors, with the negative hyperbolic distance as similarity:

      l_i = -log  exp(-d(a_i, p_i) / tau) / ( sum_b exp(-d(a_i, p_b) / tau) + sum_{b != i} exp(-d(a_i, a_b) / tau) )

  averaged over i, and symmetrised (the positives as anchors). tau = 0.2.
* **Superclass term** (``superclass_regulariser``): the same loss with each anchor's positive replaced by the
  centroid (Einstein midpoint) of its superclass, at temperature 2 tau. It keeps the classes of one superclass near
  each other, and the superclass centroids nearer the origin than their classes.
* **Relabelling** (``relabel_unknowns``): every proposal that matches no labelled object is scored by its smallest
  distance to a known class centroid. The threshold is the largest such distance among the matched proposals of the
  batch; unmatched proposals at or below it are relabelled *unknown*, the rest stay background.

The notebook's detector, which trains with these terms, is in :mod:`ssl_tutorial.methods.open_world`.

Differences from the official code (boschresearch/Hyp-OW), read by a helper and said here so the notebook can say
them: there, the superclass term's anchor is detached, so the term passes no gradient; the superclass centroids
accumulate across superclasses; same-class anchors are each other's negatives (as here). This file keeps the
gradient of the superclass term and computes each superclass's centroid from its own members.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .. import poincare


def to_ball(x: torch.Tensor, c: float = 1.0, clip_r: float | None = 1.0) -> torch.Tensor:
    """Features (n, d) to points of the ball: norms clipped to ``clip_r`` (None: no clipping), then exp_0."""
    if clip_r is not None:
        if not clip_r > 0:
            raise ValueError(f"clip_r must be > 0 (or None), got {clip_r}")
        norm = x.norm(dim=-1, keepdim=True).clamp_min(poincare.MIN_NORM)
        x = x * (clip_r / norm).clamp(max=1.0)
    return poincare.expmap0(x, c)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def hyperbolic_contrastive(anchors: torch.Tensor, positives: torch.Tensor, temperature: float = 0.2,
                           c: float = 1.0, symmetric: bool = True) -> torch.Tensor:
    """The class term: anchors (n, d) and their positives (n, d), both points of the ball."""
    return distance_contrastive(anchors, positives, lambda a, b: poincare.pairwise_distance(a, b, c), temperature,
                                symmetric)


def distance_contrastive(anchors: torch.Tensor, positives: torch.Tensor,
                         pairwise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], temperature: float = 0.2,
                         symmetric: bool = True) -> torch.Tensor:
    """The class term's loss for any distance: ``pairwise(x, y)`` gives the (n, k) distances between rows."""
    _check_temperature(temperature)
    if anchors.shape != positives.shape or anchors.ndim != 2 or len(anchors) < 2:
        raise ValueError(f"anchors and positives must both be (n, d) with n >= 2, got {tuple(anchors.shape)} and "
                         f"{tuple(positives.shape)}")

    def one_way(a, p):
        to_positives = -pairwise(a, p) / temperature  # (n, n), the diagonal is the positive
        to_anchors = -pairwise(a, a) / temperature
        to_anchors = to_anchors.masked_fill(torch.eye(len(a), dtype=torch.bool, device=a.device), float("-inf"))
        logits = torch.cat([to_positives, to_anchors], 1)
        return F.cross_entropy(logits, torch.arange(len(a), device=a.device))

    loss = one_way(anchors, positives)
    return (loss + one_way(positives, anchors)) / 2 if symmetric else loss


def superclass_centroids(points: torch.Tensor, superclasses: torch.Tensor, n_superclasses: int,
                         c: float = 1.0) -> torch.Tensor:
    """The Einstein midpoint of each superclass's points: (n_superclasses, d); a superclass without points sits
    at the origin."""
    return poincare.einstein_midpoints(points, superclasses, n_superclasses, c)


def superclass_regulariser(anchors: torch.Tensor, superclasses: torch.Tensor, n_superclasses: int,
                           temperature: float = 0.2, c: float = 1.0) -> torch.Tensor:
    """The superclass term: each anchor's positive is its superclass's centroid, at temperature 2 tau."""
    centroids = superclass_centroids(anchors, superclasses, n_superclasses, c)
    return hyperbolic_contrastive(anchors, centroids[superclasses], 2 * temperature, c, symmetric=False)


def class_centroids(points: torch.Tensor, labels: torch.Tensor, n_classes: int, c: float = 1.0) -> torch.Tensor:
    """The Einstein midpoint of each known class's points: (n_classes, d)."""
    return superclass_centroids(points, labels, n_classes, c)


def unknown_scores(points: torch.Tensor, centroids: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Each point's smallest hyperbolic distance to a known class centroid (small: shares a known structure)."""
    return poincare.pairwise_distance(points, centroids, c).min(1).values


def relabel_unknowns(unmatched: torch.Tensor, matched: torch.Tensor, centroids: torch.Tensor,
                     c: float = 1.0, quantile: float = 1.0) -> torch.Tensor:
    """True for the unmatched proposals to relabel *unknown*: those no further from a known class centroid than
    the furthest matched (known) proposal of the batch (``quantile`` < 1: than that quantile of the matched
    proposals' scores); the others stay background."""
    if len(matched) == 0:
        raise ValueError("the batch needs at least one matched proposal to set the threshold")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    threshold = unknown_scores(matched, centroids, c).quantile(quantile)
    return unknown_scores(unmatched, centroids, c) <= threshold
