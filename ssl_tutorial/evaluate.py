"""How good is a representation? The evaluation protocols of the SSL literature.

Taught in notebooks/00_start/01_shapes_world.ipynb.

* :func:`knn_accuracy` -- classify each test point by a vote of its k nearest training points
  (cosine similarity); no training, so it reads the geometry of the features directly.
* :func:`linear_probe` -- a linear classifier on frozen features: what is *linearly*
  available. Used per layer by :func:`probe_layers` (RotNet's layer-wise curve). The default
  is the least-squares linear classifier (scikit-learn's ``RidgeClassifier``), which fits in
  closed form in milliseconds; ``method="logistic"`` is the papers' logistic regression (about
  15x slower on 2 cores, measured on the smoke-scale features; the same ranking of models).
* :func:`few_shot_accuracy` -- 1-nearest-neighbour with only a few labelled examples per class,
  averaged over many random draws of those examples: what a representation gives when labels are scarce.
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
    """Apply ``fn`` to all images, in eval mode, on its device; CPU tensor out.

    ``fn`` is a module, a method of a module (e.g. ``model.project``) or any function of a batch.
    """
    owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    module = owner if isinstance(owner, torch.nn.Module) else None
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    device = _device(module) if module is not None else images.device
    out = [fn(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    if was_training:
        module.train()
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


def few_shot_accuracy(features, labels, shots: int = 3, draws: int = 50, seed: int = 0) -> float:
    """Mean accuracy (0-1) of a 1-nearest-neighbour classifier (cosine) that knows the labels of ``shots``
    random examples per class and labels all the other points, over ``draws`` random draws of the examples."""
    z = torch.nn.functional.normalize(torch.as_tensor(_np(features), dtype=torch.float32), dim=1)
    y = torch.as_tensor(_np(labels))
    classes = y.unique()
    if len(z) != len(y):
        raise ValueError(f"{len(z)} feature rows but {len(y)} labels")
    if min(int((y == c).sum()) for c in classes) <= shots:
        raise ValueError(f"every class needs more than shots={shots} examples")
    g = torch.Generator().manual_seed(seed)
    accs = []
    for _ in range(draws):
        known = torch.cat([torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:shots]]
                           for c in classes])
        rest = torch.ones(len(y), dtype=torch.bool)
        rest[known] = False
        nearest = (z[rest] @ z[known].T).argmax(1)
        accs.append(float((y[known][nearest] == y[rest]).float().mean()))
    return float(np.mean(accs))


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


def probe_over_noise(model, train, test, ts, blocks=None, grid: int = 1, seed: int = 0, draws: int = 1) -> pd.DataFrame:
    """Linear-probe accuracy (%) of a denoiser's block features on noised images: one row per timestep in
    ``ts``, one column per block. ``model.features(images, t, blocks, grid, seed)`` noises the images to t
    and reads the blocks (``methods.diffusion.DDPM``); train and test images get independent noise, ``draws``
    times each (the probe trains and tests on every draw: more draws, less noise in the accuracy)."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    kw = {} if blocks is None else {"blocks": blocks}
    table = {}
    for t in ts:
        tr = [model.features(train.images, t, grid=grid, seed=seed + 2 * d, **kw) for d in range(draws)]
        te = [model.features(test.images, t, grid=grid, seed=seed + 2 * d + 1, **kw) for d in range(draws)]
        table[t] = {b: 100 * linear_probe(torch.cat([f[b] for f in tr]), train.labels.repeat(draws),
                                          torch.cat([f[b] for f in te]), test.labels.repeat(draws)) for b in tr[0]}
    return pd.DataFrame.from_dict(table, orient="index").rename_axis(index="t")


def anomaly_auroc(inlier_score, is_anomaly) -> float:
    """The AUROC (%) of an anomaly detector whose score is high for inliers: the chance that a random anomaly scores
    below a random inlier (50: chance, 100: perfect). Taught in notebooks/04_discovery/05_unicon_ha.ipynb."""
    from sklearn.metrics import roc_auc_score

    is_anomaly = _np(is_anomaly).astype(bool)
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError("the AUROC needs both inliers and anomalies among the test images")
    return 100 * float(roc_auc_score(is_anomaly, -_np(inlier_score)))


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
                          factors=("shape", "superclass", "colour", "texture", "domain"),
                          method: str = "probe") -> pd.Series:
    """How well each categorical factor can be read off the features: what the features keep.

    ``method="probe"``: accuracy of a linear probe per factor; ``method="knn"``: accuracy of a
    k-nearest-neighbour vote, i.e. how often an image's neighbours share its factor.
    """
    if method not in ("probe", "knn"):
        raise ValueError(f"unknown method {method!r}; choose 'probe' or 'knn'")
    read = linear_probe if method == "probe" else knn_accuracy
    return pd.Series({f: read(train_x, train_factors[f].to_numpy(), test_x, test_factors[f].to_numpy())
                      for f in factors}, name=f"{method} accuracy")


def perplexity(p: torch.Tensor) -> float:
    """exp(entropy) of a distribution (or of counts): how many outcomes are effectively in use, e.g.
    prototypes (SwAV) or visual words (OBoW). Between 1 (one outcome) and the number of outcomes."""
    p = p / p.sum()
    return float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


# -- geometry of contrastive embeddings (taught in notebooks/01_foundations/04_temperature.ipynb) --------
def _unit(z) -> torch.Tensor:
    z = torch.as_tensor(_np(z), dtype=torch.float32)
    return torch.nn.functional.normalize(z, dim=1)


def alignment(z_a, z_b, alpha: float = 2.0) -> float:
    """Wang & Isola (2020): E ||f(x) - f(y)||^alpha over positive pairs (rows of z_a, z_b), on the sphere.
    Lower is better aligned."""
    return float((_unit(z_a) - _unit(z_b)).norm(dim=1).pow(alpha).mean())


def uniformity(z, t: float = 2.0) -> float:
    """Wang & Isola (2020): log E exp(-t ||f(x) - f(y)||^2) over all pairs, on the sphere.
    Lower is more uniform; 0 means every point is the same."""
    return float(torch.pdist(_unit(z)).pow(2).mul(-t).exp().mean().log())


def tolerance(z, labels) -> float:
    """Wang & Liu (2021): the mean cosine similarity of pairs of the same class (i != j).
    High tolerance: semantically similar samples sit close together."""
    z, labels = _unit(z), torch.as_tensor(_np(labels))
    sim = z @ z.T
    same = (labels.view(-1, 1) == labels.view(1, -1)) & ~torch.eye(len(z), dtype=torch.bool)
    return float(sim[same].mean())


def effective_rank(z) -> float:
    """Roy & Vetterli (2007): exp of the entropy of the normalised singular values of the centred
    embeddings; between 1 (everything on a line) and the dimension (isotropic)."""
    z = torch.as_tensor(_np(z), dtype=torch.float64)
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def negative_weights(sim_row, positive: int, temperature: float) -> torch.Tensor:
    """The relative penalty InfoNCE puts on each negative of one anchor (Wang & Liu, 2021):
    r_k = exp(s_k / tau) / sum_{k' negative} exp(s_k' / tau), a Boltzmann distribution over negatives.
    ``sim_row`` holds the anchor's similarities to all other samples; ``positive`` indexes its partner."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    s = torch.as_tensor(_np(sim_row), dtype=torch.float64)
    keep = torch.ones_like(s, dtype=torch.bool)
    keep[positive] = False
    return torch.softmax(s[keep] / temperature, dim=0)
