"""Gaussian mixtures: the theory notebooks' toy worlds.

* :class:`LabelledMixture`, whose labels are a function of the latent component (taught in
  notebooks/10_theory/01_provable_pretraining.ipynb), described below;
* :class:`ShiftedMixture`, two classes whose unlabelled points come from a shifted domain (taught in
  notebooks/04_discovery/04_ood_unlabeled.ipynb), described in its docstring.

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
from scipy.stats import norm as gaussian

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


@dataclass
class ShiftedMixture:
    """Two classes, x | y ~ N(y mu_0, sigma^2 I) with y = +-1, and an unlabelled domain whose means have moved:
    x' ~ N(+-mu_1, sigma^2 I) with mu_1 = mu_0 + alpha ||mu_0|| v, v a unit vector orthogonal to mu_0 (the shift
    of Saberi et al., 2024). Labelled and test points come from mu_0, unlabelled points from mu_1.

    Taught in notebooks/04_discovery/04_ood_unlabeled.ipynb. Make one with :func:`make_shifted_mixture`.

    The paper also lets the unlabelled distribution deviate in total variation: ``contamination`` replaces that
    fraction of the unlabelled points by a clump N(R w, sigma^2 I) at distance R = ``outlier_distance`` along a
    direction w orthogonal to both means. The contaminated distribution is within total variation ``contamination``
    of the clean one, however far the clump is.

    The error of a linear classifier sign(theta . x) on the labelled domain is exact: Phi(-theta . mu_0 /
    (sigma ||theta||)), so no test sample is needed and every number is free of test noise.
    """

    mu_0: np.ndarray  # (d,): the labelled (and test) domain's mean of class +1
    mu_1: np.ndarray  # (d,): the unlabelled domain's mean of class +1
    outlier_direction: np.ndarray  # (d,): w, unit, orthogonal to mu_0 and mu_1 (zero in 2-D: no outliers)
    sigma: float

    @property
    def shift(self) -> float:
        """alpha = ||mu_1 - mu_0|| / ||mu_0||."""
        return float(np.linalg.norm(self.mu_1 - self.mu_0) / np.linalg.norm(self.mu_0))

    @property
    def dim(self) -> int:
        return len(self.mu_0)

    def _sample(self, mean: np.ndarray, shape: tuple, rng) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice([-1.0, 1.0], size=shape)
        return y[..., None] * mean + self.sigma * rng.standard_normal((*shape, self.dim)), y

    def labelled(self, m: int, draws: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """m labelled points from the labelled domain: x (m, d) and y in {-1, +1} (m,); with ``draws``, that many
        independent samples stacked, (draws, m, d) and (draws, m)."""
        if m < 1:
            raise ValueError(f"m (labelled points) must be at least 1, got {m}")
        return self._sample(self.mu_0, (m,) if draws is None else (draws, m), np.random.default_rng([seed, 1]))

    def unlabelled(self, n: int, draws: int | None = None, seed: int = 0, contamination: float = 0.0,
                   outlier_distance: float = 12.0) -> np.ndarray:
        """n unlabelled points from the shifted domain, (n, d) or (draws, n, d); their labels are thrown away. The
        first round(contamination * n) of them are replaced by the outlier clump N(R w, sigma^2 I)."""
        if n < 0:
            raise ValueError(f"n (unlabelled points) cannot be negative, got {n}")
        if not 0 <= contamination <= 1:
            raise ValueError(f"contamination is a fraction of the unlabelled points, in [0, 1]; got {contamination}")
        if contamination > 0 and not self.outlier_direction.any():
            raise ValueError("this world has no direction for outliers (it needs dim >= 3); use contamination=0")
        shape = (n,) if draws is None else (draws, n)
        x = self._sample(self.mu_1, shape, np.random.default_rng([seed, 2]))[0]
        k = int(round(contamination * n))
        if k:
            noise = self.sigma * np.random.default_rng([seed, 3]).standard_normal((*shape[:-1], k, self.dim))
            x[..., :k, :] = outlier_distance * self.outlier_direction + noise
        return x

    def error(self, theta: np.ndarray) -> np.ndarray:
        """The exact test error (%) of sign(theta . x) on the labelled domain, for theta (d,) or a stack (..., d)."""
        theta = np.asarray(theta, dtype=float)
        length = np.linalg.norm(theta, axis=-1)
        if np.any(length == 0):
            raise ValueError("theta = 0 is no classifier; every theta must have a direction")
        return 100 * gaussian.cdf(-(theta @ self.mu_0) / (self.sigma * length))

    @property
    def bayes_error(self) -> float:
        """The error (%) of the best classifier there is, sign(mu_0 . x): Phi(-||mu_0|| / sigma)."""
        return float(self.error(self.mu_0))

    def labelled_only_error(self, m) -> np.ndarray:
        """About the error (%) of the labelled mean (1/m) sum y_i x_i (where ERM starts) from m in-domain labels. Its
        noise has length about sigma sqrt(d / m), so theta . mu_0 / ||theta|| is about ||mu_0||^2 / sqrt(||mu_0||^2 +
        sigma^2 d / m): the sqrt(d / m) rate of the paper's abstract. It leaves out the noise's own component along
        mu_0 (of size sigma / sqrt(m)): an approximation for large m, for reference lines."""
        m = np.asarray(m, dtype=float)
        length = np.linalg.norm(self.mu_0)
        return 100 * gaussian.cdf(-length ** 2 / (self.sigma * np.sqrt(length ** 2 + self.sigma ** 2 * self.dim / m)))

    @property
    def shifted_error(self) -> float:
        """The error (%) on the labelled domain of the unlabelled domain's own best classifier, sign(mu_1 . x): about
        the limit of what unlabelled data from that domain can teach (the labels can push a learner a little past it)."""
        return float(self.error(self.mu_1))


def make_shifted_mixture(dim: int = 200, norm: float = 1.0, shift: float = 0.5, sigma: float = 1.0,
                         seed: int = 0) -> ShiftedMixture:
    """A seeded :class:`ShiftedMixture`: mu_0 a random direction of length ``norm``, mu_1 = mu_0 + shift * norm * v
    with v a random unit vector orthogonal to mu_0, and the outliers' direction w orthogonal to both. The defaults
    are the paper's synthetic experiment (d = 200, ||mu_0|| = 1, sigma = 1, a shift of half the mean's length)."""
    if dim < 2:
        raise ValueError(f"dim must be at least 2 (the shift needs a direction of its own), got {dim}")
    if norm <= 0 or sigma <= 0:
        raise ValueError(f"norm and sigma must be positive, got {norm} and {sigma}")
    if shift < 0:
        raise ValueError(f"shift cannot be negative, got {shift}")
    rng = np.random.default_rng([seed, 0])
    basis = np.linalg.qr(rng.standard_normal((dim, min(dim, 3))))[0]
    mu_0 = norm * basis[:, 0]
    outliers = basis[:, 2] if dim >= 3 else np.zeros(dim)  # in 2-D there is no direction left for them
    return ShiftedMixture(mu_0, mu_0 + shift * norm * basis[:, 1], outliers, float(sigma))
