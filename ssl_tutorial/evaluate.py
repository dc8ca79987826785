"""How good is a representation? The evaluation protocols of the SSL literature.

Taught in notebooks/00_start/01_shapes_world.ipynb.

* :func:`knn_accuracy` -- classify each test point by a vote of its k nearest training points
  (cosine similarity); no training, so it reads the geometry of the features directly.
* :func:`linear_probe` -- a linear classifier on frozen features: what is *linearly*
  available. Used per layer by :func:`probe_layers` (RotNet's layer-wise curve). The default
  is the least-squares linear classifier (scikit-learn's ``RidgeClassifier``), which fits in
  closed form in milliseconds; ``method="logistic"`` is the papers' logistic regression (about
  15x slower on 2 cores, measured on the smoke-scale features; the same ranking of models).
* :func:`clustering_scores` -- NMI, ARI and Hungarian accuracy of a clustering against labels.

All take features as tensors or arrays of shape (N, D). The fitting is scikit-learn's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .nets import pooled


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _device(module) -> torch.device:
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def embed(fn, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Apply ``fn`` (a module, in eval mode, or any function of a batch) to all images; CPU tensor out."""
    was_training = getattr(fn, "training", False)
    if isinstance(fn, torch.nn.Module):
        fn.eval()
        device = _device(fn)
    else:
        device = images.device
    out = [fn(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    if was_training:
        fn.train()
    return torch.cat(out)


@torch.no_grad()
def layer_features(backbone, images: torch.Tensor, grid: int = 2, batch_size: int = 512) -> list[torch.Tensor]:
    """Every block's feature map, average-pooled to ``grid`` x ``grid`` and flattened (one tensor per block)."""
    backbone.eval()
    device = _device(backbone)
    chunks = [[pooled(f, grid).cpu() for f in backbone.features(images[i:i + batch_size].to(device))]
              for i in range(0, len(images), batch_size)]
    return [torch.cat(c) for c in zip(*chunks)]


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20) -> float:
    """Accuracy (0-1) of a k-nearest-neighbour vote under cosine similarity."""
    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine")
    knn.fit(_np(train_x), _np(train_y))
    return float((knn.predict(_np(test_x)) == _np(test_y)).mean())


PROBES = ("ridge", "logistic")


def linear_probe(train_x, train_y, test_x, test_y, method: str = "ridge", strength: float = 1.0) -> float:
    """Accuracy (0-1) of a linear classifier on standardised frozen features.

    ``method="ridge"``: one-vs-all least squares with L2 penalty ``10 * strength``;
    ``method="logistic"``: multinomial logistic regression with inverse penalty ``C = 1 / strength``.
    """
    if method not in PROBES:
        raise ValueError(f"unknown probe {method!r}; choose one of: {', '.join(PROBES)}")
    model = RidgeClassifier(alpha=10.0 * strength) if method == "ridge" else \
        LogisticRegression(C=1.0 / strength, max_iter=300)
    clf = make_pipeline(StandardScaler(), model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(_np(train_x), _np(train_y))
    return float((clf.predict(_np(test_x)) == _np(test_y)).mean())


def probe_layers(backbone, train, test, grid: int = 2, method: str = "ridge") -> pd.DataFrame:
    """Linear-probe accuracy of every block of ``backbone`` (train/test are :class:`Dataset` s)."""
    tr = layer_features(backbone, train.images, grid)
    te = layer_features(backbone, test.images, grid)
    rows = [{"block": i + 1, "dim": a.shape[1], "accuracy": linear_probe(a, train.labels, b, test.labels, method)}
            for i, (a, b) in enumerate(zip(tr, te))]
    return pd.DataFrame(rows)


def hungarian_accuracy(y_true, y_pred) -> float:
    """Accuracy after the best one-to-one matching of clusters to classes (scipy's assignment solver)."""
    y_true, y_pred = _np(y_true).astype(int), _np(y_pred).astype(int)
    n = max(y_true.max(), y_pred.max()) + 1
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(y_true))


def clustering_scores(y_true, y_pred) -> dict[str, float]:
    """NMI, ARI and Hungarian accuracy of cluster assignments ``y_pred`` against labels ``y_true``."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    return {"nmi": float(normalized_mutual_info_score(y_true, y_pred)),
            "ari": float(adjusted_rand_score(y_true, y_pred)),
            "accuracy": hungarian_accuracy(y_true, y_pred)}


def factor_predictability(train_x, test_x, train_factors: pd.DataFrame, test_factors: pd.DataFrame,
                          factors=("shape", "superclass", "colour", "texture", "domain")) -> pd.Series:
    """Linear-probe accuracy of each categorical factor from the features: what the features keep."""
    return pd.Series({f: linear_probe(train_x, train_factors[f].to_numpy(), test_x, test_factors[f].to_numpy())
                      for f in factors}, name="probe accuracy")
