"""Hyp-OW's groundwork: the ball's embedding, the class and superclass terms, and the relabelling of unknowns."""

import math

import pytest
import torch

from ssl_tutorial import poincare
from ssl_tutorial.methods import hyp_ow, open_world


def _ball(n: int, d: int = 3, seed: int = 0, max_radius: float = 0.9, c: float = 1.0) -> torch.Tensor:
    """n random float64 points inside the ball of curvature -c, at radii up to max_radius of its boundary."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, d, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    return direction * max_radius * torch.rand(n, 1, generator=g, dtype=torch.float64) / math.sqrt(c)


def _clusters(centres: torch.Tensor, per_cluster: int, spread: float, seed: int) -> torch.Tensor:
    """per_cluster float64 points around each of the centres (k, d): (k * per_cluster, d), grouped by centre."""
    g = torch.Generator().manual_seed(seed)
    noise = spread * torch.randn(len(centres), per_cluster, centres.shape[1], generator=g, dtype=torch.float64)
    return (centres[:, None, :] + noise).reshape(-1, centres.shape[1])


# -- to_ball ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [1.0, 0.1, 3.0])
@pytest.mark.parametrize("clip_r", [1.0, 5.0, None])
def test_to_ball_lands_inside_the_ball(c, clip_r):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=g, dtype=torch.float64) * torch.logspace(-3, 3, 64, dtype=torch.float64)[:, None]
    y = hyp_ow.to_ball(x, c, clip_r)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert torch.all(c * (y * y).sum(-1) < 1)
    # exp_0 keeps directions
    torch.testing.assert_close(y / y.norm(dim=-1, keepdim=True), x / x.norm(dim=-1, keepdim=True))


@pytest.mark.parametrize("c", [1.0, 0.1])
def test_to_ball_clips_the_norm_before_exp0(c):
    clip_r = 0.5
    u = torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64)
    y = hyp_ow.to_ball(torch.stack([1e6 * u, clip_r * u, -7 * u, 0.2 * u]), c, clip_r)
    capped = math.tanh(math.sqrt(c) * clip_r) / math.sqrt(c)  # |exp_0(v)| = tanh(sqrt(c) |v|) / sqrt(c)
    torch.testing.assert_close(y[:3].norm(dim=-1), torch.full((3,), capped, dtype=torch.float64))
    torch.testing.assert_close(y[0], y[1])  # a huge vector and one of norm clip_r: the same point
    torch.testing.assert_close(y[2], -y[1])
    # a vector shorter than clip_r is left alone: plain exp_0
    torch.testing.assert_close(y[3], poincare.expmap0(0.2 * u, c))
    assert y[3].norm() < capped


def test_to_ball_without_clipping_is_exp0():
    g = torch.Generator().manual_seed(2)
    x = 2.0 * torch.randn(20, 4, generator=g, dtype=torch.float64)  # norms well above 1
    torch.testing.assert_close(hyp_ow.to_ball(x, 0.5, clip_r=None), poincare.expmap0(x, 0.5))
    assert not torch.allclose(hyp_ow.to_ball(x, 0.5, clip_r=1.0), poincare.expmap0(x, 0.5))


def test_to_ball_keeps_the_origin_and_its_gradient_finite():
    x = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    y = hyp_ow.to_ball(x)
    assert torch.all(y == 0)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("clip_r", [0.0, -1.0])
def test_to_ball_rejects_a_non_positive_clip_radius(clip_r):
    with pytest.raises(ValueError, match="clip_r"):
        hyp_ow.to_ball(torch.ones(2, 3), clip_r=clip_r)


# -- hyperbolic_contrastive ------------------------------------------------------------------------------------------

def test_hyperbolic_contrastive_is_a_finite_non_negative_scalar():
    a, p = _ball(16, seed=3), _ball(16, seed=4)
    for symmetric in (True, False):
        loss = hyp_ow.hyperbolic_contrastive(a, p, symmetric=symmetric)
        assert loss.shape == () and torch.isfinite(loss) and loss >= 0
    # 2n - 1 candidates per anchor; with all of them at one distance the loss is log(2n - 1)
    same = torch.zeros(4, 2, dtype=torch.float64)
    torch.testing.assert_close(hyp_ow.hyperbolic_contrastive(same, same),
                               torch.tensor(math.log(7), dtype=torch.float64))


def test_hyperbolic_contrastive_rewards_matched_positives():
    # anchors far apart from each other (near the boundary, in different directions), each equal to its positive
    angles = torch.arange(6, dtype=torch.float64) * 2 * math.pi / 6
    anchors = 0.9 * torch.stack([angles.cos(), angles.sin()], 1)
    matched = hyp_ow.hyperbolic_contrastive(anchors, anchors.clone())
    shuffled = hyp_ow.hyperbolic_contrastive(anchors, anchors[torch.roll(torch.arange(6), 1)])
    assert matched < 0.1 < shuffled
    assert matched < shuffled - 5


def test_hyperbolic_contrastive_passes_gradient_to_both_inputs():
    a = _ball(8, seed=5).requires_grad_()
    p = _ball(8, seed=6).requires_grad_()
    for symmetric in (True, False):
        a.grad = p.grad = None
        hyp_ow.hyperbolic_contrastive(a, p, symmetric=symmetric).backward()
        for grad in (a.grad, p.grad):
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_hyperbolic_contrastive_gradient_is_finite_when_positives_equal_their_anchors():
    a = _ball(5, seed=7).requires_grad_()
    p = a.detach().clone().requires_grad_()  # d(a_i, p_i) = 0 exactly
    hyp_ow.hyperbolic_contrastive(a, p).backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("temperature", [0.0, -0.2])
def test_hyperbolic_contrastive_rejects_a_non_positive_temperature(temperature):
    a = _ball(4, seed=8)
    with pytest.raises(ValueError, match="temperature"):
        hyp_ow.hyperbolic_contrastive(a, a, temperature=temperature)


@pytest.mark.parametrize("anchors, positives", [
    (_ball(4, seed=9), _ball(5, seed=10)),  # different n
    (_ball(4, d=3, seed=9), _ball(4, d=2, seed=10)),  # different d
    (_ball(4, seed=9)[None], _ball(4, seed=10)[None]),  # not (n, d)
    (_ball(1, seed=9), _ball(1, seed=10)),  # n < 2
])
def test_hyperbolic_contrastive_rejects_bad_shapes(anchors, positives):
    with pytest.raises(ValueError, match="n >= 2"):
        hyp_ow.hyperbolic_contrastive(anchors, positives)


def test_hyperbolic_contrastive_symmetric_averages_both_directions():
    a, p = _ball(10, seed=11), _ball(10, seed=12)
    forward = hyp_ow.hyperbolic_contrastive(a, p, symmetric=False)
    backward = hyp_ow.hyperbolic_contrastive(p, a, symmetric=False)
    symmetric = hyp_ow.hyperbolic_contrastive(a, p)
    assert not torch.isclose(forward, symmetric)  # in general the two directions differ
    torch.testing.assert_close(symmetric, (forward + backward) / 2)


@pytest.mark.parametrize("c", [0.1, 2.0])
def test_hyperbolic_contrastive_works_at_other_curvatures(c):
    a, p = _ball(6, seed=13, c=c), _ball(6, seed=14, c=c)
    loss = hyp_ow.hyperbolic_contrastive(a, p, c=c)
    assert torch.isfinite(loss) and loss >= 0
    assert not torch.isclose(loss, hyp_ow.hyperbolic_contrastive(a, p, c=1.0))


# -- centroids -------------------------------------------------------------------------------------------------------

def test_superclass_centroids_shape_empty_superclass_and_identical_points():
    point = torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64)
    points = torch.cat([point.expand(4, 3), _ball(3, seed=15)])
    labels = torch.tensor([0, 0, 0, 0, 2, 2, 3])
    centroids = hyp_ow.superclass_centroids(points, labels, 5)
    assert centroids.shape == (5, 3) and centroids.dtype == torch.float64
    torch.testing.assert_close(centroids[0], point)  # identical points: that point
    torch.testing.assert_close(centroids[[1, 4]], torch.zeros(2, 3, dtype=torch.float64), atol=0, rtol=0)  # empty
    torch.testing.assert_close(centroids[2], poincare.einstein_midpoint(points[4:6]))
    torch.testing.assert_close(centroids[3], points[6])  # a single member


@pytest.mark.parametrize("c", [1.0, 0.1])
def test_class_centroids_are_the_einstein_midpoints_of_each_class(c):
    points = _ball(12, seed=16, c=c)
    labels = torch.tensor([0, 1, 2] * 4)
    centroids = hyp_ow.class_centroids(points, labels, 4, c)
    assert centroids.shape == (4, 3)
    for k in range(3):
        torch.testing.assert_close(centroids[k], poincare.einstein_midpoint(points[labels == k], c))
    assert torch.all(centroids[3] == 0)
    assert torch.all(c * (centroids * centroids).sum(-1) < 1)


def test_superclass_centroids_pass_gradient_to_their_members():
    points = _ball(6, seed=17).requires_grad_()
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    hyp_ow.superclass_centroids(points, labels, 3)[1].sum().backward()
    assert torch.all(points.grad[labels == 1].abs().sum(-1) > 0)
    assert torch.all(points.grad[labels == 0] == 0)


# -- superclass_regulariser -------------------------------------------------------------------------------------------

def _three_superclasses():
    """12 points in three tight clusters near the boundary, 4 per cluster, and their cluster labels."""
    centres = 0.8 * torch.tensor([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]],
                                 dtype=torch.float64)
    return _clusters(centres, 4, 0.02, seed=18), torch.arange(3).repeat_interleave(4)


def test_superclass_regulariser_is_lower_for_clustered_superclasses():
    points, labels = _three_superclasses()
    clustered = hyp_ow.superclass_regulariser(points, labels, 3)
    # the same points, labels mixed so that every superclass holds points of every cluster
    mixed = hyp_ow.superclass_regulariser(points, torch.arange(3).repeat(4), 3)
    assert torch.isfinite(clustered) and torch.isfinite(mixed)
    assert clustered < mixed - 1
    # and a random shuffle of the labels, too
    shuffled = labels[torch.randperm(12, generator=torch.Generator().manual_seed(19))]
    assert clustered < hyp_ow.superclass_regulariser(points, shuffled, 3)


def test_superclass_regulariser_is_the_one_way_contrastive_loss_to_the_centroids():
    points, labels = _ball(9, seed=20), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 3])
    centroids = hyp_ow.superclass_centroids(points, labels, 5)
    expected = hyp_ow.hyperbolic_contrastive(points, centroids[labels], temperature=0.6, symmetric=False)
    torch.testing.assert_close(hyp_ow.superclass_regulariser(points, labels, 5, temperature=0.3), expected)


def test_superclass_regulariser_has_a_gradient_with_respect_to_the_anchors():
    points, labels = _three_superclasses()
    anchors = points.clone().requires_grad_()
    loss = hyp_ow.superclass_regulariser(anchors, labels, 3, c=0.5)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(anchors.grad).all() and anchors.grad.abs().sum() > 0
    # through the centroids too (the official code detaches them): not the same as with the positives held fixed
    fixed = points.clone().requires_grad_()
    positives = hyp_ow.superclass_centroids(points, labels, 3, c=0.5)[labels]
    hyp_ow.hyperbolic_contrastive(fixed, positives, 0.4, 0.5, symmetric=False).backward()
    assert not torch.allclose(anchors.grad, fixed.grad)


def test_superclass_regulariser_rejects_a_non_positive_temperature():
    points, labels = _three_superclasses()
    with pytest.raises(ValueError, match="temperature"):
        hyp_ow.superclass_regulariser(points, labels, 3, temperature=0.0)


# -- unknown scores and relabelling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [1.0, 0.1])
def test_unknown_scores_are_the_distance_to_the_nearest_centroid(c):
    points, centroids = _ball(10, seed=21, c=c), _ball(4, seed=22, c=c)
    scores = hyp_ow.unknown_scores(points, centroids, c)
    assert scores.shape == (10,)
    torch.testing.assert_close(scores, poincare.pairwise_distance(points, centroids, c).min(1).values)
    torch.testing.assert_close(hyp_ow.unknown_scores(centroids, centroids, c), torch.zeros(4, dtype=torch.float64),
                               atol=1e-6, rtol=0)


def _known_batch():
    centroids = torch.tensor([[0.5, 0.0], [0.0, 0.5], [-0.5, 0.0]], dtype=torch.float64)
    matched = torch.tensor([[0.52, 0.01], [0.01, 0.47], [-0.45, 0.04]], dtype=torch.float64)
    return centroids, matched


def test_relabel_unknowns_flags_unmatched_proposals_near_a_known_class():
    centroids, matched = _known_batch()
    unmatched = torch.tensor([[0.49, 0.0],  # next to a centroid: shares a known structure, unknown
                              [-0.01, 0.51],  # next to another one
                              [0.0, -0.9],  # far from every centroid: background
                              [0.6, -0.6]], dtype=torch.float64)
    flags = hyp_ow.relabel_unknowns(unmatched, matched, centroids)
    assert flags.dtype == torch.bool
    assert flags.tolist() == [True, True, False, False]


def test_relabel_unknowns_threshold_is_the_largest_matched_score_inclusive():
    centroids, matched = _known_batch()
    scores = hyp_ow.unknown_scores(matched, centroids)
    worst = matched[scores.argmax()]
    # the furthest matched proposal itself, and two points on the geodesic from the origin through a centroid at
    # distances just below and just above the threshold
    u = torch.tensor([0.0, 1.0], dtype=torch.float64)
    threshold = scores.max()
    d_centroid = 2 * torch.atanh(centroids[1].norm())
    inner = torch.tanh((d_centroid + threshold * 0.999) / 2) * u
    outer = torch.tanh((d_centroid + threshold * 1.001) / 2) * u
    flags = hyp_ow.relabel_unknowns(torch.stack([worst, inner, outer]), matched, centroids)
    assert flags.tolist() == [True, True, False]
    # the threshold follows the batch: without its furthest matched proposal it shrinks and excludes that point
    rest = matched[scores != scores.max()]
    assert not hyp_ow.relabel_unknowns(worst[None], rest, centroids).item()


def test_relabel_unknowns_needs_a_matched_proposal():
    centroids, _ = _known_batch()
    with pytest.raises(ValueError, match="matched"):
        hyp_ow.relabel_unknowns(_ball(3, d=2, seed=23), torch.zeros(0, 2, dtype=torch.float64), centroids)


def test_relabel_unknowns_with_no_unmatched_proposals():
    centroids, matched = _known_batch()
    flags = hyp_ow.relabel_unknowns(torch.zeros(0, 2, dtype=torch.float64), matched, centroids)
    assert flags.shape == (0,) and flags.dtype == torch.bool


# -- the open-world proposal classifier ------------------------------------------------------------------------------

def test_einstein_midpoints_match_one_label_at_a_time():
    points = _ball(30, d=4, seed=5, c=0.5)
    labels = torch.arange(30) % 4
    labels[labels == 3] = 2  # label 3 has no points: the origin
    together = poincare.einstein_midpoints(points, labels, 4, c=0.5)
    for k in range(3):
        torch.testing.assert_close(together[k], poincare.einstein_midpoint(points[labels == k], c=0.5))
    assert torch.equal(together[3], torch.zeros(4, dtype=together.dtype))


def test_relabel_quantile_lowers_the_threshold():
    centroids = torch.tensor([[0.5, 0.0], [-0.5, 0.0]], dtype=torch.float64)
    matched = centroids.repeat(5, 1) + 0.05 * torch.arange(10, dtype=torch.float64)[:, None] * torch.tensor([0, 1.0])
    unmatched = torch.tensor([[0.5, 0.2], [0.5, 0.42], [0.0, 0.9]], dtype=torch.float64)
    assert hyp_ow.relabel_unknowns(unmatched, matched, centroids).tolist() == [True, True, False]
    assert hyp_ow.relabel_unknowns(unmatched, matched, centroids, quantile=0.5).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="quantile"):
        hyp_ow.relabel_unknowns(unmatched, matched, centroids, quantile=0.0)


@pytest.mark.parametrize("name", ["hyperbolic", "euclidean"])
def test_geometry_centroids_and_scores(name):
    space = open_world.geometry(name, c=1.0, clip_r=2.0)
    points = space.to_space(torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    if name == "hyperbolic":
        assert (points.norm(dim=1) < 1).all()
    labels = torch.arange(40) % 5
    centroids = space.centroids(points, labels, 5)
    assert centroids.shape == (5, 3)
    scores = space.scores(points, centroids)
    torch.testing.assert_close(scores, space.pairwise(points, centroids).min(1).values)
    assert (space.scores(centroids, centroids).abs() < 1e-6).all()
    with pytest.raises(ValueError, match="unknown geometry"):
        open_world.geometry("spherical")


def test_open_world_predictions_and_uncertainty_sweep():
    # K = 2: classes 0, 1, unknown 2, background 3
    p = torch.tensor([[0.9, 0.05, 0.0, 0.05], [0.4, 0.35, 0.0, 0.25], [0.1, 0.1, 0.0, 0.8], [0.1, 0.1, 0.7, 0.1]])
    logits = torch.log(p + 1e-9)
    assert open_world.open_world_predictions(logits, 2).tolist() == [0, 0, 3, 2]
    # uncertain object probability u = p0 + p1 + p2 - max(p0, p1): 0.05, 0.35, 0.1, 0.8
    assert open_world.open_world_predictions(logits, 2, threshold=0.3).tolist() == [0, 2, 3, 2]
    assert open_world.open_world_predictions(logits, 2, threshold=0.09).tolist() == [0, 2, 2, 2]
    assert open_world.open_world_predictions(logits, 2, threshold=0.0).tolist() == [2, 2, 2, 2]
    sweep = open_world.uncertainty_sweep(logits[:2], torch.tensor([0, 0]), logits[1:2], logits[2:3], 2,
                                     thresholds=[None, 0.3, 0.09])
    assert sweep["known_accuracy"].tolist() == [100.0, 50.0, 50.0]
    assert sweep["unknown_recall"].tolist() == [0.0, 100.0, 100.0]
    assert sweep["background_unknown"].tolist() == [0.0, 0.0, 100.0]
    assert len(open_world.uncertainty_sweep(logits[:2], torch.tensor([0, 0]), logits[1:2], logits[2:3], 2)) == 102


def test_train_open_world_is_seeded_and_relabels_half_way():
    g = torch.Generator().manual_seed(0)
    known, unmatched = torch.rand(40, 3, 8, 8, generator=g), torch.rand(30, 3, 8, 8, generator=g)
    labels = torch.arange(40) % 4
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = open_world.OpenWorldNet(4, widths=(4, 8), dim=3)
        log = open_world.train_open_world(net, known, labels, labels // 2, unmatched, steps=4, n_superclasses=2,
                                      batch_size=8, seed=1, progress=False)
        runs.append((log, open_world.predict(net, known)[0]))
    (a, logits_a), (b, logits_b) = runs
    assert torch.equal(logits_a, logits_b) and a["loss"] == b["loss"] and len(a["loss"]) == 4
    assert a["relabelled"].shape == (30,) and a["relabelled"].dtype == torch.bool
    assert torch.equal(a["relabelled"], a["scores"] <= a["threshold"])
    assert a["threshold"] == pytest.approx(float(a["matched_scores"].quantile(0.9)))
    net = open_world.OpenWorldNet(4, widths=(4, 8), dim=3)
    baseline = open_world.train_open_world(net, known, labels, labels // 2, unmatched, steps=2, n_superclasses=2,
                                       relabel=False, lambda_class=0, lambda_super=0, batch_size=8, progress=False)
    assert baseline["relabelled"] is None and logits_a.shape == (40, 6)
    with pytest.raises(ValueError, match="steps >= 2"):
        open_world.train_open_world(net, known, labels, labels // 2, unmatched, steps=1, n_superclasses=2)
    with pytest.raises(ValueError, match="one row per proposal"):
        open_world.train_open_world(net, known, labels[:5], labels // 2, unmatched, steps=2, n_superclasses=2)
