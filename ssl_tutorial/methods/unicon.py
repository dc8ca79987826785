"""UniCon-HA: unilaterally aggregated contrastive learning with hierarchical augmentation, for anomaly detection.

Wang, Wang, Qin, Zhang, Bao & Huang, "Unilaterally Aggregated Contrastive Learning with Hierarchical Augmentation
for Anomaly Detection", ICCV 2023. Taught in notebooks/04_discovery/05_unicon_ha.ipynb.

One-class anomaly detection: train on inliers only, then score how far a test image is from them. Contrastive
learning (SimCLR) spreads its training images uniformly over the sphere, which is what a detector does *not*
want: the inliers should sit together, and everything else elsewhere. UniCon makes that the objective.

**Virtual outliers.** A distribution-shifting transform of an inlier is no longer an inlier: here a rotation by
90, 180 or 270 degrees (the world is upright; ``shift`` takes another transform). Each batch holds B inliers and
their shifted copies, two views of each.

**Unilateral aggregation.** With z the normalised projections and s(a, b) = z_a . z_b / tau,

    inlier anchor i:    l_i = - 1/|P(i)| sum_{p in P(i)} log  exp s(i, p) / sum_{k != i} exp s(i, k),
                        P(i) = every other inlier view in the batch (all inliers are ONE class, SupCon-style);
    outlier anchor o:   l_o = - log  exp s(o, o') / sum_{k != o} exp s(o, k),   o' = its own other view (SimCLR).

Inliers are pulled together; virtual outliers are pushed from the inliers and from each other. Only the inliers
aggregate: that is the "unilateral".

**Soft re-weighting.** An augmentation can turn an inlier into something that is no longer typical. Each inlier
view p gets a weight w_p proportional to sum_{j != p inlier} exp(z_p . z_j / tau_w), its closeness to the batch's
other inliers (detached), and P(i) is averaged with those weights. (The paper's Eq. 6 puts the weights inside the
log; we read them as weights of the average, which is what its normaliser suggests.)

**Hierarchical augmentation.** Weak views aggregate at a shallow depth, strong views at the end: a second
projection head on the pooled features of an earlier block gets the same loss on weakly augmented views (without the
re-weighting, which the paper applies at the deepest stage only). The paper uses three or four ResNet stages and
four strengths; here, two.

The anomaly score of x is its similarity to the inliers: the largest cosine similarity between its embedding and the
training inliers' (``knn_score``), or the cosine with their mean direction (``concentration_score``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import mlp, pooled
from ..views import Views, rotate

SHALLOW_GRID = 2  # the shallow head reads its block's features average-pooled to 2 x 2 cells


def rotations(images: torch.Tensor) -> torch.Tensor:
    """The default virtual outliers: each image rotated by 90, 180 or 270 degrees at random."""
    return rotate(images, torch.randint(1, 4, (len(images),)))


def unilateral_loss(z: torch.Tensor, is_inlier: torch.Tensor, partner: torch.Tensor, temperature: float = 0.5,
                    weight_temperature: float | None = None) -> torch.Tensor:
    """The UniCon loss over M views z (M, D): ``is_inlier`` (M,) marks inlier views, ``partner`` (M,) is the index
    of each view's other view. ``weight_temperature`` turns on the soft re-weighting of inlier positives."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if weight_temperature is not None and not weight_temperature > 0:
        raise ValueError(f"weight_temperature must be > 0 (or None: no re-weighting), got {weight_temperature!r}")
    if is_inlier.dtype != torch.bool:
        raise ValueError(f"is_inlier must be a boolean mask, got {is_inlier.dtype}")
    if z.ndim != 2 or is_inlier.shape != (len(z),) or partner.shape != (len(z),):
        raise ValueError(f"z must be (M, D) with is_inlier and partner (M,); got {tuple(z.shape)}, "
                         f"{tuple(is_inlier.shape)} and {tuple(partner.shape)}")
    z = F.normalize(z, dim=1)
    m = len(z)
    self_mask = torch.eye(m, dtype=torch.bool, device=z.device)
    log_prob = (z @ z.T / temperature).masked_fill(self_mask, float("-inf")).log_softmax(1)
    positive = torch.zeros(m, m, dtype=torch.bool, device=z.device)
    positive[torch.arange(m), partner] = True
    positive |= is_inlier[:, None] & is_inlier[None, :]  # an inlier's positives: every inlier view
    positive &= ~self_mask
    weight = positive.float()
    if weight_temperature is not None and is_inlier.sum() > 1:
        with torch.no_grad():  # how close each view is to the other inliers: log sum_j exp(z . z_j / tau_w)
            others = self_mask | ~is_inlier[None, :]
            closeness = (z @ z.T / weight_temperature).masked_fill(others, float("-inf")).logsumexp(1)
            typical = torch.exp(closeness - closeness[is_inlier].max())  # no overflow at a small tau_w
            typical = typical / typical[is_inlier].mean()
        weight = torch.where(is_inlier[:, None] & is_inlier[None, :], weight * typical[None, :], weight)
    per_anchor = -(log_prob.masked_fill(~positive, 0) * weight).sum(1) / weight.sum(1)
    return per_anchor.mean()


class UniCon(nn.Module):
    """Encoder f + projection head g, trained on inliers and their rotated copies with :func:`unilateral_loss`.

    ``aggregate=False`` is the CSI-like baseline: every view (inlier or rotated) is its own instance, and the rotated
    copies are only extra negatives ("shifted instances"). ``weight_temperature`` turns on the soft re-weighting,
    ``shallow_block`` the hierarchical augmentation (a second head on that block, trained on ``weak_views``).
    ``shift`` makes the virtual outliers from a batch of inliers (default: :func:`rotations`).
    """

    def __init__(self, backbone: nn.Module, projection_dim: int = 64, temperature: float = 0.5,
                 views: Views | None = None, aggregate: bool = True, weight_temperature: float | None = None,
                 shallow_block: int | None = None, weak_views: Views | None = None, shift=rotations):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(backbone.out_dim, 2 * backbone.out_dim, projection_dim)
        self.views = views or Views()
        self.temperature, self.aggregate, self.weight_temperature = temperature, aggregate, weight_temperature
        self.shallow_block, self.shift = shallow_block, shift
        if shallow_block is not None:
            if not hasattr(backbone, "widths") or not hasattr(backbone, "blocks"):
                raise ValueError("hierarchical augmentation (shallow_block) needs a ConvNet backbone, whose blocks' "
                                 "widths it reads; use shallow_block=None with other backbones")
            width = backbone.widths[shallow_block]
            self.shallow_projector = mlp(width * SHALLOW_GRID ** 2, 2 * width, projection_dim)
            self.weak_views = weak_views or Views(crop_scale=(0.6, 1.0), jitter=0.5, jitter_strength=0.3, gray=0.0)
        self.hparams = {"projection_dim": projection_dim, "temperature": temperature, "views": repr(self.views),
                        "aggregate": aggregate, "weight_temperature": weight_temperature,
                        "shallow_block": shallow_block,
                        "weak_views": repr(self.weak_views) if shallow_block is not None else None,
                        "shift": getattr(shift, "__qualname__", repr(shift))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation f(x)."""
        return self.backbone(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """z = g(f(x)), normalised: the space the loss aggregates inliers in."""
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    def _loss(self, z: torch.Tensor, n: int, weight_temperature: float | None) -> torch.Tensor:
        """The loss of 4n views ordered [inliers, shifted | inliers, shifted] (two views each)."""
        half = 2 * n
        partner = torch.cat([torch.arange(half, 2 * half), torch.arange(0, half)]).to(z.device)
        is_inlier = torch.cat([torch.ones(n), torch.zeros(n)]).bool().repeat(2).to(z.device)
        if not self.aggregate:
            is_inlier = torch.zeros_like(is_inlier)
        return unilateral_loss(z, is_inlier, partner, self.temperature, weight_temperature)

    def loss(self, batch):
        images, _ = batch  # inliers only; no labels
        n = len(images)
        both = torch.cat([images, self.shift(images)])  # inliers, then their virtual outliers
        z = self.projector(self.backbone(torch.cat([self.views(both), self.views(both)])))
        loss = self._loss(z, n, self.weight_temperature)
        logs = {"strong": loss.detach()}
        if self.shallow_block is not None:
            x = torch.cat([self.weak_views(both), self.weak_views(both)])
            for block in self.backbone.blocks[:self.shallow_block + 1]:  # no deeper: their batch norms never see weak views
                x = block(x)
            loss_weak = self._loss(self.shallow_projector(pooled(x, SHALLOW_GRID)), n, None)
            logs["weak"] = loss_weak.detach()
            loss = (loss + loss_weak) / 2
        return loss, logs


def knn_score(train: torch.Tensor, test: torch.Tensor, k: int = 1) -> torch.Tensor:
    """The mean cosine similarity of each test embedding to its k nearest training inliers (high: an inlier)."""
    similarity = F.normalize(test, dim=1) @ F.normalize(train, dim=1).T
    return similarity.topk(min(k, len(train)), dim=1).values.mean(1)


def concentration_score(train: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """The cosine similarity of each test embedding to the training inliers' mean direction (high: an inlier)."""
    centre = F.normalize(F.normalize(train, dim=1).mean(0), dim=0)
    return F.normalize(test, dim=1) @ centre
