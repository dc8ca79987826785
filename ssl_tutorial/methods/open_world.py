"""The open-world proposal classifier of chapter 4's Hyp-OW notebook: Hyp-OW's terms (:mod:`.hyp_ow`) trained
into a detector reduced to classifying proposals, and the closed-world baseline it is compared with.

Taught in ``notebooks/04_discovery/06_hyp_ow.ipynb``.

The detector is reduced to proposal classification (``OpenWorldNet``, ``train_open_world``): a ConvNet
classifies crops of scenes into the K known classes, *unknown* and *background*, and a linear head gives the
embedding that the two terms shape. Two departures, both measured on calibration seeds (the notebook says so):
* the relabelling runs once, half-way through training, over the whole pool of unmatched proposals, with the
  threshold at a quantile (0.9) of the matched proposals' scores. Per batch and at the maximum (the paper's rule),
  the threshold followed the batch's worst-embedded known object, and relabelled a little of the background as
  unknown, or nearly all of it, depending on the seed;
* curvature c = 1 and clip radius 2 (the official run uses c = 0.1, r = 1, where the points stay within 31 % of the
  way to the ball's boundary, and the geometry is nearly Euclidean).

The baseline learns the known classes and background only, and flags unknowns by a rule on its softmax
(``open_world_predictions`` with a threshold; ``uncertainty_sweep`` gives its whole trade-off).
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
from .hyp_ow import distance_contrastive, to_ball


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
