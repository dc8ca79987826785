"""Guidance by representational alignment: a frozen guide network lends its inductive bias to a target.

Subramaniam, Mayo, Conwell, Poggio, Katz, Cheung & Barbu, "Training the Untrainable: Introducing Inductive
Bias via Representational Alignment" (NeurIPS 2025, arXiv 2410.20035). Taught in notebooks/10_theory/03_untrainable.ipynb;
the target MLP and the guides are in ``cka_guidance_nets.py``.

A network that trains badly on its own (here a deep, plain MLP) is trained with its task loss plus a
layer-wise representational similarity to a FROZEN guide network (here a small ConvNet), under a fixed
mapping m from target layers to guide layers. The similarity is linear CKA on each minibatch: with
the n x p and n x q activations X, Y centred over the batch,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

and the guided loss is

    L = CE(f_target(x), y) + lambda * sum_l (1 - CKA(R_target^l, R_guide^m(l))).

A trained guide passes on knowledge and architectural prior; an untrained (random) guide passes on only
the prior of its architecture, which the paper finds is often enough to make the target trainable.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn


def linear_cka(X: torch.Tensor, Y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Linear CKA between two batches of activations (n, ...): a differentiable scalar in [0, 1].

    Computed in the n x n Gram form, which equals the feature form because
    ||Y^T X||_F^2 = <X X^T, Y Y^T>_F and ||X^T X||_F = ||X X^T||_F; it is the cheaper one when the
    features (a whole conv feature map) outnumber the examples.
    """
    if not isinstance(X, torch.Tensor) or not isinstance(Y, torch.Tensor) or X.ndim == 0 or Y.ndim == 0:
        raise ValueError("linear_cka expects two tensors of shape (n, ...) with the batch first")
    if len(X) != len(Y) or len(X) < 2:
        raise ValueError(f"linear_cka needs two batches of the same size n >= 2, got {len(X)} and {len(Y)}")
    X, Y = (Z.reshape(len(Z), -1) for Z in (X, Y))
    X, Y = (Z if Z.is_floating_point() else Z.float() for Z in (X, Y))
    # centre each feature over the batch; rescale to unit norm (CKA is scale invariant) so that the tiny
    # activations of a deep, badly scaled network do not underflow when squared
    X, Y = (Z - Z.mean(0, keepdim=True) for Z in (X, Y))
    X, Y = (Z / Z.norm().clamp_min(torch.finfo(Z.dtype).tiny) for Z in (X, Y))
    K, L = X @ X.T, Y @ Y.T
    return (K * L).sum() / (K.norm() * L.norm()).clamp_min(eps)  # eps: 0, not nan, for a constant batch


@torch.no_grad()
def cka_matrix(feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
    """Linear CKA of every layer in ``feats_a`` against every layer in ``feats_b``: (len(a), len(b)), for a heatmap."""
    out = torch.zeros(len(feats_a), len(feats_b))
    for i, a in enumerate(feats_a):
        for j, b in enumerate(feats_b):
            out[i, j] = linear_cka(a.detach(), b.detach()).float().cpu()
    return out


def even_mapping(n_target: int, n_guide: int) -> list[tuple[int, int]]:
    """min(n_target, n_guide) pairs, the shallower network's layers spread evenly over the deeper one's,
    the last layer always onto the last, e.g. 8 target layers onto 3 guide layers: (1, 0), (4, 1), (7, 2)."""
    k = min(n_target, n_guide)
    return [((j + 1) * n_target // k - 1, (j + 1) * n_guide // k - 1) for j in range(k)]


class Guided(nn.Module):
    """Train ``target`` with cross entropy plus ``weight`` * sum over ``mapping`` of (1 - CKA) to a frozen ``guide``.

    ``target`` needs ``blocks`` and ``forward_all(x) -> (logits, hidden)``; ``guide`` needs ``blocks`` and
    ``hidden(x)``. The guide is held in a tuple, not as a registered child module, so it is in none of
    ``parameters()``, ``modules()`` and ``state_dict()``: ``fit()``'s optimiser cannot update it,
    ``nets.seeded_init`` (which ``fit(init=True)`` runs) cannot wipe a trained guide, and the checkpoint
    holds the target alone. It is also frozen (``requires_grad=False``), always run in eval mode, and
    moved to the target's device when ``loss`` first sees a batch there. ``guide_id`` (e.g. "random",
    "trained") and a hash of the guide's weights enter ``hparams``, hence ``fit()``'s cache key.
    """

    def __init__(self, target: nn.Module, guide: nn.Module | None = None, weight: float = 1.0,
                 mapping: list[tuple[int, int]] | None = None, guide_id: str = "",
                 pool: torch.Tensor | None = None, pool_batch: int = 256):
        super().__init__()
        # pool: unlabelled inputs to align on (a random batch of pool_batch per step) instead of the labelled batch
        self._pool = () if pool is None else (pool,)
        self.pool_batch = int(pool_batch)
        if weight < 0:
            raise ValueError(f"the guidance weight must be >= 0, got {weight}")
        self.target = target
        self._guide = () if guide is None else (guide.eval().requires_grad_(False),)
        self.weight = float(weight)
        self.guide_id = guide_id
        if guide is None:
            mapping = []
        else:
            n_t, n_g = len(target.blocks), len(guide.blocks)
            mapping = even_mapping(n_t, n_g) if mapping is None else [(int(i), int(j)) for i, j in mapping]
            bad = [(i, j) for i, j in mapping if not (0 <= i < n_t and 0 <= j < n_g)]
            if bad or not mapping:
                raise ValueError(f"mapping pairs must be (target layer in 0..{n_t - 1}, guide layer in 0..{n_g - 1}), "
                                 f"got {bad or 'none'}")
        self.mapping = mapping

    @property
    def guide(self) -> nn.Module | None:
        return self._guide[0] if self._guide else None

    @property
    def hparams(self) -> dict:
        guide = self.guide
        h = hashlib.blake2b(digest_size=8)
        for k, v in (guide.state_dict().items() if guide is not None else ()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        if self._pool:
            h.update(self._pool[0].detach().cpu().contiguous().numpy().tobytes())
            h.update(str(self.pool_batch).encode())
        return {"weight": self.weight, "mapping": [list(p) for p in self.mapping],
                "guide": None if guide is None else repr(guide), "guide_id": self.guide_id,
                "guide_weights": h.hexdigest() if guide is not None else ""}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target(x)

    @torch.no_grad()
    def _guide_features(self, guide, pool: torch.Tensor, device, chunk: int = 1000) -> list:
        """The frozen guide's mapped layers on the whole pool, computed in chunks (an unmapped feature map of the
        whole pool is never held at once); None for the layers no pair maps to."""
        mapped = {j for _, j in self.mapping}
        parts = [[f.to(device) if j in mapped else None for j, f in enumerate(guide.hidden(pool[k:k + chunk].to(device)))]
                 for k in range(0, len(pool), chunk)]
        return [torch.cat([p[j] for p in parts]) if j in mapped else None for j in range(len(parts[0]))]

    def loss(self, batch):
        images, labels = batch
        logits, hidden = self.target.forward_all(images)
        ce = F.cross_entropy(logits, labels)
        logs = {"acc": (logits.argmax(1) == labels).float().mean(), "ce": ce.detach()}
        guide = self.guide
        if guide is None:
            return ce, logs
        p = next(guide.parameters(), None)
        if p is not None and p.device != images.device:
            guide.to(images.device)
        guide.eval()
        if self._pool:  # align on a random batch of unlabelled inputs; the frozen guide's features computed once
            pool = self._pool[0]
            cached = getattr(self, "_pool_features", None)
            if cached is None or next(f for f in cached if f is not None).device != images.device:
                self._pool_features = self._guide_features(guide, pool, images.device)
            idx = torch.randint(len(pool), (min(self.pool_batch, len(pool)),))
            hidden = self.target.forward_all(pool[idx].to(images.device))[1]
            guide_hidden = [None if f is None else f[idx.to(f.device)] for f in self._pool_features]
        else:
            with torch.no_grad():
                guide_hidden = guide.hidden(images)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.weight > 0):
            cka = torch.stack([linear_cka(hidden[i], guide_hidden[j]) for i, j in self.mapping])
        logs["cka"] = cka.mean().detach()
        if self.weight == 0:  # plain supervised training; the CKA is only watched
            return ce, logs
        return ce + self.weight * (1 - cka).sum(), logs

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self(images.to(next(self.parameters()).device)).argmax(1).cpu()
