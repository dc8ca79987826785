import numpy as np
import pytest
import torch

from ssl_tutorial import clustering_scores, knn_accuracy, linear_probe, load_splits, probe_layers
from ssl_tutorial.evaluate import embed, factor_predictability, hungarian_accuracy, layer_features
from ssl_tutorial.nets import make_backbone


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) * 0.1 + torch.eye(4, 8)[y] * 3
    return x, y


def test_protocols_on_separable_data():
    x, y = _blobs()
    assert knn_accuracy(x[:150], y[:150], x[150:], y[150:], k=5) == 1.0
    assert linear_probe(x[:150], y[:150], x[150:], y[150:]) == 1.0
    assert linear_probe(x[:150], y[:150], x[150:], y[150:], method="logistic") == 1.0
    noise = torch.randn(200, 8)
    assert linear_probe(noise[:150], y[:150], noise[150:], y[150:]) < 0.6
    with pytest.raises(ValueError, match="ridge, logistic"):
        linear_probe(x, y, x, y, method="svm")


def test_clustering_scores_ignore_cluster_names():
    y = np.array([0, 0, 1, 1, 2, 2])
    renamed = np.array([2, 2, 0, 0, 1, 1])
    assert clustering_scores(y, renamed) == {"nmi": pytest.approx(1.0), "ari": pytest.approx(1.0), "accuracy": 1.0}
    assert hungarian_accuracy(y, np.array([0, 0, 0, 0, 0, 0])) == pytest.approx(1 / 3)


def test_layer_probe_and_embed(cfg):
    train, test = load_splits(cfg)
    net = make_backbone(cfg)
    feats = layer_features(net, train.images, grid=2)
    assert [f.shape for f in feats] == [(len(train), 4 * w) for w in cfg.widths]
    table = probe_layers(net, train, test)
    assert table["block"].tolist() == [1, 2, 3, 4] and table["accuracy"].between(0, 1).all()
    assert embed(net, test.images, batch_size=7).shape == (len(test), net.out_dim)
    kept = factor_predictability(embed(net, train.images), embed(net, test.images), train.factors, test.factors)
    assert set(kept.index) == {"shape", "superclass", "colour", "texture", "domain"}
    pixels_tr, pixels_te = train.images.flatten(1), test.images.flatten(1)
    knn = factor_predictability(pixels_tr, pixels_te, train.factors, test.factors, ("domain",), method="knn")
    domain_tr, domain_te = train.factors["domain"].to_numpy(), test.factors["domain"].to_numpy()
    assert knn["domain"] == knn_accuracy(pixels_tr, domain_tr, pixels_te, domain_te)
    with pytest.raises(ValueError, match="probe"):
        factor_predictability(pixels_tr, pixels_te, train.factors, test.factors, method="svm")


def test_embed_puts_the_owner_of_a_method_in_eval_mode():
    from ssl_tutorial.methods.simclr import SimCLR
    from ssl_tutorial.nets import ConvNet

    model = SimCLR(ConvNet((4, 8)), projection_dim=3).train()
    x = torch.rand(6, 3, 16, 16)
    z = embed(model.project, x, batch_size=2)  # batch norm in eval mode: the batch size must not matter
    assert torch.allclose(z, embed(model.project, x, batch_size=6), atol=1e-6)
    assert model.training, "embed restores the mode it found"


def test_few_shot_accuracy():
    from ssl_tutorial.evaluate import few_shot_accuracy

    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(20)
    centres = torch.eye(4) * 10
    z = centres[y] + torch.randn(80, 4, generator=g)
    assert few_shot_accuracy(z, y, shots=1, draws=10) == 1.0, "well-separated classes: one example each suffices"
    noise = torch.randn(80, 4, generator=g)
    assert 0.1 < few_shot_accuracy(noise, y, shots=3, draws=30) < 0.45, "random features: near chance (0.25)"
    with pytest.raises(ValueError, match="shots"):
        few_shot_accuracy(z[::10], y[::10], shots=3)  # 2 examples per class
