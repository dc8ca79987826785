import pytest
import torch

from ssl_tutorial.methods.swav import SwAV, sinkhorn
from ssl_tutorial.nets import ConvNet


def scores_in_unit_interval(b=64, k=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, k, generator=g) * 2 - 1


@pytest.mark.parametrize("epsilon", [0.05, 0.5])
def test_sinkhorn_marginals(epsilon):
    q = sinkhorn(scores_in_unit_interval(), epsilon, n_iters=200)
    assert torch.allclose(q.sum(1), torch.ones(64), atol=1e-3), "each sample's code sums to 1"
    assert torch.allclose(q.sum(0), torch.full((16,), 64 / 16), atol=1e-3), "prototypes share the batch equally"
    assert (q >= 0).all()


def test_sinkhorn_ignores_a_constant_and_small_epsilon_is_finite():
    s = scores_in_unit_interval()
    assert torch.allclose(sinkhorn(s, 0.05), sinkhorn(s + 7.0, 0.05), atol=1e-5)
    for epsilon in (0.05, 0.02, 0.01):
        q = sinkhorn(s, epsilon, n_iters=3)
        assert torch.isfinite(q).all(), f"epsilon={epsilon} produced NaN or inf"
        assert torch.allclose(q.sum(1), torch.ones(64), atol=1e-5)


def test_sinkhorn_spreads_a_collapsed_batch():
    s = 0.2 * torch.rand(32, 8, generator=torch.Generator().manual_seed(0))
    s[:, 0] += 1.0  # every sample prefers prototype 0
    assert sinkhorn(s, 0.05, 50).argmax(1).unique().numel() == 8, "equipartition forces every prototype to be used"
    assert torch.softmax(s / 0.05, 1).argmax(1).unique().numel() == 1, "plain softmax targets collapse"


@pytest.mark.parametrize("args, match", [((torch.rand(4),), "matrix"), ((torch.rand(4, 3), 0.0), "epsilon"),
                                         ((torch.rand(4, 3), 0.05, 0), "n_iters")])
def test_sinkhorn_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        sinkhorn(*args)


def test_swav_module_freeze_queue_and_normalised_prototypes():
    torch.manual_seed(0)
    model = SwAV(ConvNet((4, 8)), n_prototypes=5, projection_dim=6, freeze_prototypes_steps=1, queue_length=8,
                 queue_start=1)
    images = torch.rand(6, 3, 16, 16)
    loss, logs = model.loss((images, None))
    loss.backward()
    assert torch.isfinite(loss) and 1 <= logs["prototypes_used"] <= 5
    assert model.prototypes.weight.grad is None, "frozen prototypes get no gradient"
    assert model.queue[:, :6].abs().sum() > 0, "the batch's embeddings entered the queue"
    model.after_step(0, 10)
    assert torch.allclose(model.prototypes.weight.norm(dim=1), torch.ones(5), atol=1e-6)
    model.zero_grad()
    loss, _ = model.loss((images, None))  # step 1: prototypes trainable, queue in use
    loss.backward()
    assert model.prototypes.weight.grad is not None
    with pytest.raises(ValueError, match="2 large crops"):
        SwAV(ConvNet((4, 8)), n_large=1)
