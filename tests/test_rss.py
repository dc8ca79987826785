"""Out-of-domain unlabelled data (RSS, Saberi et al. 2024): the shifted Gaussian world and the robust self-training
learner, each property checked on small, seeded problems."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm as gaussian

from ssl_tutorial.data.mixtures import make_shifted_mixture
from ssl_tutorial.methods.rss import (
    METHODS,
    error_table,
    fit_method,
    labelled_mean,
    robust_loss,
    rss_objective,
    self_training,
    signed_distance,
    train_rss,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny problems: one thread beats two fighting


def _tensors(*arrays):
    return [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in arrays]


def _cosine(theta, direction):
    return np.abs(theta @ direction) / (np.linalg.norm(theta, axis=-1) * np.linalg.norm(direction))


# --- the world -----------------------------------------------------------------------------------------------------


def test_samples_are_seeded_shaped_and_labelled_plus_minus_one():
    world = make_shifted_mixture(dim=6, seed=1)
    x, y = world.labelled(7, seed=3)
    assert x.shape == (7, 6) and y.shape == (7,)
    x2, y2 = world.labelled(7, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, world.labelled(7, seed=4)[0])
    xd, yd = world.labelled(7, draws=3, seed=3)
    assert xd.shape == (3, 7, 6) and yd.shape == (3, 7)
    assert set(np.unique(yd)) <= {-1.0, 1.0} and set(np.unique(world.labelled(200)[1])) == {-1.0, 1.0}
    u = world.unlabelled(9, seed=2)
    assert u.shape == (9, 6) and np.array_equal(u, world.unlabelled(9, seed=2))
    assert not np.array_equal(u, world.unlabelled(9, seed=5))
    assert world.unlabelled(9, draws=4, seed=2).shape == (4, 9, 6)
    assert world.unlabelled(0).shape == (0, 6)
    same, other = make_shifted_mixture(dim=6, seed=1), make_shifted_mixture(dim=6, seed=2)
    assert np.array_equal(world.mu_0, same.mu_0) and np.array_equal(world.mu_1, same.mu_1)
    assert not np.allclose(world.mu_0, other.mu_0)


def test_means_shift_and_outlier_direction_have_the_stated_geometry():
    world = make_shifted_mixture(dim=8, norm=1.7, shift=0.6, sigma=0.8, seed=4)
    assert np.isclose(np.linalg.norm(world.mu_0), 1.7)
    move = world.mu_1 - world.mu_0
    assert np.isclose(move @ world.mu_0, 0, atol=1e-12)
    assert np.isclose(np.linalg.norm(move), 0.6 * 1.7)
    w = world.outlier_direction
    assert np.isclose(np.linalg.norm(w), 1)
    assert np.isclose(w @ world.mu_0, 0, atol=1e-12) and np.isclose(w @ world.mu_1, 0, atol=1e-12)
    assert world.dim == 8 and world.sigma == 0.8 and world.shift == 0.6
    assert np.allclose(make_shifted_mixture(dim=5, shift=0.0).mu_1, make_shifted_mixture(dim=5, shift=0.0).mu_0)


def test_two_dimensional_world_has_no_outlier_direction():
    world = make_shifted_mixture(dim=2, seed=0)
    assert not world.outlier_direction.any()
    assert np.isclose(np.linalg.norm(world.mu_1 - world.mu_0), 0.5)
    assert world.unlabelled(5).shape == (5, 2)
    with pytest.raises(ValueError, match="dim >= 3"):
        world.unlabelled(5, contamination=0.2)


def test_sample_means_recover_the_class_means():
    world = make_shifted_mixture(dim=4, norm=1.5, shift=0.5, seed=2)
    x, y = world.labelled(20_000, seed=1)
    assert np.allclose((y[:, None] * x).mean(0), world.mu_0, atol=0.05)
    assert abs(y.mean()) < 0.03  # balanced classes
    u = world.unlabelled(20_000, seed=1)
    folded = (np.sign(u @ world.mu_1)[:, None] * u).mean(0)  # the unlabelled classes, told apart by the true mu_1
    assert _cosine(folded, world.mu_1) > 0.95
    assert _cosine(folded, world.mu_0) < _cosine(folded, world.mu_1)


def test_contamination_replaces_exactly_the_first_points_by_a_far_clump():
    world = make_shifted_mixture(dim=5, seed=3)
    n, c, far = 400, 0.23, 20.0
    k = int(round(c * n))
    clean = world.unlabelled(n, seed=7)
    dirty = world.unlabelled(n, seed=7, contamination=c, outlier_distance=far)
    changed = ~np.all(dirty == clean, axis=1)
    assert changed.sum() == k and changed[:k].all()
    assert np.array_equal(dirty[k:], clean[k:])
    along = dirty[:k] @ world.outlier_direction
    assert abs(along.mean() - far) < 0.4 and along.min() > far - 5
    assert np.abs(dirty[:k] @ world.mu_0).mean() < 3  # the clump is centred on the origin in the other directions
    stacked, clean_stacked = (world.unlabelled(50, draws=3, seed=1, contamination=c),
                              world.unlabelled(50, draws=3, seed=1))
    k = int(round(c * 50))
    assert np.array_equal(stacked[:, k:], clean_stacked[:, k:]) and not np.any(stacked[:, :k] == clean_stacked[:, :k])
    assert np.allclose(world.unlabelled(10, seed=2, contamination=1.0) @ world.outlier_direction, 12, atol=5)


def test_exact_error_matches_a_monte_carlo_estimate():
    world = make_shifted_mixture(dim=5, norm=0.8, seed=0)
    theta = world.mu_0 + np.random.default_rng(0).standard_normal(5) * 0.6
    x, y = world.labelled(200_000, seed=9)
    empirical = 100 * (np.sign(x @ theta) != y).mean()
    assert abs(world.error(theta) - empirical) < 0.5


def test_error_is_scale_invariant_antisymmetric_and_floored_by_bayes():
    world = make_shifted_mixture(dim=7, norm=1.3, sigma=0.7, seed=5)
    assert np.isclose(world.bayes_error, 100 * gaussian.cdf(-1.3 / 0.7))
    thetas = np.random.default_rng(1).standard_normal((6, 7))
    errors = world.error(thetas)
    assert errors.shape == (6,)
    assert np.allclose(world.error(3 * thetas), errors)
    assert np.allclose(world.error(-thetas), 100 - errors)
    assert np.all(errors >= world.bayes_error - 1e-9)
    assert world.shifted_error >= world.bayes_error
    assert np.isclose(world.shifted_error, 100 * gaussian.cdf(-1.3 / (0.7 * np.sqrt(1 + 0.5 ** 2))))
    with pytest.raises(ValueError, match="theta = 0"):
        world.error(np.zeros(7))
    with pytest.raises(ValueError):
        world.error(np.stack([thetas[0], np.zeros(7)]))


def test_labelled_only_error_falls_towards_bayes_and_predicts_the_labelled_mean():
    world = make_shifted_mixture(dim=200, norm=1.0, seed=0)
    curve = world.labelled_only_error([1, 10, 100, 1000, 10 ** 7])
    assert np.all(np.diff(curve) < 0)
    assert np.isclose(curve[-1], world.bayes_error, atol=0.01)
    assert np.all(curve > world.bayes_error)
    x, y = world.labelled(10, draws=200, seed=0)
    assert abs(world.error(labelled_mean(x, y)).mean() - world.labelled_only_error(10)) < 2


@pytest.mark.parametrize("kwargs", [dict(dim=1), dict(norm=0.0), dict(norm=-1.0), dict(sigma=0.0), dict(shift=-0.1)])
def test_bad_world_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        make_shifted_mixture(**kwargs)


def test_bad_sample_sizes_and_contamination_raise():
    world = make_shifted_mixture(dim=4)
    with pytest.raises(ValueError, match="at least 1"):
        world.labelled(0)
    with pytest.raises(ValueError, match="negative"):
        world.unlabelled(-1)
    for c in (-0.1, 1.5):
        with pytest.raises(ValueError, match="contamination"):
            world.unlabelled(10, contamination=c)


# --- the method ----------------------------------------------------------------------------------------------------


def test_robust_loss_is_the_closed_form_of_the_wasserstein_dro_of_the_zero_one_loss():
    rho = np.linspace(-3, 5, 81)
    for gamma in (0.1, 0.3, 0.5, 1.0, 4.0):
        # the adversary moves x a distance t >= 0 towards (and past) the boundary, paying gamma t
        moves = np.concatenate([np.linspace(0, 10, 2001)[None].repeat(len(rho), 0), np.clip(rho, 0, None)[:, None]], 1)
        gain = (rho[:, None] - moves <= 0).astype(float) - gamma * moves
        brute = gain.max(1)
        closed = robust_loss(torch.as_tensor(rho), gamma).numpy()
        assert np.allclose(closed, brute, atol=1e-12)
        assert np.allclose(closed, np.clip(1 - gamma * rho, 0, 1))
        assert np.all(closed[rho <= 0] == 1)
        assert np.all(closed[rho >= 1 / gamma] == 0)


def test_signed_distance_is_the_normalised_margin_and_ignores_scale():
    rng = np.random.default_rng(0)
    theta, x = _tensors(rng.standard_normal((3, 5)), rng.standard_normal((3, 4, 5)))
    d = signed_distance(theta, x)
    assert d.shape == (3, 4)
    expected = np.einsum("dkj,dj->dk", x.numpy(), theta.numpy()) / np.linalg.norm(theta.numpy(), axis=-1)[:, None]
    assert np.allclose(d.numpy(), expected, atol=1e-5)
    assert torch.allclose(signed_distance(2.5 * theta, x), d, atol=1e-5)
    assert torch.allclose(signed_distance(-theta, x), -d, atol=1e-5)
    assert np.allclose(signed_distance(theta[0], x[0]).numpy(), expected[0], atol=1e-5)  # unbatched works too


def test_rss_objective_terms():
    world = make_shifted_mixture(dim=5, seed=0)
    x, y = world.labelled(6, draws=2, seed=1)
    u = world.unlabelled(30, draws=2, seed=1)
    theta, x, y, u = _tensors(np.random.default_rng(2).standard_normal((2, 5)), x, y, u)
    labelled_only = rss_objective(theta, x, y, gamma=0.7)
    assert labelled_only.shape == (2,)
    assert torch.allclose(labelled_only, robust_loss(y * signed_distance(theta, x), 0.7).mean(-1))
    assert torch.allclose(rss_objective(theta, x, y, u, lam=0.0, gamma=0.7), labelled_only)
    assert torch.allclose(rss_objective(theta, x, y, u[:, :0], gamma=0.7), labelled_only)
    # no robustness on the pseudo-labels: a classifier always agrees with itself, the unlabelled term vanishes
    for t in (theta, torch.randn(2, 5, generator=torch.Generator().manual_seed(3))):
        assert torch.allclose(rss_objective(t, x, y, u, lam=5.0, gamma=0.7, gamma_u=1e9), rss_objective(t, x, y, gamma=0.7))
    full = rss_objective(theta, x, y, u, lam=2.0, gamma=0.7, gamma_u=0.3)
    term = robust_loss(signed_distance(theta, u).abs(), 0.3).mean(-1)
    assert torch.allclose(full, labelled_only + 2.0 * term)
    assert torch.all(full > labelled_only)  # a boundary through the origin passes close to some unlabelled points
    assert torch.allclose(rss_objective(4.0 * theta, x, y, u, lam=2.0, gamma=0.7), full, atol=1e-6)


def test_train_rss_shapes_and_determinism():
    world = make_shifted_mixture(dim=6, seed=0)
    x, y = world.labelled(5, seed=1)
    u = world.unlabelled(40, seed=1)
    theta = train_rss(x, y, u, steps=10)
    assert theta.shape == (6,) and np.isfinite(theta).all()
    assert np.array_equal(theta, train_rss(x, y, u, steps=10))
    xd, yd = world.labelled(5, draws=3, seed=1)
    ud = world.unlabelled(40, draws=3, seed=1)
    assert train_rss(xd, yd, ud, steps=10).shape == (3, 6)
    assert train_rss(xd, yd, steps=10).shape == (3, 6)
    assert np.allclose(train_rss(x, y, u, steps=0), labelled_mean(x, y))  # training starts at the labelled mean


def test_train_rss_without_unlabelled_points_does_not_worsen_its_objective():
    world = make_shifted_mixture(dim=20, norm=1.5, seed=0)
    x, y = world.labelled(4, draws=6, seed=0)
    start, end = labelled_mean(x, y), train_rss(x, y)
    xt, yt = _tensors(x, y)
    before, after = rss_objective(torch.as_tensor(start), xt, yt), rss_objective(torch.as_tensor(end), xt, yt)
    assert torch.all(after <= before + 1e-6)
    assert np.array_equal(train_rss(x, y, lam=0.0), train_rss(x, y, world.unlabelled(50, draws=6), lam=0.0))


def test_rss_beats_erm_with_plenty_of_clean_unlabelled_data():
    world = make_shifted_mixture(dim=20, norm=1.5, seed=0)
    x, y = world.labelled(4, draws=4, seed=0)
    u = world.unlabelled(2000, draws=4, seed=0)
    erm, rss = world.error(fit_method("ERM", x, y, u)), world.error(fit_method("RSS", x, y, u))
    assert np.array_equal(fit_method("ERM", x, y, u), train_rss(x, y))
    assert rss.mean() < erm.mean() - 5
    assert world.error(fit_method("self-training", x, y, u)).mean() < erm.mean()  # clean data: self-training helps too


def test_self_training_without_unlabelled_points_is_the_labelled_mean():
    world = make_shifted_mixture(dim=6, seed=0)
    x, y = world.labelled(5, seed=1)
    assert np.array_equal(self_training(x, y, world.unlabelled(0)), labelled_mean(x, y))
    assert np.array_equal(self_training(x, y, None), labelled_mean(x, y))
    xd, yd = world.labelled(5, draws=2, seed=1)
    assert np.array_equal(self_training(xd, yd, world.unlabelled(0, draws=2)), labelled_mean(xd, yd))
    assert np.allclose(labelled_mean(x, y), (y[:, None] * x).mean(0), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_far_clump_captures_self_training_but_not_rss(seed):
    """Self-training counts every point fully, so a clump 30 sigma away drags theta onto its direction; RSS only
    needs its boundary to pass more than 1/gamma_u from the clump, a small tilt (cosine about (1/0.3 + 3) / 30)."""
    world = make_shifted_mixture(dim=20, norm=1.5, seed=seed)
    x, y = world.labelled(4, draws=3, seed=seed)
    u = world.unlabelled(300, draws=3, seed=seed, contamination=0.3, outlier_distance=30.0)
    w = world.outlier_direction
    assert np.all(_cosine(self_training(x, y, u), w) > 0.9)
    assert np.all(_cosine(train_rss(x, y, u, steps=100), w) < 0.45)


def test_bad_hyperparameters_and_shapes_raise():
    world = make_shifted_mixture(dim=4, seed=0)
    x, y = world.labelled(5, seed=0)
    u = world.unlabelled(8, seed=0)
    for kwargs in (dict(gamma=0.0), dict(gamma=-1.0), dict(gamma_u=0.0), dict(lam=-0.5)):
        with pytest.raises(ValueError):
            train_rss(x, y, u, steps=1, **kwargs)
    with pytest.raises(ValueError, match="y_l"):
        train_rss(x, y[:4], steps=1)
    with pytest.raises(ValueError, match="x_u"):
        train_rss(x, y, u[:, :3], steps=1)
    with pytest.raises(ValueError, match="x_u"):
        train_rss(world.labelled(5, draws=2)[0], world.labelled(5, draws=2)[1], u, steps=1)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        train_rss(x, (y > 0).astype(float), steps=1)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        self_training(x, (y > 0).astype(float), u)
    with pytest.raises(ValueError, match="y_l"):
        labelled_mean(x, y[:, None])
    with pytest.raises(ValueError, match="unknown method"):
        fit_method("nope", x, y, u)
    with pytest.raises(ValueError, match="unknown methods"):
        error_table(world, [0], m=5, draws=1, methods=["ERM", "nope"])


def test_error_table_has_one_row_per_n_method_and_draw():
    world = make_shifted_mixture(dim=8, seed=0)
    table = error_table(world, [0, 30], m=4, draws=2, seed=1, steps=10)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["n", "method", "draw", "error"]
    assert len(table) == 2 * len(METHODS) * 2
    assert not table.duplicated(["n", "method", "draw"]).any()
    assert set(table.method) == set(METHODS) and set(table.n) == {0, 30} and set(table.draw) == {0, 1}
    assert table.error.between(0, 100).all()
    erm = table[table.method == "ERM"].pivot(index="draw", columns="n", values="error")
    assert np.array_equal(erm[0].to_numpy(), erm[30].to_numpy())
    at_zero = table[table.n == 0].pivot(index="draw", columns="method", values="error")
    assert np.allclose(at_zero["RSS"], at_zero["ERM"])  # no unlabelled points: RSS is ERM
    assert len(error_table(world, [5], m=4, draws=3, methods=["ERM"], steps=2)) == 3
