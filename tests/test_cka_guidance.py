"""Linear CKA against a direct HSIC formula, its invariances, and guidance by a frozen guide network."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_tutorial.data import Dataset
from ssl_tutorial.methods.cka_guidance import Guided, cka_matrix, even_mapping, linear_cka
from ssl_tutorial.methods.cka_guidance_nets import DeepMLP, PooledConvGuide, RandomMLPGuide
from ssl_tutorial.nets import seeded_init
from ssl_tutorial.train import cache_key, fit


def hsic_cka(X: np.ndarray, Y: np.ndarray) -> float:
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T
    hsic = lambda A, B: np.trace(A @ H @ B @ H)  # noqa: E731
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def test_linear_cka_matches_the_hsic_formula():
    for n, p, q in [(10, 3, 7), (6, 20, 4), (32, 16, 16)]:
        X, Y = rand(n, p), rand(n, q)
        assert linear_cka(X, Y).item() == pytest.approx(hsic_cka(X.numpy(), Y.numpy()), abs=1e-10)
    X, Y = rand(8, 2, 3, 3), rand(8, 5)  # (n, ...) is flattened
    assert linear_cka(X, Y).item() == pytest.approx(hsic_cka(X.reshape(8, -1).numpy(), Y.numpy()), abs=1e-10)


def test_linear_cka_properties():
    X, Y = rand(20, 6), rand(20, 4)
    Q, _ = torch.linalg.qr(rand(6, 6))
    c = linear_cka(X, Y)
    assert linear_cka(X, X).item() == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(X @ Q, Y).item() == pytest.approx(c.item(), abs=1e-10)
    assert linear_cka(3 * X, Y).item() == pytest.approx(c.item(), abs=1e-10)
    assert linear_cka(X + 5.0, Y).item() == pytest.approx(c.item(), abs=1e-10)  # centred over the batch
    assert abs(linear_cka(X * torch.tensor([10.0, 1, 1, 1, 1, 0.1], dtype=X.dtype), Y).item() - c.item()) > 1e-3
    assert linear_cka(Y, X).item() == pytest.approx(c.item(), abs=1e-12)
    for _ in range(5):
        v = linear_cka(rand(12, 5), rand(12, 3)).item()
        assert 0.0 <= v <= 1.0
    assert linear_cka(torch.zeros(5, 3), rand(5, 2)).item() == 0.0  # no variance: 0, not nan
    assert linear_cka(1e-20 * X.float(), Y.float()).item() == pytest.approx(c.item(), abs=1e-5)  # no underflow


def test_linear_cka_is_differentiable():
    X = rand(16, 5).requires_grad_()
    linear_cka(X, rand(16, 3)).backward()
    assert X.grad is not None and torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0


@pytest.mark.parametrize("X, Y", [(torch.randn(5, 3), torch.randn(4, 3)), (torch.randn(1, 3), torch.randn(1, 3)),
                                  (torch.tensor(1.0), torch.randn(3, 2))])
def test_linear_cka_bad_inputs(X, Y):
    with pytest.raises(ValueError) as e:
        linear_cka(X, Y)
    assert "\n" not in str(e.value)


def test_cka_matrix():
    a = [torch.randn(10, 4), torch.randn(10, 2, 3, 3)]
    b = [torch.randn(10, 3), a[0], torch.randn(10, 8), torch.randn(10, 1)]
    M = cka_matrix(a, b)
    assert M.shape == (2, 4) and not M.requires_grad
    assert M[0, 1].item() == pytest.approx(1.0, abs=1e-5)


def test_nets_shapes():
    x = torch.rand(4, 3, 8, 8)
    mlp, conv = DeepMLP(3 * 8 * 8, 5, depth=4, width=16), PooledConvGuide(5, width=4)
    assert mlp(x).shape == (4, 5) and [h.shape for h in mlp.hidden(x)] == [(4, 16)] * 4
    assert all((h >= 0).all() for h in mlp.hidden(x))  # post-activation
    assert conv(x).shape == (4, 5) and [h.shape for h in conv.hidden(x)] == [(4, 4, 8, 8), (4, 4, 4, 4), (4, 4)]
    control = RandomMLPGuide(3 * 8 * 8, width=6, hidden_width=10)
    assert [h.shape for h in control.hidden(x)] == [(4, 10), (4, 6), (4, 6)] and control(x).shape == (4, 6)
    with pytest.raises(ValueError, match="values per image"):
        mlp(torch.rand(4, 3, 4, 4))


def test_even_mapping():
    assert even_mapping(8, 3) == [(1, 0), (4, 1), (7, 2)]
    assert even_mapping(2, 4) == [(0, 1), (1, 3)]
    assert even_mapping(3, 3) == [(0, 0), (1, 1), (2, 2)]


def _pair(weight=1.0, **kw):
    torch.manual_seed(0)
    return Guided(DeepMLP(3 * 8 * 8, 4, depth=4, width=32), PooledConvGuide(4, width=8), weight=weight, **kw)


def test_weight_zero_is_plain_cross_entropy():
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 4, (8,))
    for guided in (_pair(0.0), Guided(DeepMLP(3 * 8 * 8, 4, depth=3, width=8))):
        loss, logs = guided.loss((x, y))
        assert loss.item() == pytest.approx(F.cross_entropy(guided.target(x), y).item(), abs=1e-6)
        assert set(logs) >= {"acc", "ce"}
    assert set(_pair(0.0).loss((x, y))[1]) == {"acc", "ce", "cka"}


def test_guide_is_frozen_and_survives_seeded_init():
    guided = _pair(1.0)
    before = {k: v.clone() for k, v in guided.guide.state_dict().items()}
    target_before = [p.clone() for p in guided.target.parameters()]
    assert not any(p is q for p in guided.parameters() for q in guided.guide.parameters())
    assert all(not p.requires_grad for p in guided.guide.parameters())
    opt = torch.optim.Adam(guided.parameters(), lr=1e-2)
    guided.train()
    for _ in range(3):
        loss, _ = guided.loss((torch.rand(8, 3, 8, 8), torch.randint(0, 4, (8,))))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not guided.guide.training
    seeded_init(guided, 1)
    for k, v in guided.guide.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(p, q) for p, q in zip(guided.target.parameters(), target_before))


def test_guidance_raises_cka():
    guided = _pair(10.0)
    x, y = torch.rand(32, 3, 8, 8), torch.randint(0, 4, (32,))
    opt = torch.optim.Adam(guided.parameters(), lr=3e-3)
    ckas = []
    for _ in range(30):
        loss, logs = guided.loss((x, y))
        ckas.append(float(logs["cka"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ckas[-1] > ckas[0] + 0.2, ckas


def test_fit_trains_the_target_only_and_keys_the_guide(cfg):
    data = Dataset(torch.rand(32, 3, 8, 8), torch.randint(0, 4, (32,)), list("abcd"))
    guided = _pair(1.0, guide_id="random")
    guide_before = {k: v.clone() for k, v in guided.guide.state_dict().items()}
    history = fit(guided, data, cfg, progress=False)
    assert set(history.logs) == {"acc", "ce", "cka"}
    assert all(torch.equal(v, guide_before[k]) for k, v in guided.guide.state_dict().items())
    assert not any(k.startswith("_guide") or k.startswith("guide") for k in guided.state_dict())
    a, b, c = (_pair(1.0, guide_id="random") for _ in range(3))
    seeded_init(b.guide, 1)  # same target, guide class and id; other guide weights: another cache key
    c.guide_id = "trained"
    key = lambda m: cache_key(m, data, {"steps": 1})  # noqa: E731
    assert len({key(a), key(b), key(c)}) == 3 and key(a) == key(_pair(1.0, guide_id="random"))
    assert guided.predict(data.images).shape == (32,)


def test_guided_bad_arguments():
    for kw in ({"weight": -1.0}, {"mapping": [(0, 5)]}, {"mapping": []}):
        with pytest.raises(ValueError) as e:
            _pair(**kw)
        assert "\n" not in str(e.value)


def test_pooled_conv_guide_is_translation_invariant_and_the_pool_aligns():
    from ssl_tutorial.data.glyphs import glyph_set, translated_glyphs

    g = glyph_set(4, seed=0)
    a = torch.zeros(1, 3, 24, 24)
    a[0, :, 6:11, 6:11] = torch.from_numpy(g[0])
    # the same glyph elsewhere: an even shift (the 2x2 max-pool) and far from the border (the zero padding)
    b = torch.roll(a, shifts=(4, 6), dims=(2, 3))
    guide = PooledConvGuide(4, width=8).eval()
    with torch.no_grad():
        pa, pb = guide.hidden(a)[-1], guide.hidden(b)[-1]
    assert torch.allclose(pa, pb, atol=1e-5)  # a global max pool of a convolution does not see where
    assert len(RandomMLPGuide(3 * 24 * 24).hidden(a)) == 3
    data = translated_glyphs(2, g, canvas=12, seed=1)
    pool = translated_glyphs(4, g, canvas=12, seed=2).images
    target = DeepMLP(3 * 12 * 12, 4, depth=4, width=16, batch_norm=True)
    m = Guided(target, guide, weight=1.0, mapping=[(3, 2)], pool=pool, pool_batch=8)
    loss, logs = m.loss((data.images, data.labels))
    assert torch.isfinite(loss) and 0 <= float(logs["cka"]) <= 1
    assert m.hparams["guide_weights"] != Guided(target, guide, weight=1.0, mapping=[(3, 2)]).hparams["guide_weights"]
