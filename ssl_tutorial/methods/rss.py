"""Robust self-supervised training (RSS): out-of-domain unlabelled data, through DRO and self-training.

Saberi et al., "Out-Of-Domain Unlabeled Data Improves Generalization", ICLR 2024.
Taught in notebooks/04_discovery/04_ood_unlabeled.ipynb.

m labelled points (x_i, y_i) come from the domain we are tested on; n unlabelled points x'_j come from a domain
that may have moved. RSS minimises a distributionally robust (DRO) loss on both, with the model's own
pseudo-labels h_theta(x') = sign(theta . x') on the unlabelled points:

    L(theta) = 1/m sum_i phi_gamma(x_i, y_i; theta)  +  lambda/n sum_j phi_gamma'(x'_j, h_theta(x'_j); theta)

    phi_gamma(x, y; theta) = sup_z  loss(z, y; theta) - gamma c(z, x)          (Wasserstein DRO, as a penalty)

For the 0-1 loss of a linear classifier and the cost c(z, x) = ||z - x||, the sup has a closed form. An adversary
can push x onto the decision boundary at a price of gamma times its distance to it, rho = y theta . x / ||theta||;
it gains 1 by doing so. If x is already misclassified, it gains 1 for free. So

    phi_gamma(x, y; theta) = clamp(1 - gamma rho, 0, 1)       (a ramp: the loss of points within 1/gamma of the boundary)

and with the pseudo-label, rho = |theta . x'| / ||theta||. Without robustness (gamma' -> infinity) the unlabelled
term is 0 for every theta: a classifier always agrees with its own pseudo-labels, so self-training with the 0-1
loss learns nothing. The robust version penalises boundaries that pass close to many unlabelled points. That is
the cluster assumption, made into a loss. (The official synthetic code uses the same clipped ramp on theta . x
without dividing by ||theta||, with weight decay on theta; here the loss depends on theta's direction only.)

Departures from the official code, said in the notebook: theta starts at the labelled mean (1/m) sum y_i x_i
instead of 20 random restarts, and lambda, gamma, gamma' are fixed instead of searched on the test set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

METHODS = ("ERM", "self-training", "RSS")


def robust_loss(distance: torch.Tensor, gamma: float) -> torch.Tensor:
    """phi_gamma: the DRO of the 0-1 loss at signed distance ``distance`` from the boundary, clamp(1 - gamma rho, 0, 1)."""
    return (1 - gamma * distance).clamp(0, 1)


def signed_distance(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """theta . x / ||theta||, batched: theta (D, d), x (D, k, d) -> (D, k)."""
    return (x @ theta.unsqueeze(-1)).squeeze(-1) / theta.norm(dim=-1, keepdim=True)


def rss_objective(theta, x_l, y_l, x_u=None, lam: float = 3.0, gamma: float = 0.5, gamma_u: float = 0.3):
    """L(theta), one value per draw (D,). Without unlabelled points (or with lam = 0), this is ERM's robust loss."""
    loss = robust_loss(y_l * signed_distance(theta, x_l), gamma).mean(-1)
    if x_u is not None and x_u.shape[-2] > 0 and lam > 0:
        pseudo_distance = signed_distance(theta, x_u).abs()  # h_theta(x') (theta . x') = |theta . x'|
        loss = loss + lam * robust_loss(pseudo_distance, gamma_u).mean(-1)
    return loss


def _as_batch(x_l, y_l, x_u):
    """float tensors with a leading draws axis; one clear error for shapes that do not fit."""
    x_l, y_l = torch.as_tensor(np.asarray(x_l), dtype=torch.float32), torch.as_tensor(np.asarray(y_l),
                                                                                      dtype=torch.float32)
    single = x_l.dim() == 2
    if single:
        x_l, y_l = x_l[None], y_l[None]
        x_u = None if x_u is None else np.asarray(x_u)[None]
    if x_l.dim() != 3 or y_l.shape != x_l.shape[:2]:
        raise ValueError(f"x_l must be (m, d) or (draws, m, d) with y_l (m,) or (draws, m); got {tuple(x_l.shape)} "
                         f"and {tuple(y_l.shape)}")
    if not torch.all(y_l.abs() == 1):
        raise ValueError("labels y_l must be -1 or +1")
    if x_u is not None:
        x_u = torch.as_tensor(np.asarray(x_u), dtype=torch.float32)
        if x_u.dim() != 3 or x_u.shape[0] != x_l.shape[0] or x_u.shape[2] != x_l.shape[2]:
            raise ValueError(f"x_u must be (n, d) or (draws, n, d) like x_l {tuple(x_l.shape)}; got {tuple(x_u.shape)}")
    return x_l, y_l, x_u, single


def _mean(x_l: torch.Tensor, y_l: torch.Tensor) -> torch.Tensor:
    return (y_l.unsqueeze(-1) * x_l).mean(-2)


def labelled_mean(x_l, y_l) -> np.ndarray:
    """(1/m) sum_i y_i x_i: the plug-in estimate of the class mean, where every learner here starts."""
    x_l, y_l, _, single = _as_batch(x_l, y_l, None)
    theta = _mean(x_l, y_l)
    return theta[0].numpy() if single else theta.numpy()


def train_rss(x_l, y_l, x_u=None, lam: float = 3.0, gamma: float = 0.5, gamma_u: float = 0.3, steps: int = 100,
              lr: float = 0.1) -> np.ndarray:
    """Minimise L(theta) by full-batch Adam from the labelled mean; theta (d,) or, for a stack of draws, (D, d).
    ``x_u=None`` or ``lam=0`` is ERM on the same robust loss."""
    if gamma <= 0 or gamma_u <= 0:
        raise ValueError(f"gamma and gamma_u must be positive (1/gamma is the width of the ramp), got {gamma} and "
                         f"{gamma_u}")
    if lam < 0:
        raise ValueError(f"lam weighs the unlabelled term and cannot be negative, got {lam}")
    x_l, y_l, x_u, single = _as_batch(x_l, y_l, x_u)
    theta = _mean(x_l, y_l).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        loss = rss_objective(theta, x_l, y_l, x_u, lam, gamma, gamma_u).sum()  # draws are independent problems
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    theta = theta.detach().numpy()
    return theta[0] if single else theta


def self_training(x_l, y_l, x_u, rounds: int = 10) -> np.ndarray:
    """Naive self-training, the baseline: label the unlabelled points with the current classifier, refit the class
    mean on labelled and pseudo-labelled points alike, repeat. No robustness: every point counts fully, however far
    it is from the boundary or from the labelled domain."""
    x_l, y_l, x_u, single = _as_batch(x_l, y_l, x_u)
    theta = _mean(x_l, y_l)
    if x_u is not None and x_u.shape[1] > 0:
        labelled_sum = theta * x_l.shape[1]
        for _ in range(rounds):
            pseudo = torch.sign((x_u @ theta.unsqueeze(-1)).squeeze(-1))
            theta = (labelled_sum + (pseudo.unsqueeze(-1) * x_u).sum(-2)) / (x_l.shape[1] + x_u.shape[1])
    theta = theta.numpy()
    return theta[0] if single else theta


def fit_method(method: str, x_l, y_l, x_u=None, rounds: int = 10, **rss) -> np.ndarray:
    """theta for one of ``METHODS`` ("ERM" ignores x_u); ``rounds`` goes to :func:`self_training`, ``rss`` to
    :func:`train_rss`."""
    if method == "ERM":
        return train_rss(x_l, y_l, None, **rss)
    if method == "self-training":
        return self_training(x_l, y_l, x_u, rounds)
    if method == "RSS":
        return train_rss(x_l, y_l, x_u, **rss)
    raise ValueError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")


def error_table(world, ns, m: int = 10, draws: int = 10, seed: int = 0, methods=METHODS, contamination: float = 0.0,
                outlier_distance: float = 12.0, **rss) -> pd.DataFrame:
    """The exact test error (%) of each method for each number of unlabelled points n, over ``draws`` independent
    labelled and unlabelled samples. Columns: n, method, draw, error. ``contamination`` and ``outlier_distance`` go
    to ``world.unlabelled``, ``rss`` to :func:`train_rss`."""
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from: {', '.join(METHODS)}")
    x_l, y_l = world.labelled(m, draws=draws, seed=seed)
    erm = world.error(fit_method("ERM", x_l, y_l, **rss)) if "ERM" in methods else None  # the same at every n
    rows = []
    for n in ns:
        x_u = world.unlabelled(n, draws=draws, seed=seed, contamination=contamination,
                               outlier_distance=outlier_distance)
        for name in methods:
            errors = erm if name == "ERM" else world.error(fit_method(name, x_l, y_l, x_u, **rss))
            rows += [{"n": n, "method": name, "draw": k, "error": float(e)} for k, e in enumerate(errors)]
    return pd.DataFrame(rows)
