"""Hydra (SimLAP): "Rethinking Positive Pairs in Contrastive Learning".

Wu, Atito, Feng, Mo, Kittler & Awais, arXiv 2410.18200 (2024). Taught in notebooks/01_foundations/05_hydra.ipynb.

SimCLR's positives are two views of one image. Hydra lets **any two classes** be a positive pair:
an anchor x_a of class i is paired with the samples of a class j drawn at random (j = i is allowed).
Two different classes are only alike in some respects, so the comparison happens in a subspace
chosen by a **gate conditioned on the class pair**,

    g_ij = sigmoid(MLP((e_i + e_j) / 2))  in (0, 1)^d,      e = a learned embedding of each class,

and the features are compared after filtering: z~ = l2(g_ij * z). For anchor a (class i, partner
class j), with P the samples of class j in the batch, and N the samples of classes other than i and j
(the negatives), the loss is the multi-positive InfoNCE

    L_a = 1/|P| sum_{p in P} [ log( exp(s_ap / tau) + sum_{n in N} exp(s_an / tau) ) - s_ap / tau ],
    s_ab = < l2(g_ij * z_a), l2(g_ij * z_b) >.

Gates and encoder are learned together. The gate of a pair opens the dimensions the two classes
share, so the gates reveal how classes relate; and because every pair needs *some* subspace,
the representation spreads over many dimensions (less dimensional collapse than SimCLR).
Unlike SimCLR, Hydra needs the class labels to index the gates (it is weakly supervised).
The authors' code is `erow/vitookit` (``simlap.py``); this is a re-implementation from the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nets import mlp
from ..views import Views

PAIRINGS = ("arbitrary", "identical", "distinct")


class PairGate(nn.Module):
    """g_ij = sigmoid(MLP((e_i + e_j) / 2)): one gate in (0, 1)^d per (unordered) class pair."""

    def __init__(self, n_classes: int, dim: int, embed_dim: int = 32, hidden_dim: int = 64):
        super().__init__()
        self.n_classes = n_classes
        self.embedding = nn.Embedding(n_classes, embed_dim)  # e_i
        self.mlp = mlp(embed_dim, hidden_dim, dim)

    def forward(self, y1: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp((self.embedding(y1) + self.embedding(y2)) / 2))

    @torch.no_grad()
    def table(self) -> torch.Tensor:
        """All gates, shape (C, C, d): ``table()[i, j]`` is g_ij (symmetric in i and j)."""
        was_training = self.training
        self.eval()
        c = torch.arange(self.n_classes, device=self.embedding.weight.device)
        i, j = torch.meshgrid(c, c, indexing="ij")
        gates = self(i.reshape(-1), j.reshape(-1)).view(self.n_classes, self.n_classes, -1)
        self.train(was_training)
        return gates


def gated_logits(z: torch.Tensor, gate: torch.Tensor, temperature: float) -> torch.Tensor:
    """s_ab / tau for every anchor a (row) and sample b (column), each anchor with its own gate.

    ``z`` is (B, d) and ``gate`` (B, d): row a of ``gate`` filters both z_a and every z_b. Written with
    matrix products instead of a (B, B, d) tensor:
    <g_a * z_a, g_a * z_b> = ((g^2 * z) z^T)_ab and ||g_a * z_b||^2 = (g^2 (z^2)^T)_ab.
    """
    g2 = gate * gate
    dot = (g2 * z) @ z.T  # <g_a z_a, g_a z_b>
    norm_anchor = (g2 * z * z).sum(1, keepdim=True).clamp_min(1e-12).sqrt()  # ||g_a z_a||
    norm_other = (g2 @ (z * z).T).clamp_min(1e-12).sqrt()  # ||g_a z_b||
    return dot / (norm_anchor * norm_other) / temperature


def hydra_loss(z: torch.Tensor, labels: torch.Tensor, partner: torch.Tensor, gate: torch.Tensor,
               temperature: float = 0.2) -> torch.Tensor:
    """The multi-positive InfoNCE above, averaged over the anchors that have at least one positive.

    ``partner[a]`` is the class paired with anchor a; its positives are the other samples of that class.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if z.ndim != 2 or gate.shape != z.shape or labels.shape != partner.shape or len(labels) != len(z):
        raise ValueError(f"expected z and gate of shape (B, d) and labels, partner of shape (B,); got "
                         f"{tuple(z.shape)}, {tuple(gate.shape)}, {tuple(labels.shape)}, {tuple(partner.shape)}")
    logits = gated_logits(z, gate, temperature)
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    positive = (labels.view(1, -1) == partner.view(-1, 1)) & ~self_mask  # [a, b]: b is of a's partner class
    negative = (labels.view(1, -1) != partner.view(-1, 1)) & (labels.view(1, -1) != labels.view(-1, 1))
    log_neg = torch.logsumexp(logits.masked_fill(~negative, float("-inf")), dim=1, keepdim=True)
    per_pair = torch.logaddexp(logits, log_neg) - logits  # (B, B): log(e^s_ap + sum_n e^s_an) - s_ap
    n_pos = positive.sum(1)
    has = n_pos > 0
    if not has.any():
        raise ValueError("no anchor has a positive in this batch: use a larger batch or fewer classes")
    per_anchor = (per_pair * positive).sum(1)[has] / n_pos[has]
    return per_anchor.mean()


class Hydra(nn.Module):
    """Encoder f + projection head + pair gates, trained with :func:`hydra_loss` on labelled images.

    ``pairing``: "arbitrary" (the partner class is that of a random other sample in the batch, as in
    the paper), "identical" (the partner is the anchor's own class: supervised contrastive learning)
    or "distinct" (always another class).
    """

    def __init__(self, backbone: nn.Module, n_classes: int, projection_dim: int = 64, temperature: float = 0.2,
                 pairing: str = "arbitrary", views: Views | None = None):
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.backbone = backbone
        self.projector = mlp(backbone.out_dim, 2 * backbone.out_dim, projection_dim)
        self.gate = PairGate(n_classes, projection_dim)
        self.n_classes, self.temperature, self.pairing = n_classes, temperature, pairing
        self.views = views or Views(crop_scale=(0.5, 1.0))
        self.hparams = {"n_classes": n_classes, "projection_dim": projection_dim, "temperature": temperature,
                        "pairing": pairing, "views": repr(self.views)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation f(x)."""
        return self.backbone(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """z = g(f(x)), before any gate."""
        return self.projector(self.backbone(x))

    def partners(self, labels: torch.Tensor) -> torch.Tensor:
        if self.pairing == "identical":
            return labels
        if self.pairing == "distinct":
            shift = torch.randint(1, self.n_classes, labels.shape).to(labels.device)
            return (labels + shift) % self.n_classes
        return labels[torch.randperm(len(labels)).to(labels.device)]

    def loss(self, batch):
        images, labels = batch
        if labels is None or labels.min() < 0 or labels.max() >= self.n_classes:
            raise ValueError(f"Hydra needs class labels in [0, {self.n_classes}) to choose the gates")
        z = self.projector(self.backbone(self.views(images)))
        partner = self.partners(labels)
        gate = self.gate(labels, partner)
        loss = hydra_loss(z, labels, partner, gate, self.temperature)
        return loss, {"gate_open": gate.mean().detach()}
