"""The Poincaré ball: the hyperbolic geometry of Hyp-OW's embeddings, written out.

Doan et al., "Hyp-OW: Exploiting Hierarchical Structure Learning with Hyperbolic Distance Enhances Open World
Object Detection", AAAI 2024 (chapter 4's open-world notebook builds on these operations).

The ball of curvature -c is {x in R^d : c ||x||^2 < 1}. Its geometry in the closed forms of Ganea, Bécigneul &
Hofmann ("Hyperbolic Neural Networks", NeurIPS 2018):

    Möbius addition   x (+)_c y = ((1 + 2c <x, y> + c ||y||^2) x + (1 - c ||x||^2) y)
                                  / (1 + 2c <x, y> + c^2 ||x||^2 ||y||^2)
    distance          d_c(x, y) = 2 / sqrt(c) * artanh( sqrt(c) || (-x) (+)_c y || )
    exponential map   exp_0(v)  = tanh(sqrt(c) ||v||) v / (sqrt(c) ||v||)         (tangent space at 0 -> ball)
    logarithmic map   log_0(y)  = artanh(sqrt(c) ||y||) y / (sqrt(c) ||y||)       (ball -> tangent space at 0)

Why a hierarchy fits: the volume of a hyperbolic ball grows exponentially with its radius, as the number of
leaves of a tree grows with its depth. General concepts (superclasses) sit near the origin, close to all their
children; specific ones (classes) sit near the boundary, far from each other. As c -> 0 every formula becomes
the Euclidean one (d_c(x, y) -> 2 ||x - y||: the ball's metric is conformal with factor 2 at the origin).

Every function works on the last axis and broadcasts over the others.
"""

from __future__ import annotations

import torch

MIN_NORM = 1e-15  # keeps 0 / 0 out of the maps at the origin
BOUNDARY_EPS = 1e-5  # points are kept this far (relatively) inside the ball's boundary


def _check(c: float) -> float:
    if not c > 0:
        raise ValueError(f"the curvature c must be positive (the ball has curvature -c), got {c}")
    return float(c)


def project(x: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Pull points that rounding put on or outside the boundary back inside: ||x|| <= (1 - eps) / sqrt(c)."""
    radius = (1 - BOUNDARY_EPS) / _check(c) ** 0.5
    norm = x.norm(dim=-1, keepdim=True).clamp_min(MIN_NORM)
    return torch.where(norm > radius, x / norm * radius, x)


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """x (+)_c y, the ball's 'addition' (not commutative, not associative; 0 is its identity and -x the inverse)."""
    c = _check(c)
    xy = (x * y).sum(-1, keepdim=True)
    x2, y2 = (x * x).sum(-1, keepdim=True), (y * y).sum(-1, keepdim=True)
    numerator = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return numerator / (1 + 2 * c * xy + c ** 2 * x2 * y2).clamp_min(MIN_NORM)


def distance(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """d_c(x, y), the geodesic distance in the ball (broadcast over the leading axes)."""
    sqrt_c = _check(c) ** 0.5
    norm = mobius_add(-x, y, c).norm(dim=-1)
    return 2 / sqrt_c * torch.atanh((sqrt_c * norm).clamp(max=1 - BOUNDARY_EPS))


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """d_c between every row of x (n, d) and every row of y (k, d): (n, k)."""
    return distance(x[:, None, :], y[None, :, :], c)


def expmap0(v: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """exp_0(v): a tangent vector at the origin (any vector of R^d, e.g. a network's output) onto the ball."""
    sqrt_c = _check(c) ** 0.5
    norm = v.norm(dim=-1, keepdim=True).clamp_min(MIN_NORM)
    return project(torch.tanh(sqrt_c * norm) * v / (sqrt_c * norm), c)


def logmap0(y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """log_0(y): a point of the ball back to the tangent space at the origin (the inverse of exp_0)."""
    sqrt_c = _check(c) ** 0.5
    norm = y.norm(dim=-1, keepdim=True).clamp_min(MIN_NORM)
    return torch.atanh((sqrt_c * norm).clamp(max=1 - BOUNDARY_EPS)) * y / (sqrt_c * norm)


def tangent_mean(points: torch.Tensor, c: float = 1.0, dim: int = 0) -> torch.Tensor:
    """A centroid of points in the ball: the mean of their log_0 images, mapped back by exp_0. A cheap stand-in for
    the Fréchet mean, exact for points on one geodesic through the origin (where log_0 is proportional to arc
    length)."""
    return expmap0(logmap0(points, c).mean(dim), c)


def einstein_midpoint(points: torch.Tensor, c: float = 1.0, dim: int = 0) -> torch.Tensor:
    """The Einstein midpoint, Hyp-OW's centroid: map the points to the Klein model, k = 2 p / (1 + c ||p||^2),
    average them weighted by their Lorentz factors gamma = 1 / sqrt(1 - c ||k||^2), and map back,
    p = k / (1 + sqrt(1 - c ||k||^2)). Points far from the origin weigh more, as they do in the hyperbolic mean."""
    klein, gamma = _klein(points, _check(c))
    return _from_klein((gamma * klein).sum(dim) / gamma.sum(dim), c)


def einstein_midpoints(points: torch.Tensor, labels: torch.Tensor, n: int, c: float = 1.0) -> torch.Tensor:
    """The Einstein midpoint of each label's points, all at once: points (m, d), labels (m,) in 0..n-1 -> (n, d).
    A label without points gets the origin."""
    klein, gamma = _klein(points, _check(c))
    weighted = torch.zeros(n, points.shape[-1], dtype=points.dtype, device=points.device)
    weighted = weighted.index_add(0, labels, gamma * klein)
    total = torch.zeros(n, 1, dtype=points.dtype, device=points.device).index_add(0, labels, gamma)
    return _from_klein(weighted / total.clamp_min(MIN_NORM), c)


def _klein(points: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Points of the ball in the Klein model, and their Lorentz factors."""
    klein = 2 * points / (1 + c * (points * points).sum(-1, keepdim=True))
    return klein, 1 / (1 - c * (klein * klein).sum(-1, keepdim=True)).clamp_min(MIN_NORM).sqrt()


def _from_klein(mid: torch.Tensor, c: float) -> torch.Tensor:
    return project(mid / (1 + (1 - c * (mid * mid).sum(-1, keepdim=True)).clamp_min(0).sqrt()), c)
