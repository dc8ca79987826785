"""DDFA (latent label shift): the topic model recovered exactly where it is exact, and each step on its own."""

import numpy as np
import pytest
import torch

from ssl_tutorial.data.label_processes import domain_priors, label_shift
from ssl_tutorial.evaluate import hungarian_accuracy
from ssl_tutorial.methods.ddfa import (
    Factorisation,
    adjust,
    anchors,
    cluster_posterior,
    cluster_proportions,
    discretize,
    domain_posterior,
    factorize,
    match,
    prior_error,
)

D, K, COLOURS = 10, 4, 8


def _topic_model(seed=0, n=20_000):
    """An exact topic model: the word of a sample is its class and an independent colour, so p(c | y) has
    disjoint supports and p(c | d) = p(c | y) p(y | d) holds up to sampling noise."""
    priors = domain_priors(D, K, 0.5, seed=seed)
    domains, y = label_shift(n, priors, seed=seed)
    colour = np.random.default_rng([seed, 7]).integers(0, COLOURS, n)
    return priors, domains, y, y * COLOURS + colour


def test_factorize_recovers_the_priors_of_an_exact_topic_model():
    priors, domains, y, words = _topic_model()
    fac = factorize(words, domains, K, K * COLOURS, D, seed=0)
    assert fac.p_c_given_y.shape == (K * COLOURS, K)
    assert fac.p_y_given_d.shape == (K, D)
    assert fac.priors.shape == (D, K)
    posterior = cluster_posterior(words, fac, domains)
    assert posterior.shape == (len(y), K)
    np.testing.assert_allclose(posterior.sum(1), 1)
    perm = match(y, posterior.argmax(1), K)
    assert sorted(perm) == list(range(K))
    assert prior_error(fac.priors, priors, perm) <= 0.03
    assert hungarian_accuracy(y, posterior.argmax(1)) > 0.99  # disjoint words: the class is in the word


def test_factors_are_column_stochastic():
    _, domains, y, words = _topic_model(seed=1, n=5000)
    fac = factorize(words, domains, K, K * COLOURS, D, seed=0)
    for matrix in (fac.p_c_given_y, fac.p_y_given_d, fac.p_d_given_y):
        assert (matrix >= 0).all()
        np.testing.assert_allclose(matrix.sum(0), 1, atol=1e-9)
    np.testing.assert_allclose(fac.p_d, np.bincount(domains, minlength=D) / len(domains))
    np.testing.assert_allclose(fac.p_y.sum(), 1)


def test_factorize_rejects_more_classes_than_domains_or_clusters():
    _, domains, y, words = _topic_model(n=2000)
    with pytest.raises(ValueError, match="n_classes must be at most"):
        factorize(words, domains, D + 1, K * COLOURS, D)
    with pytest.raises(ValueError, match="n_classes must be at most"):
        factorize(words % 3, domains, K, 3, D)
    with pytest.raises(ValueError, match="n_classes must be at most"):
        factorize(words, domains, 0, K * COLOURS, D)


def test_cluster_proportions_counts_each_domain():
    clusters = np.array([0, 1, 1, 2, 0, 2, 2])
    domains = np.array([0, 0, 1, 1, 1, 1, 0])
    table = cluster_proportions(clusters, domains, n_clusters=3, n_domains=2)
    direct = np.array([[(clusters[domains == d] == c).mean() for c in range(3)] for d in range(2)])
    np.testing.assert_allclose(table, direct)
    np.testing.assert_allclose(table, [[1 / 3, 1 / 3, 1 / 3], [1 / 4, 1 / 4, 2 / 4]])
    np.testing.assert_allclose(table.sum(1), 1)
    with pytest.raises(ValueError, match="integers in 0..2"):
        cluster_proportions(np.array([0, 3]), np.array([0, 1]), 3, 2)
    with pytest.raises(ValueError, match="integers in 0..1"):
        cluster_proportions(np.array([0, 1]), np.array([0, 2]), 3, 2)


def test_match_inverts_a_permuted_labelling():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 500)
    sigma = np.array([3, 0, 4, 1, 2])  # predicted class of true class t is sigma[t]
    y_pred = sigma[y]
    perm = match(y, y_pred, 5)
    np.testing.assert_array_equal(perm[sigma], np.arange(5))  # perm is sigma's inverse
    np.testing.assert_array_equal(perm[y_pred], y)
    assert hungarian_accuracy(y, y_pred) == 1


def test_prior_error_is_zero_under_the_right_permutation():
    truth = domain_priors(6, 5, 1.0, seed=2)
    perm = np.array([3, 0, 4, 1, 2])  # estimated class k is true class perm[k]
    estimated = truth[:, perm]
    assert prior_error(estimated, truth, perm) == 0
    assert prior_error(estimated, truth, np.arange(5)) > 0.05
    assert prior_error(truth, truth, np.arange(5)) == 0


def _true_factorisation(seed=0):
    rng = np.random.default_rng(seed)
    priors = domain_priors(4, 3, 1.0, seed=seed)  # (D, K)
    p_d = np.array([0.1, 0.2, 0.3, 0.4])
    p_c_given_y = rng.dirichlet(np.ones(6), 3).T  # (m, K), columns sum to 1
    return priors, p_d, Factorisation(p_c_given_y=p_c_given_y, p_y_given_d=priors.T.copy(), p_d=p_d)


def test_p_d_given_y_is_bayes():
    priors, p_d, fac = _true_factorisation()
    joint = priors * p_d[:, None]  # p(d, y), (D, K)
    np.testing.assert_allclose(fac.p_d_given_y, joint / joint.sum(0))
    np.testing.assert_allclose(fac.p_y, joint.sum(0))


def test_adjust_recovers_the_class_from_an_exact_domain_posterior():
    priors, p_d, fac = _true_factorisation()
    joint = priors * p_d[:, None]
    p_d_given_y = joint / joint.sum(0)  # (D, K), computed here, not by the module
    y = np.tile(np.arange(3), 4)
    domains = np.repeat(np.arange(4), 3)
    p_d_given_x = np.eye(3)[y] @ p_d_given_y.T  # equation (1) with one-hot p(y | x)
    out = adjust(p_d_given_x, fac, domains)
    assert out.shape == (12, 3)
    np.testing.assert_allclose(out.sum(1), 1)
    np.testing.assert_array_equal(out.argmax(1), y)
    np.testing.assert_allclose(out, np.eye(3)[y], atol=1e-8)


def test_adjust_reweights_a_soft_posterior_by_the_domain():
    priors, p_d, fac = _true_factorisation(seed=1)
    joint = priors * p_d[:, None]
    p_d_given_y = joint / joint.sum(0)
    p_y_given_x = np.random.default_rng(3).dirichlet(np.ones(3), 8)
    domains = np.arange(8) % 4
    out = adjust(p_y_given_x @ p_d_given_y.T, fac, domains)
    expected = p_y_given_x * priors[domains] / joint.sum(0)
    np.testing.assert_allclose(out, expected / expected.sum(1, keepdims=True), atol=1e-8)


def test_adjust_rejects_a_mismatched_number_of_domains():
    _, _, fac = _true_factorisation()
    with pytest.raises(ValueError, match="p\\(d \\| x\\) has 5 domains, the factorisation 4"):
        adjust(np.full((2, 5), 0.2), fac, np.array([0, 1]))


def test_domain_posterior_is_a_softmax_per_image():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    images = torch.rand(10, 3, 8, 8)
    p = domain_posterior(model, images, batch_size=4)  # three batches, the last one short
    assert p.shape == (10, 5) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(p, model(images).softmax(1).double().numpy(), atol=1e-6)
    assert not model.training


def test_discretize_clusters_and_validates_m():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.01, (10, 3)), rng.normal(1, 0.01, (10, 3))])
    km = discretize(points, 2, seed=0)
    labels = km.predict(points)
    assert hungarian_accuracy(np.repeat([0, 1], 10), labels) == 1
    for bad in (0, -1, 21):
        with pytest.raises(ValueError, match="number of clusters m must be between 1"):
            discretize(points, bad)


def test_anchors_finds_the_corners_and_respects_candidates():
    corners = np.eye(3)
    mixtures = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.4, 0.2, 0.4]])
    rows = np.vstack([mixtures, corners])
    assert sorted(anchors(rows, 3)) == [3, 4, 5]
    allowed = np.array([True, True, True, False, True, True])
    assert 3 not in anchors(rows, 3, candidates=allowed)
    with pytest.raises(ValueError, match="candidate rows"):
        anchors(rows, 3, candidates=np.array([True, False, False, False, False, True]))
