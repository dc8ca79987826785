"""Gaussian mixtures whose labels are a function of the latent component: the theory's toy world.

Taught in notebooks/10_theory/01_provable_pretraining.ipynb.

A latent component z ~ Uniform{1..K} draws x ~ N(mu_z, sigma^2 I) in d dimensions. The label is either

* **informative**: y = g(z), a fixed map from the K components onto fewer classes (two components
  per class by default), so p(x) pins down everything the label needs; or
* **non-informative**: y = 1[(x - mu_z) . u > 0] for a direction u orthogonal to every mean, so the
  label lives *inside* the components and p(x) says nothing about it.

Everything is seeded. ``bayes_predict`` uses the true parameters: its error rate on a large sample is the
Bayes error, the floor of every learner's risk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

LABEL_RULES = ("informative", "non-informative")


@dataclass
class LabelledMixture:
    """K spherical Gaussians in d dimensions and a label rule. Make one with :func:`make_mixture`."""

    means: np.ndarray  # (K, d)
    sigma: float
    component_class: np.ndarray  # (K,): g(z), the class of each component (informative rule)
    rule: str
    direction: np.ndarray  # (d,): u, unit, orthogonal to every mean (non-informative rule)

    @property
    def n_components(self) -> int:
        return len(self.means)

    @property
    def n_classes(self) -> int:
        return int(self.component_class.max()) + 1 if self.rule == "informative" else 2

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` draws: inputs x (n, d), components z (n,), labels y (n,)."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        rng = np.random.default_rng(seed)
        z = rng.integers(0, self.n_components, n)
        noise = self.sigma * rng.standard_normal((n, self.means.shape[1]))
        x = self.means[z] + noise
        y = self.component_class[z] if self.rule == "informative" else (noise @ self.direction > 0).astype(int)
        return x, z, y

    def log_posterior(self, x: np.ndarray) -> np.ndarray:
        """log p(z | x) under the true parameters, (n, K)."""
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        logits = -sq / (2 * self.sigma ** 2)
        return logits - logsumexp(logits, axis=1, keepdims=True)

    def bayes_predict(self, x: np.ndarray) -> np.ndarray:
        """The Bayes classifier: argmax_y p(y | x), with the true parameters."""
        if self.rule == "non-informative":  # u is orthogonal to every mean: (x - mu_z) . u = x . u, whatever z
            return (x @ self.direction > 0).astype(int)
        post = np.exp(self.log_posterior(x))
        by_class = np.stack([post[:, self.component_class == c].sum(1) for c in range(self.n_classes)], 1)
        return by_class.argmax(1)


def make_mixture(dim: int = 20, n_components: int = 8, n_classes: int = 4, separation: float = 3.0,
                 sigma: float = 1.0, rule: str = "informative", seed: int = 0) -> LabelledMixture:
    """A seeded mixture. The means are the corners of a regular simplex, randomly rotated: every two of them are
    ``separation * sigma`` apart, so the seed changes the orientation and the samples, never how hard the problem
    is. Components are dealt to classes in turn: component k has class k mod n_classes.
    """
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r}; choose one of: {', '.join(LABEL_RULES)}")
    if n_classes < 2 or n_components < n_classes:
        raise ValueError(f"need 2 <= n_classes <= n_components, got {n_classes} classes and {n_components} components")
    if separation <= 0 or sigma <= 0:
        raise ValueError(f"separation and sigma must be positive, got {separation} and {sigma}")
    if dim < n_components + 1:
        raise ValueError(f"dim must exceed n_components (the means and the direction u need their own axes), "
                         f"got dim={dim} for {n_components} components")
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    means = rotation[:, :n_components].T * separation * sigma / np.sqrt(2)  # orthogonal, pairwise `separation` apart
    direction = rotation[:, n_components]  # orthogonal to every mean: the non-informative label's direction
    component_class = np.arange(n_components) % n_classes
    return LabelledMixture(means, sigma, component_class, rule, direction)
