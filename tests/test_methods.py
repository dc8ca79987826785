import math

import pytest
import torch

from ssl_tutorial.methods.rotnet import RotNet
from ssl_tutorial.methods.sla import SLA, MultiTask
from ssl_tutorial.methods.supervised import Supervised
from ssl_tutorial.nets import ConvNet, make_backbone, mlp, seeded_init


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.rand(5, 3, 16, 16), torch.tensor([0, 1, 2, 1, 0])


def _log_softmax_at(logits, index):
    return float(logits[index].detach()) - math.log(sum(math.exp(v) for v in logits.tolist()))


def test_rotnet_loss_matches_the_formula(batch):
    """loss = -(1/K) sum_y log F^y(g(X|y)), averaged over images, written as plain loops."""
    model = RotNet(ConvNet((4, 8))).eval()
    x, _ = batch
    loss, logs = model.loss(batch)
    total = 0.0
    for img in x:
        for y in range(4):
            logits = model(torch.rot90(img, y, dims=(1, 2)).unsqueeze(0))[0]
            total -= _log_softmax_at(logits, y)
    assert loss.item() == pytest.approx(total / (4 * len(x)), rel=1e-5)
    assert 0 <= logs["rotation_acc"] <= 1
    assert model.loss(batch)[0].item() == loss.item(), "the same input gives the same loss"
    hits = model.rotation_hits(x, batch_size=2)
    expected = [sum(int(model(torch.rot90(img, y, dims=(1, 2)).unsqueeze(0)).argmax()) == y for y in range(4)) / 4
                for img in x]
    assert hits.tolist() == pytest.approx(expected) and model.rotation_accuracy(x) == pytest.approx(sum(expected) / 5)


def test_sla_loss_matches_the_formula(batch):
    """L_SLA = (1/M) sum_j CE(z(t_j(x)), (y, j)) with joint index y*M + j."""
    x, y = batch
    model = SLA(ConvNet((4, 8)), num_classes=3, distill=False).eval()
    loss, _ = model.loss(batch)
    total = 0.0
    for img, label in zip(x, y):
        for j in range(4):
            z = model.joint_head(model.backbone(torch.rot90(img, j, dims=(1, 2)).unsqueeze(0)))[0]
            total -= _log_softmax_at(z, int(label) * 4 + j)
    assert loss.item() == pytest.approx(total / (4 * len(x)), rel=1e-5)


def test_sla_aggregation_and_distillation(batch):
    x, y = batch
    model = SLA(ConvNet((4, 8)), num_classes=3).eval()
    zj = model.joint_logits(x)
    assert zj.shape == (4, 5, 3)
    for j in range(4):  # view j keeps the logits of the labels (., j)
        z = model.joint_head(model.backbone(torch.rot90(x, j, dims=(2, 3))))
        assert torch.allclose(zj[j], z[:, j::4], atol=1e-6)
    assert torch.equal(model.predict(x, "aggregated"), zj.mean(0).argmax(1))
    assert torch.equal(model.predict(x, "single"), zj[0].argmax(1))
    assert model.predict(x, "distilled").shape == (5,)
    with_distillation = model.loss(batch)[0].item()
    model.distill = False  # the same weights, L_SLA alone: distillation adds KL (>= 0) + CE (> 0)
    assert with_distillation > model.loss(batch)[0].item()
    with pytest.raises(ValueError, match="aggregated"):
        model.predict(x, "vote")


def test_supervised_and_multitask(batch):
    x, y = batch
    sup = Supervised(ConvNet((4, 8)), 3).eval()
    loss, logs = sup.loss(batch)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(sup(x), y).item(), rel=1e-6)
    assert sup.predict(x).shape == (5,)
    mt = MultiTask(ConvNet((4, 8)), 3).eval()
    assert torch.isfinite(mt.loss(batch)[0]) and mt.predict(x).shape == (5,)


def test_backbones(cfg):
    net = make_backbone(cfg)
    again = make_backbone(cfg)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    feats = net.features(torch.rand(2, 3, 16, 16))
    assert [f.shape[1] for f in feats] == list(cfg.widths) and net(torch.rand(2, 3, 16, 16)).shape == (2, net.out_dim)
    other = seeded_init(make_backbone(cfg), 1)
    assert not torch.equal(next(other.parameters()), next(net.parameters()))
    assert mlp(8, 16, 4)(torch.rand(3, 8)).shape == (3, 4)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.rand(2, 16, 16))
    with pytest.raises(ValueError, match="backbone"):
        make_backbone(cfg.with_(backbone="vit"))


def test_resnet18_blocks():
    from ssl_tutorial.nets import ResNet18

    net = ResNet18()
    assert [f.shape[1] for f in net.features(torch.rand(2, 3, 16, 16))] == [64, 128, 256, 512]


def test_mlpnet():
    from ssl_tutorial.nets import MLPNet

    net = MLPNet(3 * 8 * 8, (32, 16))
    x = torch.rand(5, 3, 8, 8)
    assert net(x).shape == (5, 16) and [f.shape for f in net.features(x)] == [(5, 32, 1, 1), (5, 16, 1, 1)]
    with pytest.raises(ValueError, match="192 values"):
        net(torch.rand(5, 3, 16, 16))
