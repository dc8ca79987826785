"""Noise detectors for web-noisy labels: small loss, linear separation, and the PLS weights (groundwork).

Albert, Valmadre, Arazo, Krishna, O'Connor & McGuinness, "An accurate detection is not all you need to combat
label noise in web-noisy datasets", ECCV 2024 (LSA). Building block of the chapter-4 notebook on web noise, which
is not written yet; these are the detectors, testable on their own.

Web-noisy data mixes clean samples, in-distribution (ID) samples with a wrong label, and out-of-distribution (OOD)
images that belong to no class at all. Each training epoch ends by flagging samples as noisy, with one of two
detectors:

* **small loss** (``small_loss_noisy``): fit a 2-component Gaussian mixture to the per-sample cross-entropy
  against the given labels, min-max normalised; a sample is noisy when the posterior of the high-loss component is
  above a threshold (0.95 in the official code). Noisy labels are hard to fit, so they keep a high loss for long.
* **linear separation** (``linear_separation_noisy``): a logistic regression (no penalty, balanced classes) on the
  network's own L2-normalised, standardised features of an early layer, trained to reproduce the small-loss flags,
  then used to predict them. It finds the hyperplane that separates noisy from clean in feature space, which is
  near-perfect for OOD images. But it misses clean samples that are easy to fit yet look unusual, which small loss
  catches. Its decisions correlate weakly with small loss, so LSA **alternates** the two, one per epoch.

Every flagged sample then gets a guessed label, the network's own prediction sharpened, p^gamma / sum p^gamma with
gamma = 2 (``sharpen``), and a weight (``pls_weights``): a second 2-component mixture on the flagged samples'
cross-entropy against their guessed labels, and the posterior of its low-loss component. So an OOD image, whose
guess stays unsure, ends with a weight near 0, and an ID-noisy image whose guess is confident keeps a weight near 1.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler


def _as_vector(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) < 2 or not np.isfinite(values).all():
        raise ValueError(f"{name} must be a 1-D array of at least 2 finite numbers, got shape {values.shape}")
    return values


def _high_component_posterior(values: np.ndarray, seed: int) -> np.ndarray:
    """The posterior of the component with the larger mean, of a 2-component mixture fitted to min-max normalised
    values (the official code's settings: 10 EM iterations, tolerance 1e-2, covariance floor 5e-4)."""
    span = values.max() - values.min()
    scaled = (values - values.min()) / (span if span > 0 else 1.0)
    mixture = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed).fit(scaled[:, None])
    return mixture.predict_proba(scaled[:, None])[:, int(np.argmax(mixture.means_.ravel()))]


def small_loss_noisy(losses, threshold: float = 0.95, seed: int = 0) -> np.ndarray:
    """True where a sample's loss belongs to the high-loss component with posterior above ``threshold``."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold is a posterior probability in (0, 1), got {threshold}")
    return _high_component_posterior(_as_vector(losses, "losses"), seed) > threshold


def linear_separation_noisy(features, noisy_seeds, seed: int = 0) -> np.ndarray:
    """The noisy flags predicted by a hyperplane: a logistic regression on standardised, L2-normalised ``features``
    (n, d), trained to reproduce ``noisy_seeds`` (n,) booleans, the small-loss flags in the official code."""
    features = np.asarray(features, dtype=float)
    noisy_seeds = np.asarray(noisy_seeds, dtype=bool)
    if features.ndim != 2 or len(features) != len(noisy_seeds):
        raise ValueError(f"features must be (n, d) with one seed flag per row; got {features.shape} and "
                         f"{noisy_seeds.shape}")
    if noisy_seeds.all() or not noisy_seeds.any():
        raise ValueError("the seeds must flag some samples as noisy and some as clean, or there is nothing to separate")
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    unit = StandardScaler().fit_transform(unit)
    separator = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=1000, random_state=seed)  # no penalty
    return separator.fit(unit, noisy_seeds).predict(unit).astype(bool)


def sharpen(probabilities, gamma: float = 2.0) -> np.ndarray:
    """p^gamma / sum p^gamma per row: a guessed label, more confident than the prediction it comes from."""
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or (p < 0).any():
        raise ValueError(f"probabilities must be a non-negative (n, classes) array, got shape {p.shape}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    powered = p ** gamma
    return powered / np.maximum(powered.sum(1, keepdims=True), 1e-12)


def pls_weights(probabilities, guessed, seed: int = 0) -> np.ndarray:
    """The weight of each flagged sample: the posterior of the low-loss component of a 2-component mixture on the
    cross-entropy between its prediction ``probabilities`` (n, classes) and its guessed label ``guessed``
    (n, classes). Unsure guesses (OOD images) get weights near 0."""
    p, q = np.asarray(probabilities, dtype=float), np.asarray(guessed, dtype=float)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"probabilities and guessed labels must both be (n, classes), got {p.shape} and {q.shape}")
    pseudo_loss = -(q * np.log(np.clip(p, 1e-12, None))).sum(1)
    return 1.0 - _high_component_posterior(_as_vector(pseudo_loss, "the pseudo-loss"), seed)
