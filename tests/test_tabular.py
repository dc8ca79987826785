"""The tabular world of novel class discovery: seeded, standardised, and its columns carry what they claim."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid

from ssl_tutorial.data.tabular import LEVELS, Table, make_tabular
from ssl_tutorial.evaluate import hungarian_accuracy
from ssl_tutorial.methods.pbn import kmeans


def _columns(table, prefix):
    return table.frame[[c for c in table.frame.columns if c.startswith(prefix)]].to_numpy()


def _holdout_accuracy(model, x, y):
    half = len(y) // 2
    return model.fit(x[:half], y[:half]).score(x[half:], y[half:])


def test_same_seed_same_table_and_different_seed_different_table():
    a, b = make_tabular(300, seed=3), make_tabular(300, seed=3)
    assert isinstance(a, Table)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.nuisance, b.nuisance)
    c = make_tabular(300, seed=4)
    assert not np.allclose(a.frame.select_dtypes("number").to_numpy(), c.frame.select_dtypes("number").to_numpy())
    assert not np.array_equal(a.labels, c.labels)


def test_shapes_and_column_names():
    t = make_tabular(250, n_classes=6, n_novel=2, n_informative=5, n_irrelevant=7, seed=0)
    assert t.frame.shape == (250, 5 + 7 + 1)
    assert list(t.frame.columns) == [f"x{i}" for i in range(5)] + [f"noise{i}" for i in range(7)] + ["colour"]
    assert isinstance(t.frame["colour"].dtype, pd.CategoricalDtype)
    assert list(t.frame["colour"].cat.categories) == list(LEVELS)
    assert t.labels.shape == (250,) and t.nuisance.shape == (250,)
    assert set(np.unique(t.labels)) <= set(range(6))


def test_matrix_is_standardised_float32_with_one_hot_colour():
    t = make_tabular(500, n_informative=4, n_irrelevant=3, seed=1)
    m = t.matrix()
    assert m.dtype == np.float32 and m.shape == (500, 4 + 3 + len(LEVELS))
    numeric, one_hot = m[:, :7].astype(np.float64), m[:, 7:]
    np.testing.assert_allclose(numeric.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(numeric.std(0, ddof=1), 1, atol=1e-4)
    assert set(np.unique(one_hot)) <= {0.0, 1.0}
    np.testing.assert_array_equal(one_hot.sum(1), 1)
    codes = t.frame["colour"].cat.codes.to_numpy()
    np.testing.assert_array_equal(one_hot.argmax(1), codes)  # the one-hot columns in the order of LEVELS


def test_known_and_novel_split():
    t = make_tabular(400, n_classes=7, n_novel=3, seed=0)
    np.testing.assert_array_equal(t.known, [0, 1, 2, 3])
    np.testing.assert_array_equal(t.novel, [4, 5, 6])
    np.testing.assert_array_equal(t.is_known, t.labels < 4)
    assert t.is_known.dtype == bool
    t = make_tabular(100, n_classes=5, n_novel=0, seed=0)
    assert len(t.novel) == 0 and t.is_known.all()


def test_labels_are_roughly_uniform():
    t = make_tabular(20_000, n_classes=10, n_irrelevant=2, seed=0)
    freq = np.bincount(t.labels, minlength=10) / len(t.labels)
    np.testing.assert_allclose(freq, 0.1, atol=0.015)


def test_full_categorical_signal_gives_one_level_per_class():
    t = make_tabular(2000, categorical_signal=1.0, seed=0)
    colour = t.frame["colour"].astype(str).to_numpy()
    for k in np.unique(t.labels):
        assert len(np.unique(colour[t.labels == k])) == 1


def test_no_categorical_signal_makes_the_level_independent_of_the_class():
    t = make_tabular(4000, categorical_signal=0.0, seed=0)
    table = pd.crosstab(t.labels, t.frame["colour"])
    assert chi2_contingency(table.to_numpy())[1] > 1e-3
    share = t.frame["colour"].value_counts(normalize=True)
    np.testing.assert_allclose(share.to_numpy(), 1 / len(LEVELS), atol=0.03)


def test_partial_categorical_signal_leans_towards_one_level():
    t = make_tabular(4000, categorical_signal=0.5, seed=0)
    modal = pd.crosstab(t.labels, t.frame["colour"], normalize="index").max(1)
    # the favourite level: 0.5 + 0.5 / 4 = 0.625 of a class
    np.testing.assert_allclose(modal.to_numpy(), 0.625, atol=0.08)


def test_nuisance_groups_cluster_the_irrelevant_columns():
    t = make_tabular(1500, nuisance=4, seed=0)
    assert set(np.unique(t.nuisance)) == {0, 1, 2, 3}
    assert hungarian_accuracy(t.nuisance, kmeans(_columns(t, "noise"), 4)) > 0.9
    # the grouping is unrelated to the class
    assert chi2_contingency(pd.crosstab(t.labels, t.nuisance).to_numpy())[1] > 1e-3


def test_no_nuisance_gives_none():
    t = make_tabular(200, nuisance=0, seed=0)
    assert t.nuisance is None
    assert _columns(t, "noise").shape == (200, 20)


def test_no_irrelevant_columns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid input, nothing to warn about
        t = make_tabular(200, n_irrelevant=0, seed=0)
    assert [c for c in t.frame.columns if c.startswith("noise")] == []
    assert t.matrix().shape == (200, 12 + len(LEVELS))


def test_informative_columns_separate_the_classes():
    t = make_tabular(2000, seed=0)
    assert _holdout_accuracy(NearestCentroid(), _columns(t, "x"), t.labels) > 0.9  # chance is 0.1


def test_irrelevant_columns_carry_no_class_information():
    t = make_tabular(2000, seed=0)
    accuracy = _holdout_accuracy(LogisticRegression(max_iter=300), _columns(t, "noise"), t.labels)
    assert accuracy < 0.16  # chance is 0.1


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n must be a positive integer"),
    ({"n": -5}, "n must be a positive integer"),
    ({"n": 2.5}, "n must be a positive integer"),
    ({"n_classes": 0}, "n_classes must be a positive integer"),
    ({"n_novel": 10}, "n_novel"),
    ({"n_novel": 12}, "n_novel"),
    ({"n_novel": -1}, "n_novel"),
    ({"n_irrelevant": -1}, "n_irrelevant >= 0"),
    ({"separation": 0.0}, "separation > 0"),
    ({"separation": -1.0}, "separation > 0"),
    ({"categorical_signal": 1.5}, r"categorical_signal in \[0, 1\]"),
    ({"categorical_signal": -0.1}, r"categorical_signal in \[0, 1\]"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_tabular(**{"n": 50, **kwargs})


def test_negative_nuisance_raises():
    with pytest.raises(ValueError):
        make_tabular(50, nuisance=-1)
