"""PBN (novel class discovery in tabular data): the loss, the training, k estimation and hidden-class CV."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ssl_tutorial.data.tabular import make_tabular
from ssl_tutorial.evaluate import hungarian_accuracy
from ssl_tutorial.methods import pbn
from ssl_tutorial.methods.pbn import (
    PBN,
    estimate_k,
    hidden_class_cv,
    hidden_folds,
    kmeans,
    latent,
    train_pbn,
)

SMALL = {"steps": 5, "batch_size": 32, "hidden": 16, "latent_dim": 4}  # a fraction of a second


def _blobs(seed=0, per=40):
    """4 Gaussians far apart in 5-d, each in its own direction (k-means by direction sees them too)."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.eye(5)[:4]
    points = np.concatenate([c + rng.standard_normal((per, 5)) for c in centres])
    return points, np.repeat(np.arange(4), per)


def _rows(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, 3, n)


def test_hungarian_accuracy_takes_any_label_values_and_unequal_counts():
    # pbn scores novel classes 6..9 against clusters 0..3 with evaluate.hungarian_accuracy
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    assert hungarian_accuracy(y, np.array([2, 0, 1])[y]) == 1.0
    assert hungarian_accuracy(np.array([3, 3, 5, 5]), np.array([10, 10, 20, 20])) == 1.0
    assert hungarian_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5  # more clusters than classes
    assert hungarian_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1]) == pytest.approx(4 / 6)  # fewer


@pytest.mark.parametrize("w", [-0.1, 1.5])
def test_pbn_rejects_w_outside_the_unit_interval(w):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        PBN(6, 3, w=w)


@pytest.mark.parametrize("w", [0.0, 1.0])
def test_loss_is_cross_entropy_at_w_one_and_reconstruction_at_w_zero(w):
    torch.manual_seed(0)
    model = PBN(6, 3, w=w, latent_dim=4, hidden=8).eval()
    x_l, y_l, x_all = torch.randn(10, 6), torch.randint(0, 3, (10,)), torch.randn(20, 6)
    loss, logs = model.loss(x_l, y_l, x_all)
    ce = F.cross_entropy(model.head(model.encoder(x_l)), y_l)
    mse = ((model.decoder(model.encoder(x_all)) - x_all) ** 2).sum(1).mean()  # summed over columns, as the paper
    assert logs["ce"] == pytest.approx(ce.item()) and logs["mse"] == pytest.approx(mse.item())
    torch.testing.assert_close(loss, ce if w == 1 else mse)
    mixed = PBN(6, 3, w=0.25, latent_dim=4, hidden=8)
    mixed.load_state_dict(model.state_dict())
    torch.testing.assert_close(mixed.eval().loss(x_l, y_l, x_all)[0], 0.25 * ce + 0.75 * mse)


def test_train_pbn_is_seeded_and_leaves_the_global_generator_alone():
    x, y = _rows()
    labelled = y < 2
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    a = latent(train_pbn(x, y, labelled, seed=0, **SMALL), x)
    torch.testing.assert_close(torch.rand(3), expected)
    b = latent(train_pbn(x, y, labelled, seed=0, **SMALL), x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, latent(train_pbn(x, y, labelled, seed=1, **SMALL), x))


def test_latent_has_one_row_per_input_and_latent_dim_columns():
    x, y = _rows()
    model = train_pbn(x, y, y < 2, **{**SMALL, "latent_dim": 3})
    z = latent(model, x[:7])
    assert isinstance(z, np.ndarray) and z.shape == (7, 3)
    assert not model.training


def test_train_pbn_remaps_labels_to_consecutive_classes():
    x, _ = _rows()
    y = np.where(np.arange(len(x)) % 2, 5, 3)
    y[-10:] = 8  # a novel class, never labelled
    model = train_pbn(x, y, y != 8, **SMALL)
    assert model.head.out_features == 2


@pytest.mark.parametrize("change", ["x_1d", "labels", "flags"])
def test_train_pbn_rejects_mismatched_shapes(change):
    x, y = _rows()
    labelled = np.ones(len(x), bool)
    if change == "x_1d":
        x = x[:, 0]
    elif change == "labels":
        y = y[:-1]
    else:
        labelled = labelled[:-1]
    with pytest.raises(ValueError, match="one label and flag per row"):
        train_pbn(x, y, labelled, **SMALL)


def test_train_pbn_needs_labelled_rows():
    x, y = _rows()
    with pytest.raises(ValueError, match="at least two labelled rows"):
        train_pbn(x, y, np.zeros(len(x), bool), **SMALL)
    one = np.zeros(len(x), bool)
    one[0] = True
    with pytest.raises(ValueError, match="at least two labelled rows.*got 1"):
        train_pbn(x, y, one, **SMALL)


def test_kmeans_recovers_blobs():
    points, truth = _blobs()
    assert hungarian_accuracy(truth, kmeans(points, 4)) == 1.0


@pytest.mark.parametrize("normalise", [True, False])
def test_estimate_k_finds_four_blobs(normalise):
    points, _ = _blobs()
    k, scores = estimate_k(points, ks=range(2, 7), normalise=normalise)
    assert k == 4 and isinstance(k, int)
    assert isinstance(scores, pd.Series)
    assert list(scores.index) == [2, 3, 4, 5, 6] and scores.index.name == "k"
    assert scores.idxmax() == 4 and scores.between(-1, 1).all()


def test_estimate_k_skips_invalid_k_and_raises_when_none_is_left():
    points, _ = _blobs(per=2)  # 8 points
    _, scores = estimate_k(points, ks=[1, 2, 3, 8, 9])
    assert list(scores.index) == [2, 3]
    with pytest.raises(ValueError, match="at least one number of clusters"):
        estimate_k(points, ks=[1, 8, 20])


def test_hidden_folds_partition_the_known_classes_and_are_seeded():
    known = np.arange(7)
    folds = hidden_folds(known, 3, seed=0)
    assert len(folds) == 3
    assert sorted(np.concatenate(folds).tolist()) == known.tolist()
    assert all(len(f) >= 2 and np.all(np.diff(f) > 0) for f in folds)
    again = hidden_folds(known, 3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    others = [hidden_folds(known, 3, seed=s) for s in range(1, 6)]
    assert any(not all(np.array_equal(a, b) for a, b in zip(folds, o)) for o in others)
    assert sorted(np.concatenate(hidden_folds([3, 5, 9, 11], 2)).tolist()) == [3, 5, 9, 11]


@pytest.mark.parametrize("known, folds", [(np.arange(5), 3), (np.arange(10), 1), ([0, 1], 2)])
def test_hidden_folds_rejects_too_few_classes(known, folds):
    with pytest.raises(ValueError, match="at least two known classes per fold"):
        hidden_folds(known, folds)


def test_hidden_class_cv_scores_every_w_and_fold_without_novel_labels(monkeypatch):
    table = make_tabular(600, seed=0)
    x, y = table.matrix(), table.labels
    calls = []

    def recording(x_fold, y_fold, labelled, **kwargs):
        calls.append((np.asarray(y_fold).copy(), np.asarray(labelled).copy()))
        return train_pbn(x_fold, y_fold, labelled, **kwargs)

    monkeypatch.setattr(pbn, "train_pbn", recording)
    ws = [0.5, 1.0]
    result = hidden_class_cv(x, y, table.known, ws, folds=3, seed=0, steps=20, batch_size=64, hidden=32)
    assert isinstance(result, pd.DataFrame)
    assert list(result.columns) == ["w", "fold", "accuracy"]
    assert len(result) == len(ws) * 3
    assert set(zip(result["w"], result["fold"])) == {(w, f) for w in ws for f in range(3)}
    assert result["accuracy"].between(0, 100).all()

    hidden = hidden_folds(table.known, 3, seed=0)
    assert len(calls) == len(ws) * 3
    for i, (y_fold, labelled) in enumerate(calls):
        fold_hidden = hidden[i // len(ws)]
        assert set(np.unique(y_fold)) <= set(table.known)  # no novel row at all
        assert not np.isin(y_fold, table.novel).any()
        assert not labelled[np.isin(y_fold, fold_hidden)].any()  # the hidden classes are never labelled
        assert labelled[~np.isin(y_fold, fold_hidden)].all()  # the other known classes are
        assert set(np.unique(y_fold[~labelled])) == set(fold_hidden)
