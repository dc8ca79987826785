"""PBN, novel class discovery in tabular data: a latent space trained on the known classes, then k-means.

Troisemaine, Reiffers-Masson, Gosselin, Lemaire & Vaton, "A Practical Approach to Novel Class Discovery in Tabular
Data", Data Mining and Knowledge Discovery, 2024 (arXiv 2311.05440).
Taught in notebooks/04_discovery/02_ncd_tabular.ipynb.

Novel class discovery: labelled rows of *known* classes, unlabelled rows of *novel* classes, and the task of
clustering the novel rows into their classes. The knowledge that transfers is what makes a class a class in this
table. PBN (projection-based NCD) learns it with an encoder f, a classification head g on the known classes and a
decoder h that reconstructs every row, known or novel:

    L = w * CE(g(f(x_l)), y_l) + (1 - w) * || h(f(x)) - x ||^2                       (1)

with the squared error summed over the columns and averaged over rows, as in the official code (so a w near 1
balances the two terms).

then runs k-means on f(x) of the novel rows. The cross entropy pulls the latent towards the columns that separate
classes; the reconstruction keeps it from forgetting what the novel rows need and the known classes do not.

Two things are practical, the paper's point: **the number of novel classes** is not given, so it is estimated by
a cluster-validity index in the latent space (:func:`estimate_k`, the silhouette), and **the hyper-parameters**
(here w) are chosen without a single novel label, by cross-validation that hides some *known* classes in each
fold and treats them as novel (:func:`hidden_class_cv`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from torch import nn

from ..evaluate import hungarian_accuracy
from ..nets import mlp


class PBN(nn.Module):
    """Encoder f, head g over the known classes, decoder h; ``w`` weighs cross entropy against reconstruction (1)."""

    def __init__(self, in_dim: int, n_known: int, w: float = 0.5, latent_dim: int = 16, hidden: int = 128):
        super().__init__()
        if not 0 <= w <= 1:
            raise ValueError(f"w weighs cross entropy against reconstruction and must be in [0, 1], got {w!r}")
        self.encoder = mlp(in_dim, hidden, latent_dim)
        self.head = nn.Linear(latent_dim, n_known)
        self.decoder = mlp(latent_dim, hidden, in_dim)
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss(self, x_labelled, y_labelled, x_all):
        """Equation (1) on one batch of labelled rows and one of all rows: returns (loss, logs)."""
        cross_entropy = F.cross_entropy(self.head(self.encoder(x_labelled)), y_labelled)
        reconstruction = ((self.decoder(self.encoder(x_all)) - x_all) ** 2).sum(1).mean()
        return self.w * cross_entropy + (1 - self.w) * reconstruction, {"ce": cross_entropy.item(),
                                                                          "mse": reconstruction.item()}


def train_pbn(x: np.ndarray, y: np.ndarray, labelled: np.ndarray, w: float = 0.5, steps: int = 300,
              batch_size: int = 256, lr: float = 3e-3, seed: int = 0, **sizes) -> PBN:
    """Train PBN on rows ``x``: ``y[labelled]`` are the labels it may see (remapped to 0..C-1 inside), every row
    is reconstructed. ``sizes`` go to :class:`PBN` (``latent_dim``, ``hidden``). Seeded: the same arguments give
    the same weights."""
    x, y, labelled = np.asarray(x, dtype=np.float32), np.asarray(y), np.asarray(labelled, dtype=bool)
    if x.ndim != 2 or len(x) != len(y) or len(y) != len(labelled):
        raise ValueError(f"need x of shape (rows, columns) and one label and flag per row, got x {x.shape}, "
                         f"{len(y)} labels, {len(labelled)} flags")
    if labelled.sum() < 2:
        raise ValueError(f"PBN needs at least two labelled rows of known classes, got {labelled.sum()}")
    classes, y_l = np.unique(y[labelled], return_inverse=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PBN(x.shape[1], len(classes), w=w, **sizes)
        x_all, x_l = torch.from_numpy(x), torch.from_numpy(x[labelled])
        y_l = torch.from_numpy(y_l)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(steps):
            i = torch.randint(0, len(x_l), (min(batch_size, len(x_l)),))
            j = torch.randint(0, len(x_all), (min(batch_size, len(x_all)),))
            loss, _ = model.loss(x_l[i], y_l[i], x_all[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def latent(model: PBN, x: np.ndarray) -> np.ndarray:
    """f(x), the latent space in which novel classes are clustered."""
    model.eval()
    return model(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


def kmeans(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means cluster of every point (scikit-learn, k-means++ with several restarts)."""
    return KMeans(k, n_init=10, random_state=seed).fit_predict(points)


def estimate_k(points: np.ndarray, ks=range(2, 11), seed: int = 0, normalise: bool = True) -> tuple[int, pd.Series]:
    """The number of clusters with the best silhouette (mean over points of (b - a) / max(a, b), a the mean
    distance within the own cluster, b to the nearest other), and the silhouette of every k tried.

    ``normalise=True`` scales every point to unit length first (k-means and silhouette by direction, i.e. cosine):
    a latent trained with a cross entropy encodes a class as a direction, and its length mostly as confidence.
    """
    ks = [k for k in ks if 2 <= k < len(points)]
    if not ks:
        raise ValueError("give at least one number of clusters k with 2 <= k < number of points")
    if normalise:
        points = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    scores = pd.Series({k: silhouette_score(points, kmeans(points, k, seed)) for k in ks}, name="silhouette")
    scores.index.name = "k"
    return int(scores.idxmax()), scores


def hidden_folds(known, folds: int = 3, seed: int = 0) -> list[np.ndarray]:
    """The known classes split at random into ``folds`` groups: the classes each fold hides."""
    known = np.asarray(known)
    if folds < 2 or len(known) < 2 * folds:
        raise ValueError(f"need folds >= 2 and at least two known classes per fold, got {folds} folds and "
                         f"{len(known)} known classes")
    return [np.sort(f) for f in np.array_split(np.random.default_rng([seed, 13]).permutation(known), folds)]


def hidden_class_cv(x: np.ndarray, y: np.ndarray, known: np.ndarray, ws, folds: int = 3, seed: int = 0,
                    unlabelled: np.ndarray | None = None, **train) -> pd.DataFrame:
    """For each w in ``ws`` and each fold: hide that fold's known classes (:func:`hidden_folds`; treated as novel),
    train PBN on the others, cluster the hidden rows in its latent space with the true number of hidden classes,
    and score the clustering. Only known labels are used. ``unlabelled`` rows (the real novel ones, as in the paper)
    join every fold's reconstruction term, never its cross entropy or its score. Every fold and w trains from the
    same ``seed``. Returns a table (w, fold) -> accuracy (%)."""
    extra = np.zeros((0, x.shape[1]), x.dtype) if unlabelled is None else np.asarray(unlabelled, x.dtype)
    rows = []
    for fold, hidden in enumerate(hidden_folds(known, folds, seed)):
        visible = np.isin(y, known) & ~np.isin(y, hidden)
        is_hidden = np.isin(y, hidden)
        fold_x = np.vstack([x[visible | is_hidden], extra])
        fold_y = np.concatenate([y[visible | is_hidden], np.full(len(extra), -1)])
        fold_labelled = np.concatenate([visible[visible | is_hidden], np.zeros(len(extra), bool)])
        for w in ws:
            model = train_pbn(fold_x, fold_y, fold_labelled, w=w, seed=seed, **train)
            clusters = kmeans(latent(model, x[is_hidden]), len(hidden), seed)
            rows.append({"w": w, "fold": fold, "accuracy": 100 * hungarian_accuracy(y[is_hidden], clusters)})
    return pd.DataFrame(rows)
