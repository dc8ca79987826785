import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor

from ssl_tutorial.methods.forest_smoother import (
    REGRESSION_FUNCTIONS,
    effective_parameters,
    error_decomposition,
    in_bag_counts,
    sample_regression,
    smoother_weights,
    tree_weights,
)

MODELS = {
    "tree": lambda: DecisionTreeRegressor(min_samples_leaf=3, random_state=0),
    "forest_bootstrap": lambda: RandomForestRegressor(n_estimators=8, random_state=0),
    "forest_no_bootstrap": lambda: RandomForestRegressor(n_estimators=8, bootstrap=False, max_features=0.5,
                                                         random_state=0),
    "forest_max_samples": lambda: RandomForestRegressor(n_estimators=8, max_samples=0.5, random_state=0),
    "extra_trees": lambda: ExtraTreesRegressor(n_estimators=8, min_samples_leaf=2, random_state=0),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("function", ["sine", "sine_2d"])
def test_weights_reproduce_predictions(name, function):
    X, y, _ = sample_regression(120, function, seed=1)
    X_new, _, _ = sample_regression(50, function, seed=2)
    model = MODELS[name]().fit(X, y)
    for points in (X, X_new):
        w = smoother_weights(model, X, points)
        assert w.shape == (len(points), len(X))
        assert (w >= 0).all()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(w @ y, model.predict(points), atol=1e-8)


def test_in_bag_counts():
    X, y, _ = sample_regression(100, seed=0)
    counts = in_bag_counts(RandomForestRegressor(n_estimators=6, random_state=0).fit(X, y), len(X))
    assert counts.shape == (6, 100) and np.issubdtype(counts.dtype, np.integer)
    assert (counts.sum(axis=1) == 100).all()
    assert (counts != 1).any() and (counts == 0).any() and (counts >= 2).any()
    half = in_bag_counts(RandomForestRegressor(n_estimators=6, max_samples=0.5, random_state=0).fit(X, y), len(X))
    assert (half.sum(axis=1) == 50).all()
    no_boot = RandomForestRegressor(n_estimators=3, bootstrap=False, random_state=0).fit(X, y)
    assert (in_bag_counts(no_boot, len(X)) == 1).all()


def test_effective_parameters():
    X, y, _ = sample_regression(100, seed=0)
    tree = DecisionTreeRegressor(min_samples_leaf=1, random_state=0).fit(X, y)
    p_tree = effective_parameters(smoother_weights(tree, X, X))
    assert p_tree == pytest.approx(len(X))
    forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    assert effective_parameters(smoother_weights(forest, X, X)) < p_tree
    assert effective_parameters(np.full((7, 30), 1 / 30)) == pytest.approx(1.0)


def test_sample_regression():
    for name, f in REGRESSION_FUNCTIONS.items():
        X, y, f_true = sample_regression(40, name, noise=0.0, seed=5)
        assert X.shape == (40, f.dim) and y.shape == f_true.shape == (40,)
        np.testing.assert_array_equal(y, f_true)
    a, b = sample_regression(30, seed=4), sample_regression(30, seed=4)
    np.testing.assert_array_equal(a[1], b[1])


class _Mean:
    """Predicts the mean outcome everywhere: its error terms are known in closed form."""

    def __init__(self, seed):
        pass

    def fit(self, X, y):
        self.value = y.mean()
        return self

    def predict(self, X):
        return np.full(len(X), self.value)


def test_error_decomposition_is_unbiased():
    # for the mean predictor on sin(2 pi x), x ~ U[0, 1]: noise var = noise^2 / n, input var = Var f / n = 1 / (2 n),
    # bias^2 = mean of f(x)^2 over the test points (E f = 0)
    X_test = np.linspace(0, 1, 101)[:, None]
    n, noise = 10, 0.5
    out = error_decomposition(_Mean, "sine", n=n, noise=noise, X_test=X_test, input_draws=300, noise_draws=20, seed=0)
    assert set(out) == {"bias2", "input_variance", "noise_variance", "mse"}
    assert out["noise_variance"] == pytest.approx(noise**2 / n, rel=0.1)
    assert out["input_variance"] == pytest.approx(1 / (2 * n), rel=0.2)
    assert out["bias2"] == pytest.approx(np.mean(np.sin(2 * np.pi * X_test[:, 0]) ** 2), abs=0.01)
    total = out["bias2"] + out["input_variance"] + out["noise_variance"]
    assert total == pytest.approx(out["mse"], rel=0.05)


def test_error_decomposition_of_a_forest():
    X_test = np.linspace(0, 1, 25)[:, None]
    out = error_decomposition(lambda seed: RandomForestRegressor(n_estimators=5, random_state=seed), "sine", n=60,
                              noise=0.3, X_test=X_test, input_draws=3, noise_draws=3, seed=0)
    assert out["noise_variance"] > 0 and out["mse"] > 0
    assert all(isinstance(v, float) for v in out.values())

def test_tree_weights_average_to_the_forest():
    X, y, _ = sample_regression(50, seed=1)
    forest = RandomForestRegressor(n_estimators=6, random_state=0).fit(X, y)
    per_tree = list(tree_weights(forest, X, X[:10]))
    assert len(per_tree) == 6
    np.testing.assert_allclose(sum(per_tree) / 6, smoother_weights(forest, X, X[:10]))
    np.testing.assert_allclose(per_tree[0] @ y, forest.estimators_[0].predict(X[:10]), atol=1e-10)


def _one_line_error(fn, *args, **kwargs):
    with pytest.raises(ValueError) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_inputs():
    _one_line_error(sample_regression, 10, "wiggle")
    _one_line_error(sample_regression, 10, "sine", noise=-1.0)
    _one_line_error(error_decomposition, DecisionTreeRegressor, "wiggle", 10, 0.1, np.zeros((3, 1)))
    _one_line_error(error_decomposition, DecisionTreeRegressor, "sine", 10, -0.1, np.zeros((3, 1)))
    _one_line_error(error_decomposition, DecisionTreeRegressor, "sine", 10, 0.1, np.zeros((3, 2)))
    X, y, _ = sample_regression(40, seed=0)
    X2, _, _ = sample_regression(40, "sine_2d", seed=0)
    for model in (DecisionTreeRegressor().fit(X, y), RandomForestRegressor(n_estimators=2).fit(X, y)):
        _one_line_error(smoother_weights, model, X, X2)
        _one_line_error(smoother_weights, model, X2, X)
    for model in (DecisionTreeRegressor(), RandomForestRegressor(n_estimators=2), ExtraTreesRegressor()):
        _one_line_error(smoother_weights, model, X, X)
    _one_line_error(in_bag_counts, RandomForestRegressor(), 40)
