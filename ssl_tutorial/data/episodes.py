"""Few-shot episodes over any labelled dataset, the base/novel class split, and the class attribute table.

Chapter 3's shared pieces (``notebooks/03_few_shot/``; curriculum section 4.2).

* ``BASE_SHAPES`` / ``NOVEL_SHAPES``: the shapes world's 8/8 split, two classes of each superclass on each side.
  Pretraining (``artifacts.ssl_backbone``) only ever sees the base classes.
* ``sample_episodes(labels, classes, n_way, k_shot, n_query, n_episodes, seed)``: seeded N-way K-shot episodes.
  Each draws ``n_way`` classes, then ``k_shot`` support and ``n_query`` query examples of each, all distinct.
* ``mean_ci(values)``: the mean and the half-width of its 95 % confidence interval over episodes, as the few-shot
  literature reports accuracy (mean +- 1.96 standard errors).
* ``ATTRIBUTES`` / ``class_attributes()``: a table of visual attributes per shape class (corners, straight or curved
  edges, points, hole, symmetry, ...), with a made-up name per novel class (``captions.made_up_name``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .captions import made_up_name
from .shapes import SHAPES, SUPERCLASSES

NOVEL_SHAPES = ("pentagon", "hexagon", "semicircle", "ring", "star6", "cross", "L", "T")
BASE_SHAPES = tuple(s for s in SHAPES if s not in NOVEL_SHAPES)


@dataclass
class Episode:
    """One few-shot task: indices into the dataset, and episode labels 0..n_way-1 (``classes[y]`` is the
    dataset's label of episode label y)."""

    classes: np.ndarray  # (n_way,) dataset labels
    support: np.ndarray  # (n_way * k_shot,) indices, class-major
    support_y: np.ndarray
    query: np.ndarray  # (n_way * n_query,) indices, class-major
    query_y: np.ndarray


def sample_episodes(labels, classes, n_way: int = 5, k_shot: int = 1, n_query: int = 15, n_episodes: int = 100,
                    seed: int = 0) -> list[Episode]:
    """``n_episodes`` seeded episodes over the examples whose label is in ``classes``. Support and query are
    disjoint, and every class drawn has ``k_shot + n_query`` distinct examples."""
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    classes = np.asarray(sorted(set(int(c) for c in classes)))
    if not 1 <= n_way <= len(classes):
        raise ValueError(f"n_way must be between 1 and the {len(classes)} classes given, got {n_way}")
    if k_shot < 1 or n_query < 1 or n_episodes < 1:
        raise ValueError(f"k_shot, n_query and n_episodes must be >= 1, got {k_shot}, {n_query}, {n_episodes}")
    members = {int(c): np.flatnonzero(labels == c) for c in classes}
    short = [int(c) for c, m in members.items() if len(m) < k_shot + n_query]
    if short:
        raise ValueError(f"classes {short} have fewer than k_shot + n_query = {k_shot + n_query} examples")
    rng = np.random.default_rng([seed, 3])
    out = []
    for _ in range(n_episodes):
        chosen = rng.choice(classes, n_way, replace=False)
        picks = [rng.choice(members[int(c)], k_shot + n_query, replace=False) for c in chosen]
        out.append(Episode(classes=chosen,
                           support=np.concatenate([p[:k_shot] for p in picks]),
                           support_y=np.repeat(np.arange(n_way), k_shot),
                           query=np.concatenate([p[k_shot:] for p in picks]),
                           query_y=np.repeat(np.arange(n_way), n_query)))
    return out


def mean_ci(values) -> tuple[float, float]:
    """(mean, half-width of the 95 % confidence interval: 1.96 standard errors)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if values.size == 1:
        return float(values[0]), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(values.size))


# corners (0 = none), straight edges, curved edges, sharp points, a hole, mirror-symmetric, elongated
_ATTRIBUTE_ROWS = {
    "triangle": (3, 1, 0, 1, 0, 1, 0), "square": (4, 1, 0, 0, 0, 1, 0), "pentagon": (5, 1, 0, 0, 0, 1, 0),
    "hexagon": (6, 1, 0, 0, 0, 1, 0), "circle": (0, 0, 1, 0, 0, 1, 0), "ellipse": (0, 0, 1, 0, 0, 1, 1),
    "semicircle": (2, 1, 1, 0, 0, 1, 1), "ring": (0, 0, 1, 0, 1, 1, 0), "star4": (8, 1, 0, 1, 0, 1, 0),
    "star5": (10, 1, 0, 1, 0, 1, 0), "star6": (12, 1, 0, 1, 0, 1, 0), "cross": (12, 1, 0, 0, 0, 1, 0),
    "heart": (1, 0, 1, 1, 0, 1, 0), "arrow": (7, 1, 0, 1, 0, 1, 1), "L": (6, 1, 0, 0, 0, 0, 1),
    "T": (8, 1, 0, 0, 0, 1, 0),
}
ATTRIBUTES = pd.DataFrame.from_dict(_ATTRIBUTE_ROWS, orient="index",
                                    columns=["corners", "straight", "curved", "pointy", "hollow", "symmetric",
                                             "elongated"])
ATTRIBUTES.insert(0, "superclass", [SUPERCLASSES[SHAPES.index(s) // 4] for s in ATTRIBUTES.index])


def class_attributes(novel=NOVEL_SHAPES, seed: int = 0) -> pd.DataFrame:
    """The attribute table, one row per shape, with a ``name`` column: the shape's own name for base classes, a
    made-up one (``captions.made_up_name``) for the ``novel`` ones, and a ``novel`` flag."""
    bad = [s for s in novel if s not in SHAPES]
    if bad:
        raise ValueError(f"unknown shapes {bad}; valid: {', '.join(SHAPES)}")
    table = ATTRIBUTES.copy()
    table.insert(0, "novel", [s in novel for s in table.index])
    table.insert(0, "name", [made_up_name(SHAPES.index(s), seed) if s in novel else s for s in table.index])
    return table
