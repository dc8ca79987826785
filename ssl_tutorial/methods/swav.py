"""SwAV: "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments".

Caron, Misra, Mairal, Goyal, Bojanowski & Joulin, NeurIPS 2020. Taught in
notebooks/01_foundations/06_swav.ipynb.

Instead of comparing views with each other, SwAV assigns each view to one of K learnable
**prototypes** c_k and asks every view to *predict the assignment of another view* of the same
image (swapped prediction). With z_t the L2-normalised embedding of view t and q_s the code
(soft assignment) of view s,

    L(z_t, q_s) = - sum_k q_s^(k) log p_t^(k),     p_t^(k) = softmax_k(z_t . c_k / tau).

Trivial solutions (every image in one prototype) are ruled out by computing the codes Q of a batch
with the **equipartition constraint**: the B samples are spread evenly over the K prototypes. That is
an entropy-regularised optimal-transport problem, solved by a few Sinkhorn-Knopp iterations on
exp(scores / epsilon) -- written out in :func:`sinkhorn`, in the log domain so that a small epsilon
cannot overflow. Multi-crop adds small, cheap views that only predict (they never assign).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import mlp
from ..views import multi_crop


def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, n_iters: int = 3) -> torch.Tensor:
    """The assignment matrix Q (B x K) of a batch: rows are samples and each sums to 1; columns are
    prototypes and each receives (close to) B / K of the batch. Sinkhorn-Knopp on exp(scores / epsilon),
    alternating the two normalisations, computed on logarithms (no overflow for any epsilon > 0).

    Adding a constant to every score changes nothing: it cancels in the normalisations.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (batch, prototypes) matrix, got shape {tuple(scores.shape)}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    if n_iters < 1:
        raise ValueError(f"n_iters must be >= 1, got {n_iters!r}")
    b, k = scores.shape
    log_q = scores.double() / epsilon
    for _ in range(n_iters):
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(k)  # each prototype: 1 / K
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(b)  # each sample: 1 / B
    return (log_q.exp() * b).to(scores.dtype)  # rows sum to 1


class SwAV(nn.Module):
    """Encoder + projection head + K prototypes, trained by swapped prediction over multi-crop views.

    ``freeze_prototypes_steps``: the prototypes get no gradient for the first steps (as in the paper).
    ``queue_length`` / ``queue_start``: a queue of past embeddings of the large crops, prepended to the
    batch when computing codes, from step ``queue_start`` on (small batches need it).
    Further keyword arguments go to :func:`views.multi_crop` (e.g. ``large_scale``, ``jitter_strength``).
    ``equipartition=False`` replaces Sinkhorn by plain softmax targets, which lets the assignments
    collapse (the notebook's demonstration of why the constraint is needed).
    """

    def __init__(self, backbone: nn.Module, n_prototypes: int = 32, projection_dim: int = 32,
                 temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iters: int = 3,
                 n_large: int = 2, n_small: int = 2, freeze_prototypes_steps: int = 0,
                 queue_length: int = 0, queue_start: int = 0, equipartition: bool = True, **view_args):
        super().__init__()
        if not temperature > 0 or not epsilon > 0:
            raise ValueError(f"temperature and epsilon must be > 0, got {temperature!r} and {epsilon!r}")
        if n_large < 2:
            raise ValueError("swapped prediction needs at least 2 large crops")
        self.backbone = backbone
        self.projector = mlp(backbone.out_dim, 2 * backbone.out_dim, projection_dim)
        self.prototypes = nn.Linear(projection_dim, n_prototypes, bias=False)  # rows are c_k
        self.temperature, self.epsilon, self.sinkhorn_iters = temperature, epsilon, sinkhorn_iters
        self.n_large, self.n_small = n_large, n_small
        self.freeze_prototypes_steps, self.queue_start = freeze_prototypes_steps, queue_start
        self.equipartition = equipartition
        self.view_args = view_args  # passed to views.multi_crop (crop scales, jitter, ...)
        self.register_buffer("queue", torch.zeros(n_large, queue_length, projection_dim))
        self.step = 0
        self.hparams = {"n_prototypes": n_prototypes, "projection_dim": projection_dim, "temperature": temperature,
                        "epsilon": epsilon, "sinkhorn_iters": sinkhorn_iters, "n_large": n_large, "n_small": n_small,
                        "freeze_prototypes_steps": freeze_prototypes_steps, "queue_length": queue_length,
                        "queue_start": queue_start, "equipartition": equipartition, "views": view_args}
        self.normalize_prototypes()

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def after_init(self) -> None:
        """Called by ``fit`` after it re-initialises the layers: prototypes back on the unit sphere."""
        self.normalize_prototypes()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation f(x)."""
        return self.backbone(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """z: the L2-normalised projection that is compared with the prototypes."""
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """z . c_k for every prototype (B x K); the prototypes are detached while they are frozen."""
        weight = self.prototypes.weight
        if self.step < self.freeze_prototypes_steps:
            weight = weight.detach()
        return z @ weight.T

    @torch.no_grad()
    def codes(self, scores: torch.Tensor, crop: int) -> torch.Tensor:
        """The targets q of one large crop: Sinkhorn (with the queue prepended once it has started)."""
        if not self.equipartition:
            return torch.softmax(scores / self.epsilon, dim=1)
        n_queue = self.queue.shape[1] if self.step >= self.queue_start else 0
        if n_queue:
            scores = torch.cat([self.queue[crop] @ self.prototypes.weight.T, scores])
        return sinkhorn(scores, self.epsilon, self.sinkhorn_iters)[n_queue:]  # the batch's own rows

    def loss(self, batch):
        images, _ = batch
        crops = multi_crop(images, self.n_large, self.n_small, **self.view_args)
        z = [self.embed(c) for c in crops]
        scores = [self.scores(zi) for zi in z]
        total, q_entropy = 0.0, 0.0
        for s in range(self.n_large):  # each large crop assigns; every other crop predicts its codes
            q = self.codes(scores[s].detach(), s)
            q_entropy = q_entropy + torch.distributions.Categorical(probs=q.mean(0)).entropy()
            predict = [t for t in range(len(crops)) if t != s]
            total = total + sum(-(q * F.log_softmax(scores[t] / self.temperature, dim=1)).sum(1).mean()
                                for t in predict) / len(predict)
        with torch.no_grad():
            if self.queue.shape[1] > 0:
                for s in range(self.n_large):
                    self.queue[s] = torch.cat([z[s].detach(), self.queue[s]])[: self.queue.shape[1]]
            used = scores[0].argmax(1).unique().numel()
        return total / self.n_large, {"prototypes_used": used, "code_entropy": q_entropy / self.n_large}

    def after_step(self, step: int, steps: int) -> None:
        """Called by ``fit`` after each optimiser step: count steps, re-normalise the prototypes."""
        self.step = step + 1
        self.normalize_prototypes()
