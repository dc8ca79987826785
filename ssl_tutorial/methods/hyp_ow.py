"""Hyp-OW's hierarchy in the Poincaré ball: the SuperClass Regulariser and the distance-based relabelling
(groundwork).

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

The notebook's detector is reduced to proposal classification (``OpenWorldNet``, ``train_open_world``): a ConvNet
classifies crops of scenes into the K known classes, *unknown* and *background*, and a linear head gives the
embedding that the two terms shape. Two departures, both measured on calibration seeds (the notebook says so):
* the relabelling runs once, half-way through training, over the whole pool of unmatched proposals, with the
  threshold at a quantile (0.9) of the matched proposals' scores. Per batch and at the maximum (the paper's rule),
  the threshold followed the batch's worst-embedded known object, and relabelled a little of the background as
  unknown, or nearly all of it, depending on the seed;
* curvature c = 1 and clip radius 2 (the official run uses c = 0.1, r = 1, where the ball's points stay within
  0.31 of the origin and the geometry is nearly Euclidean).

Differences from the official code (boschresearch/Hyp-OW), read by a helper and said here so the notebook can say
them: there, the superclass term's anchor is detached, so the term passes no gradient; the superclass centroids
accumulate across superclasses; same-class anchors are each other's negatives (as here). This file keeps the
gradient of the superclass term and computes each superclass's centroid from its own members.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import poincare
from ..nets import ConvNet


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


# -- the notebook's open-world proposal classifier -------------------------------------------------------------------

@dataclass(frozen=True)
class Geometry:
    """Where the embedding lives: ``to_space`` maps the head's features there, ``pairwise`` gives the (n, k)
    distances between rows, and ``centroids(points, labels, n)`` the centre of each label's points, (n, d), a label
    without points at the origin."""

    name: str
    to_space: Callable[[torch.Tensor], torch.Tensor]
    pairwise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    centroids: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]

    def scores(self, points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        """Each point's smallest distance to a centroid (``unknown_scores`` in this geometry)."""
        return self.pairwise(points, centroids).min(1).values


def geometry(name: str = "hyperbolic", c: float = 1.0, clip_r: float | None = 2.0) -> Geometry:
    """The Poincaré ball of curvature -c ("hyperbolic": ``to_ball``, the ball's distance, the Einstein midpoint) or
    plain R^d ("euclidean": the features as they are, the Euclidean distance, the mean)."""
    if name == "hyperbolic":
        return Geometry(name, lambda x: to_ball(x, c, clip_r), lambda a, b: poincare.pairwise_distance(a, b, c),
                        lambda p, labels, n: poincare.einstein_midpoints(p, labels, n, c))
    if name == "euclidean":
        return Geometry(name, lambda x: x, torch.cdist, _means)
    raise ValueError(f"unknown geometry {name!r}: use 'hyperbolic' or 'euclidean'")


def _means(points: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    total = torch.zeros(n, points.shape[1], dtype=points.dtype, device=points.device).index_add(0, labels, points)
    count = torch.bincount(labels, minlength=n).clamp_min(1).to(points.dtype)
    return total / count[:, None]


class OpenWorldNet(nn.Module):
    """A proposal classifier: a ConvNet, a linear head over the K known classes + *unknown* + *background*, and a
    linear embedding head (``dim``) that the class and superclass terms shape. ``forward`` gives (logits,
    embedding)."""

    def __init__(self, n_known: int, widths=(16, 32, 64, 64), dim: int = 16):
        super().__init__()
        self.n_known = n_known
        self.backbone = ConvNet(widths)
        self.head = nn.Linear(self.backbone.out_dim, n_known + 2)
        self.embed = nn.Linear(self.backbone.out_dim, dim)

    @property
    def unknown(self) -> int:
        return self.n_known

    @property
    def background(self) -> int:
        return self.n_known + 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        return self.head(f), self.embed(f)


@torch.no_grad()
def predict(net: OpenWorldNet, images: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits (n, K + 2) and embeddings (n, dim) of many proposals, in eval mode, batched."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    out = [net(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    net.train(was_training)
    return torch.cat([o[0] for o in out]).cpu(), torch.cat([o[1] for o in out]).cpu()


def train_open_world(net: OpenWorldNet, known: torch.Tensor, labels: torch.Tensor, superclasses: torch.Tensor,
                     unmatched: torch.Tensor, steps: int, n_superclasses: int, space: Geometry | None = None,
                     relabel: bool = True, lambda_class: float = 0.1, lambda_super: float = 0.05,
                     temperature: float = 0.2, quantile: float = 0.9, relabel_at: float = 0.5,
                     batch_size: int = 64, lr: float = 2e-3, seed: int = 0, progress: bool = True) -> dict:
    """Train the proposal classifier. Each step sees ``batch_size`` matched proposals (``known`` images with their
    class ``labels`` and ``superclasses``) and as many unmatched ones (objects of unknown classes and background,
    unlabelled), and minimises

        cross-entropy(logits, targets) + lambda_class * class term + lambda_super * superclass term,

    the targets of the unmatched proposals being *background*, or *unknown* once relabelled. The class term pulls
    each matched proposal to its class centroid in the batch (detached, as the official code's class buffer), the
    superclass term to its superclass centroid (``distance_contrastive`` in the chosen ``space``).

    With ``relabel``, at ``relabel_at`` of training (half-way by default) every unmatched proposal is scored by its
    distance to the nearest known class centroid (over all matched proposals), and those at or below the
    ``quantile`` of the matched proposals' own scores become *unknown* for the rest of training. The baseline is
    ``relabel=False`` with both lambdas at 0: a detector that learns only the known classes and background.

    Returns a dict: ``relabelled`` (bool, per unmatched proposal; None without relabelling), ``scores`` (the
    unmatched proposals' distances), ``matched_scores``, ``threshold`` and ``loss`` (per step)."""
    space = space or geometry()
    if relabel and not (0 < relabel_at < 1 and steps >= 2):
        raise ValueError(f"relabelling happens during training (0 < relabel_at < 1, steps >= 2), got relabel_at "
                         f"{relabel_at} and steps {steps}")
    if not (len(known) == len(labels) == len(superclasses)):
        raise ValueError(f"known, labels and superclasses must have one row per proposal, got {len(known)}, "
                         f"{len(labels)} and {len(superclasses)}")
    device = next(net.parameters()).device
    opt = torch.optim.Adam(net.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    targets = torch.full((len(unmatched),), net.background)
    out = dict(relabelled=None, scores=None, matched_scores=None, threshold=None, loss=[])
    relabel_step = max(1, int(relabel_at * steps)) if relabel else -1
    net.train()
    for step in tqdm(range(steps), desc=space.name + (" + relabelling" if relabel else ""), disable=not progress,
                     leave=False, mininterval=1.0):
        if step == relabel_step:
            points_k = space.to_space(predict(net, known)[1])
            points_u = space.to_space(predict(net, unmatched)[1])
            centroids = space.centroids(points_k, labels, net.n_known)
            out["matched_scores"] = space.scores(points_k, centroids)
            out["scores"] = space.scores(points_u, centroids)
            out["threshold"] = float(out["matched_scores"].quantile(quantile))
            out["relabelled"] = out["scores"] <= out["threshold"]
            targets[out["relabelled"]] = net.unknown
        ik = torch.randint(len(known), (batch_size,), generator=g)
        iu = torch.randint(len(unmatched), (batch_size,), generator=g)
        y, s = labels[ik].to(device), superclasses[ik].to(device)
        logits, e = net(torch.cat([known[ik], unmatched[iu]]).to(device))
        loss = F.cross_entropy(logits, torch.cat([y, targets[iu].to(device)]))
        points = space.to_space(e[:batch_size])
        if lambda_class:
            centroids = space.centroids(points, y, net.n_known).detach()
            loss = loss + lambda_class * distance_contrastive(points, centroids[y], space.pairwise, temperature,
                                                              symmetric=False)
        if lambda_super:
            centroids = space.centroids(points, s, n_superclasses)
            loss = loss + lambda_super * distance_contrastive(points, centroids[s], space.pairwise, 2 * temperature,
                                                              symmetric=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out["loss"].append(loss.item())
    net.eval()
    return out


def open_world_predictions(logits: torch.Tensor, n_known: int, threshold: float | None = None) -> torch.Tensor:
    """Each proposal's decision: a known class (0..K-1), unknown (K) or background (K+1).

    Without ``threshold``, the argmax of the logits: how Hyp-OW decides, with its trained *unknown* output. With it,
    the closed-world baseline's rule on top: a proposal is called unknown when its *uncertain object probability*,
    the probability of being an object (1 - p(background)) not taken by the top known class,

        u = sum_{k <= K} p_k - max_{k < K} p_k,

    is at least ``threshold``. ``u`` is high for a likely object that no known class claims (objectness, as in
    OW-DETR, times the known classes' uncertainty), low for background and for confident known objects."""
    p = logits.softmax(1)
    pred = p.argmax(1)
    if threshold is None:
        return pred
    uncertain = p[:, :n_known + 1].sum(1) - p[:, :n_known].max(1).values
    return torch.where(uncertain >= threshold, torch.full_like(pred, n_known), pred)


def uncertainty_sweep(logits_known: torch.Tensor, labels: torch.Tensor, logits_unknown: torch.Tensor,
                      logits_background: torch.Tensor, n_known: int, thresholds=None) -> pd.DataFrame:
    """The baseline rule's trade-off: per threshold of ``open_world_predictions`` (None: the plain argmax), the
    known-class accuracy (% of known objects given their class), the unknown recall (% of unknown objects called
    unknown) and the background called unknown (%)."""
    thresholds = [None] + torch.linspace(0, 1, 101).tolist() if thresholds is None else thresholds
    def share(logits, target, t):
        return 100 * (open_world_predictions(logits, n_known, t) == target).float().mean().item()

    rows = [dict(threshold=t, known_accuracy=share(logits_known, labels, t),
                 unknown_recall=share(logits_unknown, n_known, t),
                 background_unknown=share(logits_background, n_known, t)) for t in thresholds]
    return pd.DataFrame(rows)
