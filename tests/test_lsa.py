"""The web-noise detectors (chapter 4 groundwork): small loss, linear separation, sharpening, PLS weights."""

import numpy as np
import pytest

from ssl_tutorial.methods import lsa


def _losses(n_clean=400, n_noisy=100, seed=0):
    rng = np.random.default_rng(seed)
    losses = np.concatenate([rng.gamma(2.0, 0.1, n_clean), 2.5 + 0.3 * rng.standard_normal(n_noisy)])
    return losses, np.r_[np.zeros(n_clean, bool), np.ones(n_noisy, bool)]


def test_small_loss_flags_the_high_loss_mode():
    losses, noisy = _losses()
    flagged = lsa.small_loss_noisy(losses)
    assert flagged.dtype == bool and flagged.shape == losses.shape
    assert (flagged == noisy).mean() > 0.98
    assert np.array_equal(flagged, lsa.small_loss_noisy(losses))  # seeded
    # invariant to the scale and offset of the losses (they are min-max normalised first)
    assert np.array_equal(flagged, lsa.small_loss_noisy(3 * losses + 7))
    # a stricter threshold flags no more samples
    assert lsa.small_loss_noisy(losses, threshold=0.999).sum() <= flagged.sum()


def test_linear_separation_finds_a_separable_group_the_seeds_only_half_find():
    """OOD samples live in their own linear region of feature space: the hyperplane trained on noisy seeds that
    catch only some of them (and some clean samples by mistake) still flags all of them."""
    rng = np.random.default_rng(1)
    clean = rng.standard_normal((300, 8)) + np.r_[3.0, np.zeros(7)]
    ood = rng.standard_normal((100, 8)) + np.r_[-3.0, np.zeros(7)]
    features = np.vstack([clean, ood])
    is_ood = np.r_[np.zeros(300, bool), np.ones(100, bool)]
    seeds = is_ood & (rng.random(400) < 0.5)  # half the OOD samples
    seeds[:10] = True  # and a few clean ones by mistake
    flagged = lsa.linear_separation_noisy(features, seeds)
    assert flagged[is_ood].mean() > 0.95 and flagged[~is_ood].mean() < 0.05
    # the features' lengths do not matter: they are L2-normalised first
    assert np.array_equal(flagged, lsa.linear_separation_noisy(features * rng.uniform(0.5, 2, (400, 1)), seeds))


def test_sharpen_is_a_sharper_distribution():
    p = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])
    q = lsa.sharpen(p)
    np.testing.assert_allclose(q.sum(1), 1)
    np.testing.assert_allclose(q[0], np.array([0.25, 0.09, 0.04]) / 0.38)
    assert (q.max(1) > p.max(1)).all() and (q.argmax(1) == p.argmax(1)).all()
    np.testing.assert_allclose(lsa.sharpen(p, gamma=1.0), p)


def test_pls_weights_keep_confident_guesses_and_drop_unsure_ones():
    rng = np.random.default_rng(2)
    confident = lsa.sharpen(np.eye(5)[rng.integers(0, 5, 80)] * 0.9 + 0.02)
    unsure = rng.dirichlet(np.ones(5) * 5, 40)  # OOD images: predictions near uniform
    p = np.vstack([confident, unsure])
    weights = lsa.pls_weights(p, lsa.sharpen(p))
    assert weights.shape == (120,) and ((0 <= weights) & (weights <= 1)).all()
    assert weights[:80].mean() > 0.9 and weights[80:].mean() < 0.1


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="threshold"):
        lsa.small_loss_noisy([0.1, 0.2, 3.0], threshold=1.0)
    with pytest.raises(ValueError, match="finite"):
        lsa.small_loss_noisy([0.1, np.nan, 3.0])
    with pytest.raises(ValueError, match="nothing to separate"):
        lsa.linear_separation_noisy(np.ones((4, 2)), np.zeros(4, bool))
    with pytest.raises(ValueError, match="one seed flag per row"):
        lsa.linear_separation_noisy(np.ones((4, 2)), np.array([True, False]))
    with pytest.raises(ValueError, match="gamma"):
        lsa.sharpen(np.ones((2, 2)) / 2, gamma=0)
    with pytest.raises(ValueError, match="both be"):
        lsa.pls_weights(np.ones((3, 2)) / 2, np.ones((3, 3)) / 3)
