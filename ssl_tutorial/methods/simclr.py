"""SimCLR: "A Simple Framework for Contrastive Learning of Visual Representations".

Chen, Kornblith, Norouzi & Hinton, ICML 2020. Taught in notebooks/01_foundations/03_simclr.ipynb
(and the temperature story in 04_temperature.ipynb).

Two random views of every image go through the encoder f and a projection head g; each view must
pick out its partner among all 2N views of the batch. With z = g(f(x)) and s_ij the cosine
similarity, the loss of anchor i whose positive is j (InfoNCE, "NT-Xent") is

    l(i, j) = -log  exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)

averaged over all 2N anchors. The 2N - 2 other views are the negatives. The temperature tau sets
how hard the loss looks at the closest negatives: the gradient on negative k is proportional to
its Boltzmann weight exp(s_ik / tau) / sum_{k' != i, j} exp(s_ik' / tau) (Wang & Liu, CVPR 2021).
The representation used afterwards is f(x), before the projection head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import mlp
from ..views import Views


def info_nce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5, top_k: int | None = None,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE over two batches of embeddings: row i of ``z_a`` and row i of ``z_b`` are positives.

    Every row of both batches is an anchor (2N anchors); its negatives are the 2N - 2 rows that are
    neither itself nor its partner. ``top_k`` keeps only the k most similar negatives in the
    denominator (the hard-negative variant, which lets a larger temperature keep uniformity).
    ``groups`` (N,) keeps only the negatives of the anchor's group (BSS's oracle: same-domain negatives).
    """
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must both have shape (N, D), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    n = z_a.shape[0]
    if n < 2:
        raise ValueError("info_nce needs a batch of at least 2 pairs (otherwise there are no negatives)")
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = z @ z.T / temperature  # (2N, 2N) cosine similarities over tau
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    excluded = torch.eye(2 * n, dtype=torch.bool, device=z.device)  # a view is not its own negative
    if groups is not None:  # nor is another group's view; a row's partner shares its group
        g = torch.cat([groups, groups]).to(z.device)
        excluded = excluded | (g[:, None] != g[None, :])
    if top_k is None:
        return F.cross_entropy(sim.masked_fill(excluded, float("-inf")), partner)
    positive = sim[torch.arange(2 * n), partner].unsqueeze(1)
    negatives = sim.masked_fill(excluded, float("-inf"))
    negatives[torch.arange(2 * n), partner] = float("-inf")
    hardest = negatives.topk(min(top_k, 2 * n - 2), dim=1).values
    logits = torch.cat([positive, hardest], dim=1)
    return F.cross_entropy(logits, torch.zeros(2 * n, dtype=torch.long, device=z.device))


class SimCLR(nn.Module):
    """Encoder f (the backbone) + projection head g, trained with :func:`info_nce` on two views."""

    def __init__(self, backbone: nn.Module, projection_dim: int = 64, hidden_dim: int | None = None,
                 temperature: float = 0.5, views: Views | None = None, top_k: int | None = None):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.backbone = backbone
        hidden_dim = hidden_dim or 2 * backbone.out_dim
        self.projector = mlp(backbone.out_dim, hidden_dim, projection_dim)  # g
        self.temperature = temperature
        self.views = views or Views()
        self.top_k = top_k
        self.hparams = {"projection_dim": projection_dim, "hidden_dim": hidden_dim, "temperature": temperature,
                        "views": repr(self.views), "top_k": top_k}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation f(x) (before the projection head)."""
        return self.backbone(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """z = g(f(x)), L2-normalised: the embedding the loss compares."""
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    def loss(self, batch):
        images, _ = batch  # no labels
        z_a = self.projector(self.backbone(self.views(images)))
        z_b = self.projector(self.backbone(self.views(images)))
        loss = info_nce(z_a, z_b, self.temperature, self.top_k)
        with torch.no_grad():
            a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
            found = ((a @ b.T).argmax(1) == torch.arange(len(a), device=a.device)).float().mean()
        return loss, {"positive_sim": (a * b).sum(1).mean(), "top1": found}
