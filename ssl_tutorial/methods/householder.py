"""Householder projector: latent directions from an orthogonal, low-rank, equal-spectrum first layer.

Song, Zhang, Sebe & Wang, "Householder Projector for Unsupervised Latent Semantics Discovery",
ICCV 2023. Taught in notebooks/05_generative/01_latent_directions.ipynb; what a direction changes is
measured in ``ssl_tutorial/directions.py``.

A generator G(z) = D(A z + b) starts with a linear projection A of the latent code. SeFa (Shen &
Zhou, 2021) finds "semantic" directions in closed form: the right singular vectors of A, i.e. the
eigenvectors of A^T A -- the unit directions n that change the first features most, max ||A n||.
With an unconstrained A these directions come with a spread of singular values. The paper's
abstract makes two claims about them: (a) the large dimensionality of A gives "meaningless
variations" among the directions (most of them barely change the image), and (b) without
orthogonality the top directions are entangled.

The Householder projector builds A from orthogonal pieces with an **equal spectrum**:

    A = U S V^T,    U = H(u_1) ... H(u_k) [:, :r],   V = H(v_1) ... H(v_k) [:, :r],   S = I_r

    H(v) = I - 2 v v^T / ||v||^2          (a Householder reflection: orthogonal, H H^T = I)

so U and V have orthonormal columns for any vectors u_i, v_i (trained freely by gradient descent),
rank(A) = r, and every direction v_j = V[:, j] moves the first features by the same amount. The
directions are read off V directly (with equal singular values any basis of the row space is an SVD,
so ``torch.linalg.svd`` would pick one at random; V is the one the generator was trained with).
A symmetry follows from S = I: for any orthogonal r x r matrix R, (U R, V R) gives the same A = U R R^T V^T,
so *which* orthonormal basis of the row space the directions are is decided by the initialisation,
not by the loss (``rotate_basis``). The paper therefore starts from a pretrained generator: U and
V from the SVD of its first layer, S = I, then fine-tunes (``from_svd``). Here a small VAE decoder
for the shapes world is trained with either first layer (``first="householder"`` or ``"linear"``),
because a VAE trains reliably on a CPU in seconds and a GAN does not.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import ConvNet

FIRST_LAYERS = ("householder", "linear")


def householder_product(vectors: torch.Tensor, n_columns: int | None = None) -> torch.Tensor:
    """The first ``n_columns`` columns of Q = H(v_1) H(v_2) ... H(v_k) for ``vectors`` of shape (k, n).

    Q is orthogonal for any non-zero vectors. Computed by applying the reflections, right to left, to
    the first columns of the identity (k rank-one updates, never the n x n matrix when n_columns < n).
    """
    if vectors.ndim != 2:
        raise ValueError(f"vectors must have shape (k, n), got {tuple(vectors.shape)}")
    k, n = vectors.shape
    n_columns = n if n_columns is None else n_columns
    if not 1 <= n_columns <= n:
        raise ValueError(f"n_columns must lie in 1..{n}, got {n_columns}")
    Q = torch.eye(n, n_columns, dtype=vectors.dtype, device=vectors.device)
    for v in vectors.flip(0):  # Q <- H(v) Q, last reflection first
        v = v / v.norm().clamp_min(1e-12)
        Q = Q - 2 * v[:, None] * (v @ Q)[None, :]
    return Q


def householder_vectors(Q: torch.Tensor) -> torch.Tensor:
    """Reflection vectors (r, n) whose product's first r columns are ``Q`` (n, r, orthonormal columns):
    the inverse of :func:`householder_product`, by Householder QR with a positive diagonal."""
    if Q.ndim != 2 or Q.shape[1] > Q.shape[0]:
        raise ValueError(f"Q must have shape (n, r) with r <= n, got {tuple(Q.shape)}")
    if not torch.allclose(Q.T @ Q, torch.eye(Q.shape[1], dtype=Q.dtype, device=Q.device), atol=1e-4):
        raise ValueError("Q must have orthonormal columns (Q^T Q = I)")
    n, r = Q.shape
    eye = torch.eye(n, dtype=Q.dtype, device=Q.device)
    R, vectors = Q.clone(), []
    for j in range(r):  # H(v_j) maps column j to e_j, leaving columns < j alone
        x = R[:, j].clone()
        x[:j] = 0
        v = x - x.norm() * eye[j]
        if v.norm() < 1e-6:  # already e_j: any reflection that fixes e_j will do, e.g. across the last axis
            if j == n - 1:  # ... unless no axis is left: r = n reflections always have det (-1)^n
                raise ValueError(f"a square Q with det {(-1) ** (n + 1)} is not a product of {n} reflections; "
                                 "flip the sign of one column")
            v = eye[n - 1]
        v = v / v.norm()
        R = R - 2 * v[:, None] * (v @ R)[None, :]
        vectors.append(v)
    return torch.stack(vectors)  # Q = H(v_1) ... H(v_r) [:, :r] because H(v_r) ... H(v_1) Q = I[:, :r]


class HouseholderLinear(nn.Module):
    """y = U S V^T z + b with U, V Householder products (``rank`` orthonormal columns) and S = I (fixed)."""

    def __init__(self, in_dim: int, out_dim: int, rank: int = 6, n_reflections: int | None = None):
        super().__init__()
        if not 1 <= rank <= min(in_dim, out_dim):
            raise ValueError(f"rank must lie in 1..{min(in_dim, out_dim)}, got {rank}")
        k = n_reflections or rank
        self.u = nn.Parameter(torch.empty(k, out_dim))
        self.v = nn.Parameter(torch.empty(k, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.in_dim, self.out_dim, self.rank = in_dim, out_dim, rank
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # reflection vectors near the coordinate axes: U and V start close to (minus) the first `rank`
        # columns of the identity, so the directions start as latent axes; training rotates them freely
        for p in (self.u, self.v):
            nn.init.normal_(p, std=0.1)
            with torch.no_grad():
                p[:, :len(p)] += torch.eye(len(p), min(len(p), p.shape[1]))
        nn.init.zeros_(self.bias)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """U (out_dim, rank) and V (in_dim, rank), both with orthonormal columns."""
        return householder_product(self.u, self.rank), householder_product(self.v, self.rank)

    @property
    def weight(self) -> torch.Tensor:
        U, V = self.factors()
        return U @ V.T  # S = I

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        U, V = self.factors()
        return (z @ V) @ U.T + self.bias

    @torch.no_grad()
    def set_factors(self, U: torch.Tensor, V: torch.Tensor) -> None:
        """Make the layer's factors exactly ``U`` (out_dim, rank) and ``V`` (in_dim, rank)."""
        if U.shape != (self.out_dim, self.rank) or V.shape != (self.in_dim, self.rank):
            raise ValueError(f"U and V must have shapes {(self.out_dim, self.rank)} and {(self.in_dim, self.rank)}, "
                             f"got {tuple(U.shape)} and {tuple(V.shape)}")
        if self.rank == self.in_dim and torch.linalg.det(V.double()) * (-1) ** self.rank < 0:
            U, V = U.clone(), V.clone()  # a square V needs det (-1)^rank: flip one column of both (same U V^T)
            U[:, -1], V[:, -1] = -U[:, -1], -V[:, -1]
        self.u.data = householder_vectors(U.to(self.u)).contiguous()
        self.v.data = householder_vectors(V.to(self.v)).contiguous()


class Decoder(nn.Module):
    """G(z) = D(A z + b): the first projection A (``first``), reshaped to a 4x4 map, then upsampling convs."""

    def __init__(self, latent_dim: int = 16, size: int = 16, width: int = 32, first: str = "householder",
                 rank: int = 6):
        super().__init__()
        if first not in FIRST_LAYERS:
            raise ValueError(f"unknown first layer {first!r}; choose one of: {', '.join(FIRST_LAYERS)}")
        if size not in (16, 32, 64):
            raise ValueError(f"the decoder draws 16, 32 or 64 pixel images, got size={size}")
        n_first = width * 4 * 4
        self.first = HouseholderLinear(latent_dim, n_first, rank) if first == "householder" else \
            nn.Linear(latent_dim, n_first)
        ups, c = [], width
        for _ in range({16: 2, 32: 3, 64: 4}[size]):
            ups += [nn.Upsample(scale_factor=2), nn.Conv2d(c, max(c // 2, 16), 3, padding=1),
                    nn.BatchNorm2d(max(c // 2, 16)), nn.ReLU(inplace=True)]
            c = max(c // 2, 16)
        self.body = nn.Sequential(nn.ReLU(), *ups, nn.Conv2d(c, 3, 3, padding=1))
        self.width, self.latent_dim = width, latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.first(z).view(len(z), self.width, 4, 4)
        return torch.sigmoid(self.body(h))


class LatentVAE(nn.Module):
    """A VAE (Kingma & Welling 2014) whose decoder starts with the first layer A to analyse.

    loss = E_q ||x - G(z)||^2 / (2 sigma^2)  +  beta * KL(q(z|x) || N(0, I)),   z = mu + sigma_q * eps

    with a fixed pixel noise sigma = ``SIGMA``; the loss is reported per pixel.
    """

    SIGMA = 0.05

    def __init__(self, latent_dim: int = 16, size: int = 16, first: str = "householder", rank: int = 6,
                 width: int = 32, beta: float = 1.0, widths=(32, 64, 64)):
        super().__init__()
        self.encoder = ConvNet(widths)
        self.to_posterior = nn.Linear(widths[-1], 2 * latent_dim)
        self.decoder = Decoder(latent_dim, size, width, first, rank)
        self.latent_dim, self.size, self.rank, self.beta = latent_dim, size, rank, beta
        self.hparams = {"latent_dim": latent_dim, "size": size, "first": first, "rank": rank, "width": width,
                        "beta": beta, "widths": tuple(widths)}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of each image."""
        mu, logvar = self.to_posterior(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-8, 8)

    def loss(self, batch):
        x, _ = batch
        if x.shape[-1] != self.size:
            raise ValueError(f"this VAE draws {self.size}-pixel images, got {x.shape[-1]} pixels")
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.mse_loss(self.decoder(z), x, reduction="none").flatten(1).sum(1).mean() / (2 * self.SIGMA ** 2)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
        n_pixels = x[0].numel()
        return (recon + self.beta * kl) / n_pixels, {"kl": kl.detach()}

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.decoder(z.to(next(self.parameters()).device)).cpu()

    def directions(self, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The top-``k`` latent directions (rows, unit length) and their singular values.

        Householder: the columns of V, all with singular value 1. Linear: SeFa, the right singular
        vectors of the first layer's weight, largest singular value first.
        """
        k = k or self.rank
        first = self.decoder.first
        with torch.no_grad():
            if isinstance(first, HouseholderLinear):
                _, V = first.factors()
                return V.T[:k].cpu(), torch.ones(min(k, V.shape[1]))
            _, S, Vh = torch.linalg.svd(first.weight.detach(), full_matrices=False)
            return Vh[:k].cpu(), S[:k].cpu()


def rotate_basis(model: LatentVAE, R: torch.Tensor) -> LatentVAE:
    """A copy of a Householder VAE with (U, V) replaced by (U R, V R) for an orthogonal r x r R: the same
    generator (A = U R R^T V^T = U V^T), other directions."""
    if not isinstance(model.decoder.first, HouseholderLinear):
        raise ValueError("rotate_basis needs a VAE with first='householder'")
    rotated = copy.deepcopy(model)
    U, V = model.decoder.first.factors()
    R = R.to(U)
    rotated.decoder.first.set_factors(U @ R, V @ R)
    return rotated


def from_svd(model: LatentVAE, rank: int) -> LatentVAE:
    """The paper's recipe: a Householder VAE that starts from a trained unconstrained one. Its first layer
    is U_r V_r^T from the top-``rank`` SVD of the trained layer (S set to I); encoder and the rest of the
    decoder are copied. Fine-tune it with ``fit(..., init=False)``."""
    first = model.decoder.first
    if isinstance(first, HouseholderLinear):
        raise ValueError("from_svd needs a VAE with first='linear'")
    new = LatentVAE(**dict(model.hparams, first="householder", rank=rank))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("decoder.first.")}
    missing, unexpected = new.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("decoder.first.") for k in missing), (missing, unexpected)
    U, _, Vh = torch.linalg.svd(first.weight.detach().cpu(), full_matrices=False)
    new.decoder.first.set_factors(U[:, :rank], Vh[:rank].T)
    new.decoder.first.bias.data.copy_(first.bias.detach().cpu())
    return new


def traverse(model: LatentVAE, z: torch.Tensor, direction: torch.Tensor, alphas) -> torch.Tensor:
    """Images G(z + alpha * direction) for every alpha: shape (len(alphas), N, 3, H, W)."""
    direction = direction / direction.norm()
    return torch.stack([model.generate(z + float(a) * direction) for a in alphas])
