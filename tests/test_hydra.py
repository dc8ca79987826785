import math

import pytest
import torch

from ssl_tutorial.methods.hydra import Hydra, PairGate, gated_logits, hydra_loss
from ssl_tutorial.nets import ConvNet


def hydra_loss_loop(z, labels, partner, gate, tau):
    """The multi-positive gated InfoNCE with explicit loops over anchors, positives and negatives."""
    total, anchors = 0.0, 0
    for a in range(len(z)):
        def s(b, a=a):
            u = torch.nn.functional.normalize(gate[a] * z[a], dim=0)
            v = torch.nn.functional.normalize(gate[a] * z[b], dim=0)
            return float(u @ v) / tau

        pos = [b for b in range(len(z)) if b != a and labels[b] == partner[a]]
        neg = [b for b in range(len(z)) if labels[b] not in (labels[a], partner[a])]
        if not pos:
            continue
        neg_sum = sum(math.exp(s(n)) for n in neg)
        total += sum(math.log(math.exp(s(p)) + neg_sum) - s(p) for p in pos) / len(pos)
        anchors += 1
    return total / anchors


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_hydra_loss_matches_the_loop_formula(tau):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(10, 6, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 0, 1])
    partner = torch.tensor([1, 2, 1, 3, 0, 0, 2, 1, 3, 2])
    gate = torch.rand(10, 6, generator=g)
    value = hydra_loss(z, labels, partner, gate, tau).item()
    assert value == pytest.approx(hydra_loss_loop(z, labels, partner, gate, tau), rel=1e-5)


def test_gate_filters_the_comparison():
    z = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    only_first = torch.tensor([[1.0, 0.0]]).expand(3, 2)
    logits = gated_logits(z, only_first, 1.0)
    assert logits[0, 1].item() == pytest.approx(1.0), "rows 0 and 1 agree on the open dimension"
    assert logits[0, 2].item() == pytest.approx(0.0, abs=1e-6)


def test_pair_gate_is_symmetric_and_in_unit_interval():
    gate = PairGate(5, 7)
    table = gate.table()
    assert table.shape == (5, 5, 7)
    assert torch.allclose(table, table.transpose(0, 1))
    assert (table > 0).all() and (table < 1).all()


def test_hydra_module_and_errors():
    model = Hydra(ConvNet((4, 8)), n_classes=3, projection_dim=6)
    images, labels = torch.rand(12, 3, 16, 16), torch.arange(12) % 3
    loss, logs = model.loss((images, labels))
    assert torch.isfinite(loss) and 0 < logs["gate_open"] < 1
    loss.backward()
    assert model.gate.embedding.weight.grad is not None, "the gates are learned with the encoder"
    with pytest.raises(ValueError, match="class labels"):
        model.loss((images, labels + 3))
    with pytest.raises(ValueError, match="pairing"):
        Hydra(ConvNet((4, 8)), n_classes=3, pairing="random")
    with pytest.raises(ValueError, match="temperature"):
        hydra_loss(torch.randn(4, 2), labels[:4], labels[:4], torch.rand(4, 2), temperature=0)
    with pytest.raises(ValueError, match="shape"):
        hydra_loss(torch.randn(4, 2), labels[:4], labels[:3], torch.rand(4, 2))
