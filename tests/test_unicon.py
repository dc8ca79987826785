"""UniCon-HA (unilaterally aggregated contrastive learning, Wang et al. 2023): the loss against its formula, the
properties it is built for, the module, the anomaly scores and the AUROC, each on tiny seeded problems."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ssl_tutorial.evaluate import anomaly_auroc
from ssl_tutorial.methods.simclr import info_nce
from ssl_tutorial.methods.unicon import UniCon, concentration_score, knn_score, unilateral_loss
from ssl_tutorial.nets import ConvNet

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny problems: one thread beats two fighting


def _layout(n):
    """UniCon's layout of n inliers and their n rotated copies, two views each: [in, rot | in, rot], 4n views."""
    half = 2 * n
    partner = torch.cat([torch.arange(half, 2 * half), torch.arange(0, half)])
    is_inlier = torch.cat([torch.ones(n), torch.zeros(n)]).bool().repeat(2)
    return is_inlier, partner


def unilateral_loop(z, is_inlier, partner, tau, weight_tau=None):
    """The UniCon loss with explicit loops: per anchor, minus the (weighted) mean over its positives of the log
    softmax over all other views; an inlier's positives are every other inlier view, an outlier's its partner."""
    z = torch.nn.functional.normalize(z, dim=1).tolist()
    inlier, partner = is_inlier.tolist(), partner.tolist()
    m = len(z)

    def dot(i, j):
        return sum(a * b for a, b in zip(z[i], z[j]))

    def weight(p):  # how typical an inlier view is: its closeness to the other inlier views
        if weight_tau is None:
            return 1.0
        return sum(math.exp(dot(p, j) / weight_tau) for j in range(m) if j != p and inlier[j])

    total = 0.0
    for i in range(m):
        log_norm = math.log(sum(math.exp(dot(i, k) / tau) for k in range(m) if k != i))
        if inlier[i]:
            positives = [(p, weight(p)) for p in range(m) if p != i and inlier[p]]
        else:
            positives = [(partner[i], 1.0)]
        total += -sum(w * (dot(i, p) / tau - log_norm) for p, w in positives) / sum(w for _, w in positives)
    return total / m


def _mean_inlier_cosine(z, is_inlier):
    z = torch.nn.functional.normalize(z[is_inlier], dim=1)
    cos = z @ z.T
    k = len(z)
    return ((cos.sum() - cos.diagonal().sum()) / (k * (k - 1))).item()


# --- the loss ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("aggregate", [True, False])
def test_unilateral_loss_matches_the_loop_formula(tau, aggregate):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 5, generator=g)
    is_inlier, partner = _layout(2)  # 4 inlier views, 4 outlier views
    if not aggregate:
        is_inlier = torch.zeros_like(is_inlier)
    value = unilateral_loss(z, is_inlier, partner, tau).item()
    assert value == pytest.approx(unilateral_loop(z, is_inlier, partner, tau), rel=1e-5)
    assert unilateral_loss(3 * z, is_inlier, partner, tau).item() == pytest.approx(value, rel=1e-5), "scale-free"


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_without_inliers_the_loss_is_info_nce(tau):
    """The CSI-like baseline (no aggregation): every view is its own instance, which is SimCLR's InfoNCE."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(12, 6, generator=g)
    is_inlier, partner = _layout(3)
    none = torch.zeros_like(is_inlier)
    assert unilateral_loss(z, none, partner, tau).item() == pytest.approx(info_nce(z[:6], z[6:], tau).item(), rel=1e-5)
    assert unilateral_loss(z, none, partner, tau, weight_temperature=0.5).item() == pytest.approx(
        info_nce(z[:6], z[6:], tau).item(), rel=1e-5), "no inliers: nothing to re-weight"


def test_aggregated_inliers_give_a_lower_loss_than_spread_inliers():
    is_inlier, partner = _layout(2)  # views: in0 in1 rot0 rot1 | in0' in1' rot0' rot1'
    e = torch.eye(6)
    outliers = {2: e[1], 3: e[2], 6: e[1], 7: e[2]}  # each outlier at its own point, with its other view
    together = torch.stack([outliers.get(i, e[0]) for i in range(8)])
    spread = together.clone()
    spread[[0, 4]], spread[[1, 5]] = e[3], e[4]  # each inlier image at its own point
    assert unilateral_loss(together, is_inlier, partner, 0.5) < unilateral_loss(spread, is_inlier, partner, 0.5)
    # without aggregation, spreading the inlier images is what the loss wants instead
    none = torch.zeros_like(is_inlier)
    assert unilateral_loss(spread, none, partner, 0.5) < unilateral_loss(together, none, partner, 0.5)


def test_gradient_descent_pulls_the_inlier_views_together():
    is_inlier, partner = _layout(3)
    start = torch.randn(12, 4, generator=torch.Generator().manual_seed(2))
    before = _mean_inlier_cosine(start, is_inlier)
    after = {}
    for name, marks in (("unicon", is_inlier), ("csi", torch.zeros_like(is_inlier))):
        z = start.clone().requires_grad_()
        optimiser = torch.optim.SGD([z], lr=1.0)
        for _ in range(40):
            optimiser.zero_grad()
            unilateral_loss(z, marks, partner, 0.5).backward()
            optimiser.step()
        after[name] = _mean_inlier_cosine(z.detach(), is_inlier)
    assert after["unicon"] > before + 0.3 and after["unicon"] > 0.75, (before, after)
    assert after["csi"] < after["unicon"] - 0.3, "without aggregation the inlier images stay apart"


# --- soft re-weighting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_tau", [0.1, 0.5, 2.0])
def test_reweighted_loss_matches_the_loop_formula(weight_tau):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(12, 5, generator=g)
    is_inlier, partner = _layout(3)
    value = unilateral_loss(z, is_inlier, partner, 0.5, weight_temperature=weight_tau).item()
    assert value == pytest.approx(unilateral_loop(z, is_inlier, partner, 0.5, weight_tau), rel=1e-5)
    assert value != pytest.approx(unilateral_loss(z, is_inlier, partner, 0.5).item(), rel=1e-4), "weights matter"


def test_weight_temperature_none_is_the_plain_loss():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(8, 5, generator=g)
    is_inlier, partner = _layout(2)
    assert torch.equal(unilateral_loss(z, is_inlier, partner, 0.5, None), unilateral_loss(z, is_inlier, partner, 0.5))


def test_equally_typical_inliers_keep_the_plain_loss():
    g = torch.Generator().manual_seed(5)
    is_inlier, partner = _layout(2)
    z = torch.randn(8, 5, generator=g)
    z[is_inlier] = torch.randn(5, generator=g)  # every inlier view at one point: all equally typical
    plain = unilateral_loss(z, is_inlier, partner, 0.5).item()
    assert unilateral_loss(z, is_inlier, partner, 0.5, weight_temperature=0.3).item() == pytest.approx(plain, rel=1e-5)


def test_an_atypical_inlier_view_counts_less():
    is_inlier, partner = _layout(2)  # inlier views 0, 1, 4, 5
    g = torch.Generator().manual_seed(6)
    z = torch.randn(8, 5, generator=g)
    z[[0, 1, 4]] = torch.tensor([1.0, 0, 0, 0, 0])
    z[5] = torch.tensor([-1.0, 0.2, 0, 0, 0])  # far from the other inliers: an augmentation gone too far
    plain = unilateral_loss(z, is_inlier, partner, 0.5)
    weighted = unilateral_loss(z, is_inlier, partner, 0.5, weight_temperature=0.5)
    assert weighted < plain, "the far view is a bad positive; down-weighting it lowers the others' loss"
    sharper = unilateral_loss(z, is_inlier, partner, 0.5, weight_temperature=0.1)
    assert sharper < weighted, "a smaller weight temperature trusts the atypical view even less"
    flat = unilateral_loss(z, is_inlier, partner, 0.5, weight_temperature=1e4)
    assert flat.item() == pytest.approx(plain.item(), rel=1e-3), "a huge weight temperature: equal weights"


def test_weights_are_detached():
    """The weights say which positives to trust; they are not themselves trained: the gradient is that of the
    weighted loss with the weights held as constants."""
    g = torch.Generator().manual_seed(7)
    is_inlier, partner = _layout(2)
    z = torch.randn(8, 5, generator=g)
    zz = z.clone().requires_grad_()
    unilateral_loss(zz, is_inlier, partner, 0.5, weight_temperature=0.3).backward()

    unit = torch.nn.functional.normalize(z, dim=1)
    closeness = torch.exp(unit @ unit.T / 0.3).fill_diagonal_(0)
    w = (closeness * is_inlier[None, :]).sum(1)  # constants
    ref = z.clone().requires_grad_()
    u = torch.nn.functional.normalize(ref, dim=1)
    log_prob = (u @ u.T / 0.5).masked_fill(torch.eye(8, dtype=torch.bool), float("-inf")).log_softmax(1)
    total = 0
    for i in range(8):
        if is_inlier[i]:
            p = [j for j in range(8) if j != i and is_inlier[j]]
            total = total - (w[p] * log_prob[i, p]).sum() / w[p].sum()
        else:
            total = total - log_prob[i, partner[i]]
    (total / 8).backward()
    torch.testing.assert_close(zz.grad, ref.grad, rtol=1e-4, atol=1e-6)


def test_small_weight_temperature_stays_finite():
    """The weights are computed in log space: a small weight temperature does not overflow float32."""
    g = torch.Generator().manual_seed(0)
    is_inlier, partner = _layout(2)
    z = torch.randn(8, 5, generator=g)
    assert torch.isfinite(unilateral_loss(z, is_inlier, partner, 0.5, weight_temperature=0.005))


@pytest.mark.parametrize("weight_tau", [0.0, -0.5])
def test_bad_weight_temperature_raises(weight_tau):
    """0 would give NaN, and a negative value would favour the atypical views."""
    is_inlier, partner = _layout(2)
    with pytest.raises(ValueError, match="temperature"):
        unilateral_loss(torch.randn(8, 5), is_inlier, partner, 0.5, weight_temperature=weight_tau)


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("z, is_inlier, partner, tau, match", [
    (torch.randn(8, 4), *_layout(2), 0.0, "temperature"),
    (torch.randn(8, 4), *_layout(2), -1.0, "temperature"),
    (torch.randn(8), *_layout(2), 0.5, "shape|must be"),
    (torch.randn(8, 4), torch.zeros(6, dtype=torch.bool), _layout(2)[1], 0.5, "must be"),
    (torch.randn(8, 4), _layout(2)[0], torch.arange(6), 0.5, "must be"),
    (torch.randn(12, 4), *_layout(2), 0.5, "must be"),
])
def test_unilateral_loss_bad_input(z, is_inlier, partner, tau, match):
    with pytest.raises(ValueError, match=match):
        unilateral_loss(z, is_inlier, partner, tau)


# --- the module ----------------------------------------------------------------------------------------------------


def _images(n=4, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_unicon_loss_is_a_finite_scalar_that_trains_the_backbone():
    torch.manual_seed(0)
    model = UniCon(ConvNet((4, 8, 8)), projection_dim=6)
    loss, logs = model.loss((_images(), None))
    assert loss.ndim == 0 and torch.isfinite(loss) and set(logs) == {"strong"}
    assert logs["strong"].item() == pytest.approx(loss.item()) and not logs["strong"].requires_grad
    loss.backward()
    for name, module in (("backbone", model.backbone), ("projector", model.projector)):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name


def test_unicon_with_a_shallow_head_averages_strong_and_weak():
    torch.manual_seed(0)
    model = UniCon(ConvNet((4, 8, 8)), projection_dim=6, shallow_block=1, weight_temperature=0.5)
    loss, logs = model.loss((_images(), None))
    assert set(logs) == {"strong", "weak"} and torch.isfinite(loss)
    assert loss.item() == pytest.approx((logs["strong"] + logs["weak"]).item() / 2, rel=1e-6)
    loss.backward()
    shallow = [p.grad for p in model.shallow_projector.parameters()]
    assert all(g is not None for g in shallow) and any(g.abs().sum() > 0 for g in shallow)
    first_block = [p.grad for p in model.backbone.blocks[0].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in first_block)


def test_unicon_without_aggregation_works():
    torch.manual_seed(0)
    model = UniCon(ConvNet((4, 8, 8)), projection_dim=6, aggregate=False)
    loss, logs = model.loss((_images(), torch.zeros(4)))
    assert torch.isfinite(loss) and set(logs) == {"strong"}
    loss.backward()
    assert any(p.grad.abs().sum() > 0 for p in model.backbone.parameters())


@pytest.mark.parametrize("aggregate", [True, False])
def test_unicon_layout_pairs_views_and_marks_inliers(aggregate):
    """The module's ordering [in, rot | in, rot]: its loss is the loop formula on that layout, and without
    aggregation it is InfoNCE between the two halves."""
    model = UniCon(ConvNet((4, 8)), projection_dim=6, temperature=0.3, aggregate=aggregate)
    z = torch.randn(12, 6, generator=torch.Generator().manual_seed(8))
    is_inlier, partner = _layout(3)
    value = model._loss(z, 3, None).item()
    if aggregate:
        assert value == pytest.approx(unilateral_loop(z, is_inlier, partner, 0.3), rel=1e-5)
    else:
        assert value == pytest.approx(info_nce(z[:6], z[6:], 0.3).item(), rel=1e-5)


def test_unicon_forward_project_and_hparams():
    model = UniCon(ConvNet((4, 8, 8)), projection_dim=6).eval()
    x = _images(3)
    with torch.no_grad():
        assert model(x).shape == (3, 8)
        z = model.project(x)
    assert z.shape == (3, 6)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    variants = [model, UniCon(ConvNet((4, 8, 8)), projection_dim=6, aggregate=False),
                UniCon(ConvNet((4, 8, 8)), projection_dim=6, weight_temperature=0.5),
                UniCon(ConvNet((4, 8, 8)), projection_dim=6, shallow_block=1)]
    for key in ("aggregate", "weight_temperature", "shallow_block", "weak_views", "temperature", "views"):
        assert key in model.hparams
    assert model.hparams["weak_views"] is None and variants[3].hparams["weak_views"] is not None
    assert len({repr(sorted(v.hparams.items())) for v in variants}) == len(variants), "the cache tells them apart"


# --- anomaly scores ------------------------------------------------------------------------------------------------


def test_knn_score():
    g = torch.Generator().manual_seed(9)
    train, test = torch.randn(6, 4, generator=g), torch.randn(5, 4, generator=g)
    assert knn_score(train, train[[2, 4]], k=1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    score = knn_score(train, test, k=1)
    assert score.shape == (5,) and (score <= 1 + 1e-6).all() and (score >= -1 - 1e-6).all()
    rows = torch.rand(6, 1, generator=g) + 0.5
    torch.testing.assert_close(knn_score(3 * rows * train, 0.2 * test, k=2), knn_score(train, test, k=2))
    cosine = torch.nn.functional.normalize(test, dim=1) @ torch.nn.functional.normalize(train, dim=1).T
    torch.testing.assert_close(knn_score(train, test, k=2), cosine.sort(1, descending=True).values[:, :2].mean(1))
    torch.testing.assert_close(knn_score(train, test, k=100), cosine.mean(1))  # k beyond the training set: all of it
    assert (knn_score(train, test, k=1) >= knn_score(train, test, k=3) - 1e-6).all(), "more neighbours: lower mean"


def test_concentration_score_is_the_cosine_with_the_mean_direction():
    rng = np.random.default_rng(10)
    train, test = rng.standard_normal((7, 4)), rng.standard_normal((5, 4))
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    centre = unit.mean(0) / np.linalg.norm(unit.mean(0))
    expected = test @ centre / np.linalg.norm(test, axis=1)
    score = concentration_score(torch.tensor(train, dtype=torch.float32), torch.tensor(test, dtype=torch.float32))
    np.testing.assert_allclose(score.numpy(), expected, rtol=1e-5, atol=1e-6)
    # each training row counts once whatever its norm
    scaled = torch.tensor(train * rng.uniform(0.1, 10, (7, 1)), dtype=torch.float32)
    torch.testing.assert_close(concentration_score(scaled, torch.tensor(test, dtype=torch.float32)), score)


# --- AUROC ---------------------------------------------------------------------------------------------------------


def test_anomaly_auroc_extremes_and_chance():
    is_anomaly = np.array([0, 0, 0, 1, 1])
    assert anomaly_auroc([0.9, 0.8, 0.7, 0.1, 0.2], is_anomaly) == pytest.approx(100.0)
    assert anomaly_auroc([0.1, 0.2, 0.0, 0.9, 0.8], is_anomaly) == pytest.approx(0.0)
    assert anomaly_auroc(np.full(5, 0.3), is_anomaly) == pytest.approx(50.0)
    assert anomaly_auroc(torch.tensor([0.9, 0.8, 0.7, 0.1, 0.2]), torch.tensor(is_anomaly).bool()) == pytest.approx(100)


def test_anomaly_auroc_matches_sklearn():
    rng = np.random.default_rng(11)
    score, is_anomaly = rng.standard_normal(40), rng.random(40) < 0.3
    value = anomaly_auroc(torch.tensor(score), torch.tensor(is_anomaly))
    assert isinstance(value, float)
    assert value == pytest.approx(100 * roc_auc_score(is_anomaly, -score))
    assert anomaly_auroc(score + 5 * ~is_anomaly, is_anomaly) == pytest.approx(100.0), "shifted inliers: separable"


@pytest.mark.parametrize("is_anomaly", [[0, 0, 0], [1, 1, 1]])
def test_anomaly_auroc_needs_both_groups(is_anomaly):
    with pytest.raises(ValueError, match="both inliers and anomalies"):
        anomaly_auroc([0.1, 0.5, 0.9], is_anomaly)


def test_integer_inlier_mask_and_backbone_without_widths_are_clear_errors():
    is_inlier, partner = _layout(2)
    with pytest.raises(ValueError, match="boolean"):
        unilateral_loss(torch.randn(8, 5), is_inlier.long(), partner)
    from ssl_tutorial.nets import ResNet18

    with pytest.raises(ValueError, match="ConvNet"):
        UniCon(ResNet18(), shallow_block=1)


def test_the_shallow_head_stops_at_its_block_and_is_not_reweighted():
    """Weak views never reach the deeper blocks (their batch norms see only strong views), and the re-weighting
    applies at the deepest level only, as in the paper."""
    model = UniCon(ConvNet((4, 8, 8)), projection_dim=6, shallow_block=0, weight_temperature=0.5)
    seen = []
    model.backbone.blocks[1].register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    calls = []
    original = model._loss
    model._loss = lambda z, n, weight_temperature: calls.append(weight_temperature) or original(z, n, weight_temperature)
    model.loss((_images(), torch.zeros(4)))
    assert seen == [16]  # one pass of the 4 x 4 strong views through block 1, none of the weak ones
    assert calls == [0.5, None]


def test_a_custom_shift_makes_the_virtual_outliers():
    flips = []

    def upside_down(images):
        flips.append(len(images))
        return images.flip(-2)

    model = UniCon(ConvNet((4, 8)), projection_dim=6, shift=upside_down)
    loss, _ = model.loss((_images(), torch.zeros(4)))
    assert torch.isfinite(loss) and flips == [4]
    assert model.hparams["shift"].endswith("upside_down")
