"""The web-noise detectors (chapter 4 groundwork): small loss, linear separation, sharpening, PLS weights."""

import numpy as np
import pytest
import torch

from ssl_tutorial.methods import lsa
from ssl_tutorial.nets import ConvNet


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


# -- linear separation scores -------------------------------------------------------------------------------------
def _two_blobs(n_clean=60, n_noisy=20, seed=3):
    """Features of clean samples and of a separable noisy group, and seeds that flag the noisy group."""
    rng = np.random.default_rng(seed)
    features = np.vstack([rng.standard_normal((n_clean, 4)) + np.r_[3.0, 0, 0, 0],
                          rng.standard_normal((n_noisy, 4)) + np.r_[-3.0, 0, 0, 0]])
    return features, np.r_[np.zeros(n_clean, bool), np.ones(n_noisy, bool)]


def test_linear_separation_scores_are_signed_distances_whose_sign_is_the_flag():
    features, seeds = _two_blobs()
    scores = lsa.linear_separation_scores(features, seeds)
    assert scores.shape == (len(features),) and scores.dtype == np.float64 and np.isfinite(scores).all()
    np.testing.assert_array_equal(lsa.linear_separation_noisy(features, seeds), scores > 0)
    assert (scores[seeds] > 0).all() and (scores[~seeds] < 0).all()  # separable: every seed on its own side


def test_linear_separation_scores_take_a_finite_penalty():
    features, seeds = _two_blobs()
    free = lsa.linear_separation_scores(features, seeds)
    penalised = lsa.linear_separation_scores(features, seeds, C=0.01)
    assert penalised.shape == free.shape and np.isfinite(penalised).all()
    np.testing.assert_array_equal(penalised > 0, free > 0)  # the same side for every sample here ...
    assert np.abs(penalised).max() < np.abs(free).max()  # ... but a shorter normal vector: smaller distances
    np.testing.assert_array_equal(lsa.linear_separation_noisy(features, seeds, C=0.01), penalised > 0)


@pytest.mark.parametrize("function", [lsa.linear_separation_scores, lsa.linear_separation_noisy])
def test_linear_separation_rejects_bad_shapes_and_one_sided_seeds(function):
    with pytest.raises(ValueError, match="one seed flag per row"):
        function(np.ones(4), np.array([True, False, True, False]))  # 1-D features
    with pytest.raises(ValueError, match="one seed flag per row"):
        function(np.ones((4, 2)), np.array([True, False, True]))
    for seeds in (np.zeros(4, bool), np.ones(4, bool)):
        with pytest.raises(ValueError, match="nothing to separate"):
            function(np.random.default_rng(0).standard_normal((4, 2)), seeds)


# -- one epoch's detection and relabelling ------------------------------------------------------------------------
def test_given_label_losses_are_minus_log_the_given_class_probability():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.25, 0.5, 0.25], [1.0, 0.0, 0.0]])
    labels = [0, 1, 1, 1]
    losses = lsa.given_label_losses(p, labels)
    np.testing.assert_allclose(losses[:3], -np.log([0.7, 0.1, 0.5]))
    assert np.isfinite(losses[3]) and losses[3] > 20  # a zero probability is clipped, not infinite


def _epoch(seed=4):
    """An epoch's predictions: 60 samples fitted to their label, 20 not (their own group in feature space)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 80)
    p = np.full((80, 3), 0.05)
    p[np.arange(80), labels] = 0.9
    wrong = np.arange(60, 80)
    p[wrong] = rng.dirichlet(np.ones(3), 20) * 0.1
    p[wrong, labels[wrong]] = 0.02 + 0.01 * rng.random(20)  # the given label is unlikely: a high loss
    p /= p.sum(1, keepdims=True)
    features, _ = _two_blobs(60, 20, seed)
    return p, features, labels


def test_detect_small_loss_is_the_small_loss_flags():
    p, features, labels = _epoch()
    flags = lsa.detect("small loss", p, features, labels)
    np.testing.assert_array_equal(flags, lsa.small_loss_noisy(lsa.given_label_losses(p, labels)))
    assert flags.dtype == bool and flags[60:].all() and not flags[:60].any()


def test_detect_linear_separates_the_small_loss_flags_in_feature_space():
    p, features, labels = _epoch()
    seeds = lsa.small_loss_noisy(lsa.given_label_losses(p, labels))
    flags = lsa.detect("linear", p, features, labels)
    np.testing.assert_array_equal(flags, lsa.linear_separation_noisy(features, seeds))
    assert flags.dtype == bool and flags.shape == (80,)


@pytest.mark.parametrize("flag_all", [False, True])
def test_detect_linear_keeps_one_sided_small_loss_flags(monkeypatch, flag_all):
    """Nothing to separate: the linear detector returns the small-loss flags instead of raising."""
    p, features, labels = _epoch()
    monkeypatch.setattr(lsa, "small_loss_noisy", lambda losses, seed=0: np.full(len(losses), flag_all))

    def never(*args, **kwargs):
        raise AssertionError("the hyperplane should not be fitted")

    monkeypatch.setattr(lsa, "linear_separation_noisy", never)
    flags = lsa.detect("linear", p, features, labels)
    np.testing.assert_array_equal(flags, np.full(80, flag_all))


def test_detect_rejects_an_unknown_detector():
    p, features, labels = _epoch()
    with pytest.raises(ValueError, match="unknown detector 'oracle'; choose 'small loss' or 'linear'"):
        lsa.detect("oracle", p, features, labels)


def test_relabel_keeps_unflagged_labels_and_guesses_flagged_ones():
    p, _, labels = _epoch()
    flags = np.zeros(80, bool)
    flags[[1, 5, 60, 61, 70, 79]] = True
    targets, weights = lsa.relabel(p, labels, flags)
    assert isinstance(targets, torch.Tensor) and isinstance(weights, torch.Tensor)
    assert targets.shape == (80, 3) and weights.shape == (80,)
    assert targets.dtype == weights.dtype == torch.float32
    np.testing.assert_array_equal(targets[~flags].numpy(), np.eye(3)[labels[~flags]])
    np.testing.assert_array_equal(weights[~flags].numpy(), 1)
    np.testing.assert_allclose(targets[flags].numpy(), lsa.sharpen(p[flags]), rtol=1e-6)
    assert ((weights[flags] >= 0) & (weights[flags] <= 1)).all()
    np.testing.assert_allclose(weights[flags].numpy(), lsa.pls_weights(p[flags], lsa.sharpen(p[flags])), rtol=1e-6)
    # the gamma of the guess is passed on
    np.testing.assert_allclose(lsa.relabel(p, labels, flags, gamma=1.0)[0][flags].numpy(), p[flags], rtol=1e-6)


def test_relabel_drops_a_single_flagged_sample_and_keeps_everyone_when_none_is():
    p, _, labels = _epoch()
    one = np.zeros(80, bool)
    one[7] = True
    targets, weights = lsa.relabel(p, labels, one)  # no mixture can be fitted to one loss
    assert weights[7] == 0 and (weights[~one] == 1).all()
    np.testing.assert_array_equal(targets.numpy(), np.eye(3)[labels])
    targets, weights = lsa.relabel(p, labels, np.zeros(80, bool))
    np.testing.assert_array_equal(targets.numpy(), np.eye(3)[labels])
    assert (weights == 1).all()


# -- the network and its training loop ----------------------------------------------------------------------------
def _net(seed=0, layer=1):
    torch.manual_seed(seed)
    return lsa.NoisyClassifier(ConvNet((4, 8)), 3, layer=layer)


def _problem(n=64, seed=0):
    """Random 3x8x8 images with random labels among 3 classes."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=generator), np.random.default_rng(seed).integers(0, 3, n)


@pytest.mark.parametrize("layer, channels", [(0, 4), (1, 8)])
def test_inspect_gives_probabilities_and_the_features_of_a_block(one_thread, layer, channels):
    net, (images, _) = _net(layer=layer), _problem(20)
    probabilities, features = net.inspect(images, batch_size=8)  # in chunks that do not divide n
    assert probabilities.shape == (20, 3) and features.shape == (20, channels)
    assert probabilities.dtype == features.dtype == np.float64
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-6)
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(probabilities, net(images).softmax(1).numpy(), rtol=1e-5, atol=1e-6)
        expected = net.backbone.features(images)[layer].mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_inspect_leaves_the_mode_and_the_batch_norm_statistics_as_it_found_them(one_thread, training):
    net, (images, _) = _net(), _problem(20)
    net.train(training)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.inspect(images)
    assert net.training is training and all(m.training is training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_train_noisy_follows_the_method_s_cycle_after_the_warm_up(one_thread):
    images, labels = _problem()
    net = _net()
    before = [q.detach().clone() for q in net.parameters()]
    calls = []
    history = lsa.train_noisy(net, images, labels, method="LSA (alternating)", epochs=3, warmup=1, batch_size=16,
                              evaluate=lambda model: calls.append(model) or {"n": len(calls)}, progress=False)
    assert history["epoch"] == [1, 2, 3]
    assert history["detector"] == [None, "linear", "small loss"]
    assert history["flags"][0] is None
    for flags in history["flags"][1:]:
        assert isinstance(flags, np.ndarray) and flags.dtype == bool and flags.shape == (64,)
    assert history["evals"] == [{"n": 1}, {"n": 2}, {"n": 3}] and all(model is net for model in calls)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters())), "trained in place"


@pytest.mark.parametrize("method, expected", [
    ("cross-entropy", [None, None, None]),
    ("small loss", [None, "small loss", "small loss"]),
    ("linear separation", [None, "linear", "linear"]),
])
def test_train_noisy_uses_one_detector_per_epoch(one_thread, method, expected):
    images, labels = _problem()
    history = lsa.train_noisy(_net(), images, labels, method=method, epochs=3, warmup=1, batch_size=32,
                              progress=False)
    assert history["detector"] == expected
    assert [flags is None for flags in history["flags"]] == [d is None for d in expected]
    assert history["evals"] == [{}, {}, {}]  # no evaluate


def test_train_noisy_is_deterministic_given_the_seed(one_thread):
    images, labels = _problem()

    def run(seed):
        net = _net()
        history = lsa.train_noisy(net, images, labels, method="LSA (alternating)", epochs=3, warmup=1,
                                  batch_size=16, seed=seed, progress=False)
        return net.state_dict(), history["flags"]

    (first, flags_1), (second, flags_2), (other, _) = run(0), run(0), run(1)
    assert all(torch.equal(first[k], second[k]) for k in first)
    for a, b in zip(flags_1[1:], flags_2[1:]):
        np.testing.assert_array_equal(a, b)
    assert any(not torch.equal(first[k], other[k]) for k in first), "the seed orders the batches"


def test_train_noisy_rejects_an_unknown_method_and_missing_labels():
    images, labels = _problem(8)
    with pytest.raises(ValueError, match="unknown method 'mixup'; choose from cross-entropy, small loss"):
        lsa.train_noisy(_net(), images, labels, method="mixup", epochs=1, progress=False)
    with pytest.raises(ValueError, match="8 images but 7 labels"):
        lsa.train_noisy(_net(), images, labels[:7], method="small loss", epochs=1, progress=False)


def test_branch_is_an_independent_copy():
    net = _net()
    copy = lsa.branch(net)
    assert copy is not net and isinstance(copy, lsa.NoisyClassifier)
    original = {k: v.clone() for k, v in net.state_dict().items()}
    assert all(torch.equal(original[k], v) for k, v in copy.state_dict().items())
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.add_(1.0)
    assert all(torch.equal(original[k], v) for k, v in net.state_dict().items())
    assert not torch.equal(copy.head.weight, net.head.weight)
