"""Trees and forests as adaptive smoothers: a prediction is a weighted average of the training outcomes.

Curth, Jeffares & van der Schaar, "Why do Random Forests Work? Understanding Tree Ensembles as
Self-Regularizing Adaptive Smoothers" (2024).
Taught in notebooks/10_theory/02_forest_smoothers.ipynb.

A regression tree predicts the (in-bag weighted) mean of the training outcomes in the leaf l(x) that x
falls into, so every tree or forest is a linear smoother with weights that the data chose:

    f̂(x) = Σ_i ŵ_i(x) y_i

    tree:    ŵ_i(x) = c_i 1[l(x_i) = l(x)] / Σ_j c_j 1[l(x_j) = l(x)]

with c_i the in-bag count of training point i (how many times the bootstrap drew it; 1 without
bootstrap). A forest of B trees averages its trees' weights, ŵ(x) = (1/B) Σ_b ŵ^b(x).

How flexible such a smoother is, is measured by its effective number of parameters on a set T of
points,

    p_e = (n / |T|) Σ_{x0 ∈ T} ‖ŵ(x0)‖²

which is n for a fully grown tree evaluated at its own training inputs (every point alone in its leaf:
ŵ(x_i) = e_i, it interpolates) and 1 for the constant mean (ŵ_i = 1/n). Randomisation (bootstrap,
feature subsampling) spreads each forest's weights over more points, so p_e drops below the tree's:
the forest regularises itself. ``error_decomposition`` measures where the error then goes: bias, and
variance due to the training inputs versus due to the outcome noise.

The identity f̂ = ŵ y holds for the mean-predicting criteria ("squared_error", "friedman_mse",
"poisson") and without ``monotonic_cst``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.exceptions import NotFittedError
from sklearn.tree import BaseDecisionTree
from sklearn.utils.validation import check_is_fitted

FORESTS = (RandomForestRegressor, ExtraTreesRegressor)


# --- in-bag counts c_i ---------------------------------------------------------------------------

def in_bag_counts(forest: RandomForestRegressor | ExtraTreesRegressor, n_train: int) -> np.ndarray:
    """How many times each training point was drawn for each tree: ints of shape (n_trees, n_train).

    All ones with ``bootstrap=False``; with ``bootstrap=True`` each row sums to the bootstrap size
    (n_train, or ``max_samples``).
    """
    _check_fitted(forest)
    if not forest.bootstrap:
        return np.ones((len(forest.estimators_), n_train), dtype=np.int64)
    # scikit-learn >= 1.4: each tree's in-bag indices, drawn with replacement (so they repeat)
    if n_train != getattr(forest, "_n_samples", n_train):
        raise ValueError(f"the forest was fitted on {forest._n_samples} points, not n_train={n_train}; "
                         "pass the training set it was fitted on.")
    counts = np.stack([np.bincount(idx, minlength=n_train) for idx in forest.estimators_samples_])
    if counts.shape[1] != n_train:
        raise ValueError(f"the forest was fitted on more than n_train={n_train} points; pass the training set size.")
    return counts.astype(np.int64)


# --- the smoother weights ŵ(x) ---------------------------------------------------------------------

def _check_fitted(model) -> None:
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ValueError(f"{type(model).__name__} is not fitted; call model.fit(X_train, y_train) first.") from None


def _as_inputs(model, X, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(-1, 1) if X.ndim == 1 and model.n_features_in_ == 1 else X
    if X.ndim != 2 or X.shape[1] != model.n_features_in_:
        raise ValueError(f"{name} has shape {X.shape} but the model expects (n, {model.n_features_in_}) inputs; "
                         "pass the same features it was fitted on.")
    return X


def _tree_weights(tree, X_train: np.ndarray, X: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ŵ_i(x) = c_i 1[l(x_i)=l(x)] / Σ_j c_j 1[l(x_j)=l(x)], for all x at once: shape (len(X), n_train)."""
    same_leaf = tree.apply(X)[:, None] == tree.apply(X_train)[None, :]
    w = same_leaf * counts[None, :].astype(np.float64)
    return w / w.sum(axis=1, keepdims=True)  # every leaf holds at least one in-bag point


def tree_weights(forest, X_train, X):
    """Each tree's weights ŵ^(b)(X) in turn, with its in-bag counts: an iterator of (len(X), n_train) arrays.
    Their running mean is the weights of the forest of the first b trees."""
    if not isinstance(forest, FORESTS):
        raise TypeError(f"tree_weights needs a fitted forest, got {type(forest).__name__}; "
                        "use smoother_weights for a single tree.")
    _check_fitted(forest)
    X_train, X = _as_inputs(forest, X_train, "X_train"), _as_inputs(forest, X, "X")
    for tree, c in zip(forest.estimators_, in_bag_counts(forest, len(X_train))):
        yield _tree_weights(tree, X_train, X, c)


def smoother_weights(model, X_train, X) -> np.ndarray:
    """The weights ŵ(x) that ``model.predict(X)`` puts on each training outcome: shape (len(X), n_train).

    ``model`` is a fitted ``DecisionTreeRegressor`` (counts all 1) or a fitted ``RandomForestRegressor``
    / ``ExtraTreesRegressor`` (its trees' weights, with in-bag counts, averaged); ``X_train`` is the
    training inputs it was fitted on, in the same order. ``smoother_weights(...) @ y_train`` equals
    ``model.predict(X)``.
    """
    if not isinstance(model, (BaseDecisionTree, *FORESTS)):
        raise TypeError(f"expected a fitted regression tree or forest, got {type(model).__name__}.")
    _check_fitted(model)
    if isinstance(model, BaseDecisionTree):
        X_train, X = _as_inputs(model, X_train, "X_train"), _as_inputs(model, X, "X")
        return _tree_weights(model, X_train, X, np.ones(len(X_train)))
    return sum(tree_weights(model, X_train, X)) / len(model.estimators_)


def effective_parameters(weights: np.ndarray) -> float:
    """p_e = (n_train / n_points) Σ_{x0} ‖ŵ(x0)‖², for weights of shape (n_points, n_train)."""
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n_points, n_train = weights.shape
    return float(n_train / n_points * np.sum(weights**2))


# --- synthetic regression problems -----------------------------------------------------------------

@dataclass(frozen=True)
class RegressionFunction:
    """A true regression function f: (n, dim) inputs -> (n,) outputs."""

    f: Callable[[np.ndarray], np.ndarray]
    dim: int

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.f(np.asarray(X, dtype=np.float64))


REGRESSION_FUNCTIONS: dict[str, RegressionFunction] = {
    "sine": RegressionFunction(lambda X: np.sin(2 * np.pi * X[:, 0]), dim=1),
    "step": RegressionFunction(lambda X: np.where(X[:, 0] > 0.5, 1.0, -1.0), dim=1),
    "bump": RegressionFunction(lambda X: np.exp(-50.0 * (X[:, 0] - 0.5) ** 2), dim=1),
    "sine_2d": RegressionFunction(lambda X: np.sin(2 * np.pi * X[:, 0]) * np.cos(np.pi * X[:, 1]), dim=2),
}


def _regression_function(function: str) -> RegressionFunction:
    if function not in REGRESSION_FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; choose one of {sorted(REGRESSION_FUNCTIONS)}.")
    return REGRESSION_FUNCTIONS[function]


def _check_noise(noise: float) -> None:
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}.")


def sample_regression(n: int, function: str = "sine", noise: float = 0.3, seed: int = 0, low: float = 0.0,
                      high: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n points x ~ Uniform[low, high]^d, y = f(x) + noise·ε with ε ~ N(0, 1): returns (X (n, d), y (n,), f(X) (n,))."""
    f = _regression_function(function)
    _check_noise(noise)
    rng = np.random.default_rng(seed)
    X = rng.uniform(low, high, size=(n, f.dim))
    f_true = f(X)
    return X, f_true + noise * rng.standard_normal(n), f_true


# --- where the error goes ----------------------------------------------------------------------------

def error_decomposition(make_model: Callable[[int], object], function: str, n: int, noise: float, X_test,
                        input_draws: int = 5, noise_draws: int = 5, seed: int = 0, low: float = 0.0,
                        high: float = 1.0) -> dict[str, float]:
    """Monte-Carlo decomposition of the expected squared error to the true f at ``X_test``.

    For r = 1..R (``input_draws``) draw training inputs X_r; for s = 1..S (``noise_draws``) draw fresh outcome
    noise on those inputs, fit ``make_model(random_state)`` (a fresh seed per (r, s)) and predict F[r, s, :].
    By the law of total variance the expected error splits into

        E (F − f)² = bias² + input variance + noise variance
        bias²          = (E F − f)²                   what no amount of averaging removes
        input variance = Var_X E[F | X]               which training inputs were drawn
        noise variance = E_X Var[F | X]               the outcome noise, and the model's own randomness
                                                      (bootstrap, feature draws), re-seeded with every fit

    each averaged over x. The plain sample versions are biased with few draws: the variance over r of the mean
    over s still holds (noise variance)/S, and the squared error of the grand mean holds Var(grand mean). The
    estimates returned remove both (ddof=1 variances, then the leaked parts subtracted), so they are unbiased
    and their sum estimates ``mse`` (the sample mean squared error) without equalling it exactly. With few
    draws a small term can come out slightly negative.
    """
    f = _regression_function(function)
    _check_noise(noise)
    X_test = np.asarray(X_test, dtype=np.float64).reshape(len(X_test), -1)
    if X_test.shape[1] != f.dim:
        raise ValueError(f"X_test has {X_test.shape[1]} features but {function!r} takes {f.dim}; "
                         f"pass X_test of shape (m, {f.dim}).")
    if input_draws < 2 or noise_draws < 2:
        raise ValueError(f"input_draws and noise_draws must both be >= 2, got {input_draws} and {noise_draws}.")
    rng = np.random.default_rng(seed)
    F = np.empty((input_draws, noise_draws, len(X_test)))
    for r in range(input_draws):
        X_r = rng.uniform(low, high, size=(n, f.dim))
        f_r = f(X_r)
        for s in range(noise_draws):
            y = f_r + noise * rng.standard_normal(n)
            model = make_model(int(rng.integers(2**31 - 1)))
            F[r, s] = model.fit(X_r, y).predict(X_test)
    f_test = f(X_test)
    within = F.var(axis=1, ddof=1).mean(axis=0)  # unbiased for the noise variance, per x
    between = F.mean(axis=1).var(axis=0, ddof=1)  # unbiased for input variance + noise variance / S
    grand = F.mean(axis=(0, 1))
    return {
        "bias2": float(np.mean((grand - f_test) ** 2 - between / input_draws)),
        "input_variance": float(np.mean(between - within / noise_draws)),
        "noise_variance": float(np.mean(within)),
        "mse": float(np.mean((F - f_test) ** 2)),
    }
