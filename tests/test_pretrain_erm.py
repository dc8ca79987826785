"""Chapter 10's first notebook: the labelled Gaussian mixture and the pretrain-then-ERM learner."""

import numpy as np
import pytest

from ssl_tutorial.data.mixtures import make_mixture
from ssl_tutorial.methods.pretrain_erm import PretrainThenERM, risk_curves, supervised


def test_means_form_a_regular_simplex_and_u_is_orthogonal_to_them():
    world = make_mixture(dim=12, n_components=6, n_classes=3, separation=4.0, sigma=0.5, seed=3)
    gaps = np.linalg.norm(world.means[:, None] - world.means[None], axis=-1)[~np.eye(6, dtype=bool)]
    assert np.allclose(gaps, 4.0 * 0.5)
    assert np.allclose(world.means @ world.direction, 0, atol=1e-12)
    assert np.isclose(np.linalg.norm(world.direction), 1)
    assert list(world.component_class) == [0, 1, 2, 0, 1, 2]


def test_samples_are_seeded_and_labels_follow_the_rule():
    world = make_mixture(seed=0)
    a, b = world.sample(500, seed=4), world.sample(500, seed=4)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    x, z, y = a
    assert np.array_equal(y, world.component_class[z])
    other = make_mixture(rule="non-informative", seed=0)
    x, z, y = other.sample(4000, seed=1)
    assert set(np.unique(y)) == {0, 1}
    for k in range(other.n_components):  # the label is independent of the component
        assert abs(y[z == k].mean() - 0.5) < 0.12


def test_bayes_classifier_beats_chance_by_far_and_recovers_the_rule():
    for rule in ("informative", "non-informative"):
        world = make_mixture(separation=6.0, rule=rule, seed=2)
        x, _, y = world.sample(3000, seed=5)
        assert (world.bayes_predict(x) == y).mean() > 0.95


def test_pretraining_then_erm_needs_few_labels():
    world = make_mixture(separation=5.0, seed=1)
    learner = PretrainThenERM(8, seed=0).pretrain(world.sample(3000, seed=2)[0])
    x, _, y = world.sample(200, seed=3)
    x_test, _, y_test = world.sample(2000, seed=4)
    assert (learner.fit(x, y).predict(x_test) == y_test).mean() > 0.9
    assert np.allclose(learner.represent(x_test).sum(1), 1)


def test_one_class_of_labels_gives_that_class():
    world = make_mixture(seed=0)
    x, _, _ = world.sample(10, seed=1)
    assert (supervised(x, np.full(10, 2)).predict(x) == 2).all()
    learner = PretrainThenERM(8).pretrain(world.sample(200, seed=0)[0]).fit(x, np.full(10, 1))
    assert (learner.predict(x) == 1).all()


def test_risk_curves_table():
    world = make_mixture(seed=0)
    table = risk_curves(world, [16, 64], m=500, draws=2, test=500, seed=0)
    assert set(table.columns) == {"n", "learner", "draw", "error", "excess"}
    assert len(table) == 2 * 2 * 3
    assert np.allclose(table["error"] - table["excess"], table.attrs["bayes"])


@pytest.mark.parametrize("call, match", [
    (lambda: make_mixture(rule="sideways"), "unknown label rule"),
    (lambda: make_mixture(separation=0), "must be positive"),
    (lambda: make_mixture(n_components=3, n_classes=4), "n_classes <= n_components"),
    (lambda: make_mixture(dim=8, n_components=8), "dim must exceed"),
    (lambda: make_mixture().sample(0), "at least 1"),
    (lambda: PretrainThenERM(8).represent(np.zeros((2, 20))), "call pretrain"),
    (lambda: PretrainThenERM(8).pretrain(np.zeros((4, 20))), "at least as many"),
    (lambda: supervised(np.zeros((4, 2)), np.array([0, 1, 0, 1]), kind="forest"), "unknown supervised"),
    (lambda: risk_curves(make_mixture(), [8], m=100, learners=("kNN",)), "unknown learners"),
])
def test_bad_input_is_one_clear_line(call, match):
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "\n" not in str(error.value)
