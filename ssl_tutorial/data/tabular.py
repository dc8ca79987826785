"""A tabular world: rows drawn from a latent class through nonlinear warps, with irrelevant and categorical columns.

Taught in notebooks/04_discovery/02_ncd_tabular.ipynb (curriculum section 4.3, ``tabular``).

Each row has a class y (uniform over ``n_classes``). Its latent z ~ N(mu_y, I) in ``latent_dim`` dimensions, the
class means spread evenly over a sphere, the closest two ``separation`` apart. The classes share the latent
dimensions, so what tells known classes apart also tells novel ones apart. The **informative** columns are a fixed
random warp of z,

    x_inf = W2 tanh(gain * W1 z / sqrt(latent_dim)) + noise (a tenth of its scale),

so each class is a curved blob, not a Gaussian. The **irrelevant** columns have the same variance, as many as you
like: they add distance between rows that has nothing to do with the class. With ``nuisance=G`` they are not plain
noise but G clusters of their own, unrelated to the class: a grouping that similarity finds first. One
**categorical** column ("colour") leans towards a class-specific level with probability ``categorical_signal``.
:meth:`Table.matrix` standardises the numbers and one-hot encodes the category: what a clustering of the "raw
features" sees.

The first ``n_classes - n_novel`` classes are *known* (labelled), the rest *novel* (never labelled): the split of
novel class discovery. Everything is seeded: the same arguments give the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVELS = ("red", "green", "blue", "grey")


@dataclass
class Table:
    """A generated table: ``frame`` (the columns), ``labels`` (the true class of every row), the known and novel
    classes."""

    frame: pd.DataFrame
    labels: np.ndarray
    known: np.ndarray
    novel: np.ndarray
    nuisance: np.ndarray | None = None  # the nuisance group of every row (with nuisance=G), for teaching only

    @property
    def is_known(self) -> np.ndarray:
        """True for the rows of known classes (those a learner may see labelled)."""
        return np.isin(self.labels, self.known)

    def matrix(self) -> np.ndarray:
        """The numbers a model sees: numeric columns standardised, the categorical column one-hot, float32."""
        numeric = self.frame.select_dtypes("number")
        numeric = (numeric - numeric.mean()) / numeric.std().replace(0, 1)
        categorical = pd.get_dummies(self.frame.select_dtypes(exclude="number"), dtype=float)
        return np.hstack([numeric.to_numpy(), categorical.to_numpy()]).astype(np.float32)


def make_tabular(n: int = 3000, n_classes: int = 10, n_novel: int = 4, latent_dim: int = 6, n_informative: int = 12,
                 n_irrelevant: int = 20, nuisance: int = 3, separation: float = 12.0, gain: float = 0.35,
                 categorical_signal: float = 0.5, seed: int = 0) -> Table:
    """Draw ``n`` rows of the tabular world (see the module docstring for every knob)."""
    for name, value in (("n", n), ("n_classes", n_classes), ("latent_dim", latent_dim),
                        ("n_informative", n_informative)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= n_novel < n_classes:
        raise ValueError(f"n_novel must be between 0 and n_classes - 1 = {n_classes - 1}, got {n_novel!r}")
    if n_irrelevant < 0 or nuisance < 0 or separation <= 0 or not 0 <= categorical_signal <= 1:
        raise ValueError("need n_irrelevant >= 0, nuisance >= 0, separation > 0 and categorical_signal in [0, 1]")
    world = np.random.default_rng([seed, 11])  # the warp and the class means: one world per seed
    # the class means: spread evenly over a sphere (charges that repel each other), then scaled so that the closest
    # two are `separation` apart: no two classes merge
    u = world.standard_normal((n_classes, latent_dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    for _ in range(300):
        diff = u[:, None] - u[None]
        dist = np.linalg.norm(diff, axis=-1) + np.eye(n_classes)
        u += 0.05 * (diff / dist[..., None] ** 3).sum(1)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
    closest = (np.linalg.norm(u[:, None] - u[None], axis=-1) + np.diag(np.full(n_classes, np.inf))).min()
    means = separation / closest * u
    w1 = world.standard_normal((latent_dim, 2 * n_informative))
    w2 = world.standard_normal((2 * n_informative, n_informative)) / np.sqrt(2 * n_informative)
    favourite = world.integers(0, len(LEVELS), n_classes)

    rng = np.random.default_rng([seed, 12])  # the rows
    labels = rng.integers(0, n_classes, n)
    z = means[labels] + rng.standard_normal((n, latent_dim))
    informative = np.tanh(gain * z @ w1 / np.sqrt(latent_dim)) @ w2
    informative += 0.1 * informative.std() * rng.standard_normal(informative.shape)
    irrelevant = rng.standard_normal((n, n_irrelevant))
    group = None
    if nuisance:  # the irrelevant columns get clusters of their own, unrelated to the class
        group = rng.integers(0, nuisance, n)
        centres = world.standard_normal((nuisance, n_irrelevant))
        irrelevant = 0.6 * irrelevant + 1.5 * centres[group]
    if n_irrelevant:
        irrelevant *= informative.std(0).mean() / irrelevant.std(0).mean()
    lean = rng.random(n) < categorical_signal
    level = np.where(lean, favourite[labels], rng.integers(0, len(LEVELS), n))

    frame = pd.DataFrame(informative, columns=[f"x{i}" for i in range(n_informative)])
    for i in range(n_irrelevant):
        frame[f"noise{i}"] = irrelevant[:, i]
    frame["colour"] = pd.Categorical(np.array(LEVELS)[level], categories=LEVELS)
    known = np.arange(n_classes - n_novel)
    return Table(frame=frame, labels=labels, known=known, novel=np.arange(n_classes - n_novel, n_classes),
                 nuisance=group)
