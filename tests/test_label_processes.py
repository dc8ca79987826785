"""Label processes (chapter 4): each one measured on a large sample against its settings, seeded, and validated."""

import numpy as np
import pandas as pd
import pytest

from ssl_tutorial.data.label_processes import (
    asymmetric_noise,
    domain_priors,
    inlier_mask,
    known_novel_split,
    label_shift,
    symmetric_noise,
    with_classes,
)
from ssl_tutorial.data.shapes import SHAPES, SUPERCLASSES, ShapesWorld


def _se(p, n):
    """The standard error of a proportion p measured on n samples."""
    return np.sqrt(p * (1 - p) / n)


def _labels(n, n_classes, seed=0):
    return np.random.default_rng(seed).integers(0, n_classes, n)


# ---------------------------------------------------------------- domain_priors and label_shift


def test_domain_priors_rows_are_probability_vectors():
    p = domain_priors(7, 5, 0.5, seed=0)
    assert p.shape == (7, 5)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1)


def test_small_alpha_gives_more_peaked_rows_than_large_alpha():
    peaked = domain_priors(200, 5, 0.1, seed=0).max(1).mean()
    flat = domain_priors(200, 5, 10.0, seed=0).max(1).mean()
    assert peaked > 0.7 > 0.35 > flat > 0.2  # 1/K = 0.2 is the floor


def test_domain_priors_is_seeded():
    np.testing.assert_array_equal(domain_priors(4, 3, 1.0, seed=3), domain_priors(4, 3, 1.0, seed=3))
    assert not np.allclose(domain_priors(4, 3, 1.0, seed=3), domain_priors(4, 3, 1.0, seed=4))


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan")])
def test_domain_priors_rejects_non_positive_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        domain_priors(3, 3, alpha)


def test_domain_priors_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_domains"):
        domain_priors(0, 3, 1.0)
    with pytest.raises(ValueError, match="n_classes"):
        domain_priors(3, 0, 1.0)


def test_label_shift_matches_priors_and_uniform_domains():
    priors = domain_priors(5, 4, 0.5, seed=1)
    n = 200_000
    domains, classes = label_shift(n, priors, seed=0)
    assert domains.shape == classes.shape == (n,)
    assert domains.min() >= 0 and domains.max() < 5 and classes.min() >= 0 and classes.max() < 4
    freq = np.bincount(domains, minlength=5) / n
    assert np.all(np.abs(freq - 0.2) < 5 * _se(0.2, n))
    for d in range(5):
        in_d = classes[domains == d]
        empirical = np.bincount(in_d, minlength=4) / len(in_d)
        tolerance = 5 * _se(priors[d], len(in_d)) + 1e-3
        assert np.all(np.abs(empirical - priors[d]) < tolerance), (d, empirical, priors[d])


def test_label_shift_never_draws_a_zero_probability_class():
    priors = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    domains, classes = label_shift(5000, priors, seed=0)
    assert (classes[domains == 0] == 0).all()
    assert (classes[domains == 1] != 0).all()


def test_label_shift_is_seeded():
    priors = domain_priors(4, 3, 1.0)
    a, b = label_shift(1000, priors, seed=5), label_shift(1000, priors, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = label_shift(1000, priors, seed=6)
    assert (a[0] != c[0]).any() and (a[1] != c[1]).any()


def test_label_shift_stream_is_independent_of_default_rng_with_the_same_seed():
    """Salted generators: the domains do not repeat (or correlate with) ``default_rng(seed)``'s draws, as a
    shapes-world table sampled with the same seed would otherwise tie each image's domain to its factors."""
    priors = np.full((8, 3), 1 / 3)  # eight domains: an unsalted stream would give exactly integers(0, 8, n)
    n = 20_000
    for seed in (0, 1, 2):
        domains, _ = label_shift(n, priors, seed=seed)
        plain = np.random.default_rng(seed).integers(0, 8, n)
        assert abs(np.corrcoef(domains, plain)[0, 1]) < 4 / np.sqrt(n)
        assert (domains == plain).mean() < 0.125 + 4 * _se(0.125, n)  # chance agreement only


def test_label_shift_rejects_bad_priors():
    for bad in ([[0.5, 0.4], [0.5, 0.5]], [[1.2, -0.2]], [0.5, 0.5]):
        with pytest.raises(ValueError, match="probability vectors"):
            label_shift(10, np.array(bad))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        label_shift(0, np.array([[0.5, 0.5]]))


# ---------------------------------------------------------------- with_classes


def _factors():
    return ShapesWorld(size=16).sample_factors(50, seed=0)


def test_with_classes_writes_the_shape_columns_and_keeps_the_rest():
    factors = _factors()
    before = factors.copy()
    shapes = ("circle", "star5", "T")
    classes = np.random.default_rng(0).integers(0, 3, 50)
    out = with_classes(factors, classes, shapes)
    expected = np.array([SHAPES.index(shapes[c]) for c in classes])
    np.testing.assert_array_equal(out["shape"].to_numpy(), expected)
    np.testing.assert_array_equal(out["shape_name"].to_numpy(), np.array(shapes)[classes])
    np.testing.assert_array_equal(out["superclass"].to_numpy(), expected // 4)
    np.testing.assert_array_equal(out["superclass_name"].to_numpy(), np.array(SUPERCLASSES)[expected // 4])
    assert list(out.columns) == list(factors.columns)
    rest = [c for c in factors.columns if c not in ("shape", "shape_name", "superclass", "superclass_name")]
    pd.testing.assert_frame_equal(out[rest], factors[rest])
    pd.testing.assert_frame_equal(factors, before)  # the input is untouched
    assert out is not factors


def test_with_classes_accepts_an_empty_table():
    factors = _factors().iloc[:0]
    out = with_classes(factors, np.array([], dtype=int), ("circle",))
    assert len(out) == 0


def test_with_classes_validates():
    factors = _factors()
    with pytest.raises(ValueError, match="unknown shapes"):
        with_classes(factors, np.zeros(50, dtype=int), ("circle", "blob"))
    with pytest.raises(ValueError, match="50 factor rows but 49 classes"):
        with_classes(factors, np.zeros(49, dtype=int), ("circle",))
    for bad in (3, -1):
        classes = np.zeros(50, dtype=int)
        classes[7] = bad
        with pytest.raises(ValueError, match="classes must be in 0..2"):
            with_classes(factors, classes, ("circle", "star5", "T"))


# ---------------------------------------------------------------- symmetric_noise


def test_symmetric_noise_flip_rate_and_uniform_targets():
    n, k, rate = 100_000, 5, 0.3
    labels = _labels(n, k)
    noisy = symmetric_noise(labels, rate, k, seed=0)
    assert noisy.shape == labels.shape and noisy.min() >= 0 and noisy.max() < k
    flipped = noisy != labels
    assert abs(flipped.mean() - rate) < 4 * _se(rate, n)
    for c in range(k):
        targets = noisy[flipped & (labels == c)]
        assert (targets != c).all()  # a flip never lands on the original class
        share = np.bincount(targets, minlength=k) / len(targets)
        others = np.delete(share, c)
        assert np.all(np.abs(others - 1 / (k - 1)) < 5 * _se(1 / (k - 1), len(targets)))


def test_symmetric_noise_extreme_rates_and_input_untouched():
    labels = _labels(1000, 4)
    before = labels.copy()
    np.testing.assert_array_equal(symmetric_noise(labels, 0.0, 4), labels)
    assert (symmetric_noise(labels, 1.0, 4) != labels).all()
    np.testing.assert_array_equal(labels, before)


def test_symmetric_noise_is_seeded():
    labels = _labels(1000, 4)
    np.testing.assert_array_equal(symmetric_noise(labels, 0.4, 4, seed=1), symmetric_noise(labels, 0.4, 4, seed=1))
    assert (symmetric_noise(labels, 0.4, 4, seed=1) != symmetric_noise(labels, 0.4, 4, seed=2)).any()


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_noise_rates_outside_unit_interval_are_rejected(rate):
    with pytest.raises(ValueError, match=r"noise rate must be in \[0, 1\]"):
        symmetric_noise([0, 1], rate, 2)
    with pytest.raises(ValueError, match=r"noise rate must be in \[0, 1\]"):
        asymmetric_noise([0, 1], rate, n_classes=2)


# ---------------------------------------------------------------- asymmetric_noise


def test_asymmetric_noise_default_flips_to_the_next_class_at_the_rate():
    n, k, rate = 100_000, 4, 0.2
    labels = _labels(n, k)
    noisy = asymmetric_noise(labels, rate, n_classes=k, seed=0)
    flipped = noisy != labels
    assert abs(flipped.mean() - rate) < 4 * _se(rate, n)
    np.testing.assert_array_equal(noisy[flipped], (labels[flipped] + 1) % k)


def test_asymmetric_noise_flips_only_to_the_partner():
    n, rate = 100_000, 0.35
    labels = _labels(n, 4)
    noisy = asymmetric_noise(labels, rate, partner={0: 2, 3: 1}, seed=0)
    flipped = noisy != labels
    np.testing.assert_array_equal(noisy[labels == 1], 1)  # no partner: left alone
    np.testing.assert_array_equal(noisy[labels == 2], 2)
    assert set(noisy[labels == 0]) == {0, 2}
    assert set(noisy[labels == 3]) == {3, 1}
    for c in (0, 3):
        n_c = (labels == c).sum()
        assert abs(flipped[labels == c].mean() - rate) < 4 * _se(rate, n_c)


def test_asymmetric_noise_is_seeded_and_validated():
    labels = _labels(1000, 4)
    a = asymmetric_noise(labels, 0.5, n_classes=4, seed=1)
    np.testing.assert_array_equal(a, asymmetric_noise(labels, 0.5, n_classes=4, seed=1))
    assert (a != asymmetric_noise(labels, 0.5, n_classes=4, seed=2)).any()
    with pytest.raises(ValueError, match="partner"):
        asymmetric_noise(labels, 0.5)


# ---------------------------------------------------------------- known_novel_split and inlier_mask


def test_known_novel_split_without_seed_takes_the_last_classes():
    known, novel = known_novel_split(10, 3)
    np.testing.assert_array_equal(known, np.arange(7))
    np.testing.assert_array_equal(novel, [7, 8, 9])


def test_known_novel_split_partitions_and_is_seeded():
    splits = set()
    for seed in range(10):
        known, novel = known_novel_split(10, 3, seed=seed)
        assert len(known) == 7 and len(novel) == 3
        assert set(known).isdisjoint(novel) and set(known) | set(novel) == set(range(10))
        np.testing.assert_array_equal(known, np.sort(known))
        k2, n2 = known_novel_split(10, 3, seed=seed)
        np.testing.assert_array_equal(known, k2)
        np.testing.assert_array_equal(novel, n2)
        splits.add(tuple(novel))
    assert len(splits) > 1  # different seeds, different splits


@pytest.mark.parametrize("n_novel", [0, -1, 10, 11])
def test_known_novel_split_rejects_n_novel_out_of_range(n_novel):
    with pytest.raises(ValueError, match="n_novel must be between 1 and 9"):
        known_novel_split(10, n_novel)


def test_inlier_mask():
    labels = np.array([0, 1, 2, 3, 1, 3, 4])
    np.testing.assert_array_equal(inlier_mask(labels, [1, 3]), [False, True, False, True, True, True, False])
    np.testing.assert_array_equal(inlier_mask(labels, 4), labels == 4)  # a single (one-class) inlier
    np.testing.assert_array_equal(inlier_mask(list(labels), np.array([0])), labels == 0)
    with pytest.raises(ValueError, match="at least one inlier"):
        inlier_mask(labels, [])


def test_contaminate_swaps_the_fraction_and_keeps_the_rest():
    import torch

    from ssl_tutorial.data.label_processes import contaminate

    images = torch.rand(4000, 3, 8, 8)
    labels = np.zeros(4000, dtype=int)
    before = images.clone()
    out, new_labels, swapped = contaminate(images, labels, 0.25, n_classes=5, kind="texture", seed=3)
    assert abs(swapped.mean() - 0.25) < 5 * np.sqrt(0.25 * 0.75 / 4000)
    assert torch.equal(images, before)  # the input is not changed
    kept = torch.from_numpy(~swapped)
    assert torch.equal(out[kept], images[kept]) and (new_labels[~swapped] == 0).all()
    assert not torch.equal(out[~kept], images[~kept])
    counts = np.bincount(new_labels[swapped], minlength=5) / swapped.sum()
    assert np.abs(counts - 0.2).max() < 0.05  # random labels, uniform over the classes
    again = contaminate(images, labels, 0.25, n_classes=5, kind="texture", seed=3)
    assert torch.equal(again[0], out) and (again[2] == swapped).all()


@pytest.mark.parametrize("kind", ["texture", "glyph"])
def test_out_of_world_images_are_images(kind):
    from ssl_tutorial.data.label_processes import out_of_world

    x = out_of_world(6, 16, kind, seed=0)
    assert x.shape == (6, 3, 16, 16) and x.min() >= 0 and x.max() <= 1
    assert x.flatten(1).std(1).min() > 0  # every image shows something


def test_contaminate_validates():
    import torch

    from ssl_tutorial.data.label_processes import contaminate, out_of_world

    with pytest.raises(ValueError, match="unknown contaminant"):
        out_of_world(2, 8, "noise")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        contaminate(torch.rand(4, 8, 8), np.zeros(4), 0.1, 3)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        contaminate(torch.rand(4, 3, 8, 8), np.zeros(3), 0.1, 3)
    with pytest.raises(ValueError, match="noise rate"):
        contaminate(torch.rand(4, 3, 8, 8), np.zeros(4), 1.5, 3)
