"""Label processes over any labelled data: metadata, never new renders (curriculum section 4.2).

Taught in notebooks/04_discovery/ (chapter 4: discovery, label shift, noise and the open world).

* :func:`domain_priors` and :func:`label_shift`: D domains whose class proportions p_d(y) are drawn from a
  Dirichlet(alpha); each sample gets a domain and then a class from its domain's proportions. The class
  conditionals p(x | y) are whatever the renderer draws, the same in every domain (*latent label shift*).
* :func:`with_classes`: write such labels into a shapes-world factor table before rendering it.
* :func:`symmetric_noise` and :func:`asymmetric_noise`: label flips, uniform over the other classes or to a fixed
  partner class.
* :func:`known_novel_split` and :func:`inlier_mask`: which classes are known, novel or inliers.
* :func:`contaminate`: out-of-world images (pure textures, glyphs no class has) swapped in for some images and
  given random labels: web-like noise (the only process here that draws new pictures).

Every function is seeded and returns new arrays; nothing is changed in place.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .shapes import SHAPES, SUPERCLASSES, _value_noise


def _rng(seed: int, salt: int) -> np.random.Generator:
    """A generator for (seed, salt): independent of ``default_rng(seed)``, which the shapes world and others use for
    the same seed (two streams from one seed would be correlated: the domain of an image with its colour)."""
    return np.random.default_rng([int(seed), salt])


def _positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _rate(rate) -> float:
    if not 0 <= rate <= 1:
        raise ValueError(f"a noise rate must be in [0, 1], got {rate!r}")
    return float(rate)


def domain_priors(n_domains: int, n_classes: int, alpha: float, seed: int = 0) -> np.ndarray:
    """p_d(y) for every domain: a (D, K) matrix whose rows are draws from Dirichlet(alpha, ..., alpha).

    A small ``alpha`` gives peaked, very different domains (a strong shift); a large one gives nearly uniform,
    nearly identical domains (almost no shift, so nothing to learn from).
    """
    _positive_int("n_domains", n_domains)
    _positive_int("n_classes", n_classes)
    if not alpha > 0:
        raise ValueError(f"the Dirichlet concentration alpha must be > 0, got {alpha!r}")
    rng = _rng(seed, 1)
    return rng.dirichlet(np.full(n_classes, float(alpha)), n_domains)


def label_shift(n: int, priors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of (domain, class): the domain uniform over the rows of ``priors``, the class from its row."""
    _positive_int("n", n)
    priors = np.asarray(priors, dtype=float)
    if priors.ndim != 2 or (priors < 0).any() or not np.allclose(priors.sum(1), 1):
        raise ValueError("priors must be a (domains, classes) matrix whose rows are probability vectors")
    rng = _rng(seed, 2)
    domains = rng.integers(0, len(priors), n)
    cumulative = priors.cumsum(1)[domains]
    classes = (rng.random(n)[:, None] > cumulative).sum(1).clip(max=priors.shape[1] - 1)
    return domains, classes


def with_classes(factors: pd.DataFrame, classes: np.ndarray, shapes: tuple[str, ...]) -> pd.DataFrame:
    """A copy of a shapes-world factor table whose row i shows ``shapes[classes[i]]``; every other factor kept."""
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise ValueError(f"unknown shapes {unknown}; valid: {', '.join(SHAPES)}")
    classes = np.asarray(classes)
    if len(classes) != len(factors):
        raise ValueError(f"{len(factors)} factor rows but {len(classes)} classes")
    if len(classes) and (classes.min() < 0 or classes.max() >= len(shapes)):
        raise ValueError(f"classes must be in 0..{len(shapes) - 1}, one per shape given")
    shape = np.array([SHAPES.index(s) for s in shapes])[classes]
    return factors.assign(shape=shape, shape_name=np.array(SHAPES)[shape], superclass=shape // 4,
                          superclass_name=np.array(SUPERCLASSES)[shape // 4])


def symmetric_noise(labels, rate: float, n_classes: int, seed: int = 0) -> np.ndarray:
    """Each label flipped with probability ``rate`` to one of the *other* classes, uniformly."""
    labels, rate = np.asarray(labels), _rate(rate)
    _positive_int("n_classes", n_classes)
    rng = _rng(seed, 3)
    flip = rng.random(len(labels)) < rate
    shift = rng.integers(1, max(n_classes, 2), len(labels))
    return np.where(flip, (labels + shift) % n_classes, labels)


def asymmetric_noise(labels, rate: float, partner: dict[int, int] | None = None, n_classes: int | None = None,
                     seed: int = 0) -> np.ndarray:
    """Each label of class c flipped with probability ``rate`` to ``partner[c]`` (default: the next class, c+1
    mod K, the usual "similar class" flip); classes without a partner are left alone."""
    labels, rate = np.asarray(labels), _rate(rate)
    if partner is None:
        if n_classes is None:
            raise ValueError("give partner={class: partner class} or n_classes for the default c -> c+1 flip")
        partner = {c: (c + 1) % n_classes for c in range(n_classes)}
    rng = _rng(seed, 4)
    target = np.array([partner.get(int(c), int(c)) for c in labels], dtype=labels.dtype)
    return np.where(rng.random(len(labels)) < rate, target, labels)


def known_novel_split(n_classes: int, n_novel: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(known, novel) class indices: the last ``n_novel`` classes, or a seeded random choice with ``seed``."""
    _positive_int("n_classes", n_classes)
    if not 0 < n_novel < n_classes:
        raise ValueError(f"n_novel must be between 1 and {n_classes - 1}, got {n_novel!r}")
    order = np.arange(n_classes) if seed is None else _rng(seed, 5).permutation(n_classes)
    return np.sort(order[:n_classes - n_novel]), np.sort(order[n_classes - n_novel:])


def inlier_mask(labels, inliers) -> np.ndarray:
    """True where the label is one of the ``inliers`` classes: the one-class or multi-class normal data of
    anomaly detection; everything else is an anomaly."""
    inliers = np.atleast_1d(inliers)
    if inliers.size == 0:
        raise ValueError("give at least one inlier class")
    return np.isin(np.asarray(labels), inliers)


CONTAMINANTS = ("texture", "glyph")


def out_of_world(n: int, size: int, kind: str, seed: int = 0) -> torch.Tensor:
    """``n`` images (n, 3, size, size) in [0, 1] that show no object of the shapes world.

    ``"texture"``: a smooth random colour field per channel (hashed value noise), no object at all.
    ``"glyph"``: a random binary 5 x 5 pattern, scaled up and placed at random on a mid-grey background, in a random
    colour: shaped like an object, but like no class.
    """
    _positive_int("n", n)
    if kind not in CONTAMINANTS:
        raise ValueError(f"unknown contaminant {kind!r}; choose from {', '.join(CONTAMINANTS)}")
    rng = _rng(seed, 6)
    if kind == "texture":
        seeds = torch.from_numpy(rng.integers(0, 2**31 - 1, n))
        cells = int(rng.integers(3, 7))
        return torch.stack([_value_noise(seeds, cells, size, salt) for salt in (1, 2, 3)], 1).clamp(0, 1)
    images = torch.full((n, 3, size, size), 0.5)
    cell = max(size // 8, 1)
    glyphs = rng.random((n, 5, 5)) < 0.5
    colours = torch.from_numpy(rng.uniform(0, 1, (n, 3))).float()
    for i in range(n):
        block = torch.from_numpy(np.kron(glyphs[i], np.ones((cell, cell)))).float()
        top, left = rng.integers(0, size - block.shape[0] + 1, 2)
        window = images[i, :, top:top + block.shape[0], left:left + block.shape[1]]
        window[:] = torch.where(block.bool(), colours[i].view(3, 1, 1), window)
    return images


def contaminate(images: torch.Tensor, labels, fraction: float, n_classes: int, kind: str = "texture",
                seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Swap a ``fraction`` of the images for out-of-world ones (:func:`out_of_world`) with labels drawn uniformly
    from the ``n_classes``: the out-of-distribution part of web noise. Returns new images, new labels and the mask
    of the swapped rows; the inputs are not changed."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    labels, fraction = np.asarray(labels), _rate(fraction)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    rng = _rng(seed, 7)
    swapped = rng.random(len(images)) < fraction
    out_images, out_labels = images.clone(), labels.copy()
    if swapped.any():
        index = torch.from_numpy(np.flatnonzero(swapped))
        out_images[index] = out_of_world(int(swapped.sum()), images.shape[-1], kind, seed).to(images)
        out_labels[swapped] = rng.integers(0, n_classes, int(swapped.sum()))
    return out_images, out_labels, swapped
