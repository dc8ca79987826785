import math

import pytest
import torch

from ssl_tutorial.evaluate import alignment, effective_rank, negative_weights, tolerance, uniformity
from ssl_tutorial.methods.simclr import SimCLR, info_nce
from ssl_tutorial.nets import ConvNet


def info_nce_loop(z_a, z_b, tau, top_k=None):
    """The InfoNCE formula with explicit loops: 2N anchors, each against its 2N - 2 negatives."""
    z = torch.nn.functional.normalize(torch.cat([z_a, z_b]), dim=1).tolist()
    n2 = len(z)
    n = n2 // 2

    def sim(i, j):
        return sum(a * b for a, b in zip(z[i], z[j])) / tau

    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        negatives = sorted((sim(i, k) for k in range(n2) if k not in (i, j)), reverse=True)
        if top_k is not None:
            negatives = negatives[:top_k]
        total += -sim(i, j) + math.log(math.exp(sim(i, j)) + sum(math.exp(s) for s in negatives))
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("top_k", [None, 3])
def test_info_nce_matches_the_loop_formula(tau, top_k):
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    value = info_nce(z_a, z_b, tau, top_k).item()
    assert value == pytest.approx(info_nce_loop(z_a, z_b, tau, top_k), rel=1e-5)
    assert info_nce(z_a, z_b, tau, top_k).item() == value, "the same inputs give the same value"


def test_info_nce_properties():
    z = torch.randn(8, 16)
    assert info_nce(z, z, 0.1) < info_nce(z, torch.randn(8, 16), 0.1), "matching views give a lower loss"
    assert info_nce(z, z, 0.5).item() == pytest.approx(info_nce(3 * z, z, 0.5).item(), rel=1e-5), "scale-free"
    assert info_nce(z, z, 0.5, top_k=100).item() == pytest.approx(info_nce(z, z, 0.5).item(), rel=1e-5)


@pytest.mark.parametrize("args, match", [
    ((torch.randn(4, 3), torch.randn(4, 3), 0.0), "temperature"),
    ((torch.randn(4, 3), torch.randn(4, 3), -1.0), "temperature"),
    ((torch.randn(4, 3), torch.randn(5, 3), 0.5), "shape"),
    ((torch.randn(4), torch.randn(4), 0.5), "shape"),
    ((torch.randn(1, 3), torch.randn(1, 3), 0.5), "at least 2"),
])
def test_info_nce_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        info_nce(*args)


def test_simclr_module():
    model = SimCLR(ConvNet((4, 8)), projection_dim=6)
    loss, logs = model.loss((torch.rand(6, 3, 16, 16), None))
    assert torch.isfinite(loss) and set(logs) == {"positive_sim", "top1"}
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 8)
    assert torch.allclose(model.project(torch.rand(2, 3, 16, 16)).norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="temperature"):
        SimCLR(ConvNet((4, 8)), temperature=0)


def test_geometry_metrics():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(500, 8, generator=g)
    clumped = torch.randn(1, 8, generator=g) + 0.05 * torch.randn(500, 8, generator=g)
    assert uniformity(spread) < uniformity(clumped) <= 0
    assert alignment(spread, spread) == pytest.approx(0.0, abs=1e-6)
    assert alignment(spread, -spread) == pytest.approx(4.0, rel=1e-5)  # antipodes: ||2u||^2
    labels = torch.arange(500) % 2
    two_points = torch.stack([torch.tensor([1.0, 0]), torch.tensor([0, 1.0])])[labels]
    assert tolerance(two_points, labels) == pytest.approx(1.0)
    assert effective_rank(torch.randn(2000, 8, generator=g)) > 7.5
    assert effective_rank(torch.randn(2000, 1, generator=g) * torch.ones(1, 8)) == pytest.approx(1.0, abs=1e-3)
    w = negative_weights(torch.tensor([0.9, 0.5, 0.1, -0.3]), positive=0, temperature=0.1)
    assert w.sum().item() == pytest.approx(1.0) and len(w) == 3 and w[0] > w[1] > w[2]
    assert negative_weights(torch.tensor([0.9, 0.5, 0.1]), 0, 100.0).std() < 1e-2, "large tau: equal weights"
