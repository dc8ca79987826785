"""Chapter 5 building blocks (no notebooks yet): the tiny DDPM and the Householder projector."""
import pytest
import torch

from ssl_tutorial import Dataset, fit
from ssl_tutorial.methods.diffusion import BLOCKS, DDPM, linear_schedule, q_sample
from ssl_tutorial.methods.householder import HouseholderLinear, LatentVAE, householder_product, single_factor_share, traverse


# -- diffusion --------------------------------------------------------------------------------
def test_schedule_runs_from_clean_to_noise():
    a = linear_schedule(1000)
    assert a[0] == 1 and len(a) == 1001 and (a[1:] < a[:-1]).all() and a[-1] < 1e-4


def test_forward_noising_matches_its_closed_form():
    """q(x_t | x_0) from composing the one-step kernels equals the closed form's mean and variance."""
    T, t = 50, 37
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    alpha_bar = linear_schedule(T)
    mean, var = 1.0, 0.0  # x_0 = 1; after s steps x_s = m x_0 + noise of variance v
    for s in range(t):
        mean, var = mean * (1 - betas[s]).sqrt(), var * (1 - betas[s]) + betas[s]
    assert float(mean) ** 2 == pytest.approx(float(alpha_bar[t]), rel=1e-5)
    assert float(var) == pytest.approx(float(1 - alpha_bar[t]), rel=1e-5)
    x0, noise = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    xt = q_sample(x0, torch.full((4,), t), alpha_bar, noise)
    assert torch.allclose(xt, alpha_bar[t].sqrt() * x0 + (1 - alpha_bar[t]).sqrt() * noise)
    samples = q_sample(torch.ones(20000, 1, 1, 1), torch.full((20000,), t), alpha_bar)
    assert float(samples.mean()) == pytest.approx(float(mean), abs=0.03)
    assert float(samples.var()) == pytest.approx(float(var), abs=0.03)


def test_ddpm_trains_samples_and_gives_features(cfg):
    data = Dataset(torch.rand(16, 3, 16, 16), torch.zeros(16, dtype=torch.long), ["x"])
    model = DDPM(channels=8, T=100)
    fit(model, data, cfg, steps=2, batch_size=8, progress=False)
    x = model.sample(3, 16, steps=5)
    assert x.shape == (3, 3, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1
    feats = model.features(data.images, t=10, grid=2)
    assert set(feats) == set(BLOCKS) and feats["enc1"].shape == (16, 8 * 4) and feats["mid"].shape == (16, 16 * 4)
    again = model.features(data.images, t=10, grid=2)
    assert all(torch.equal(feats[b], again[b]) for b in BLOCKS), "the same seed gives the same noise"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CPU path is tested above)")
def test_ddpm_sampler_on_cuda():
    model = DDPM(channels=8, T=100).cuda()
    assert model.sample(2, 16, steps=3).device.type == "cuda"


def test_ddpm_bad_input():
    model = DDPM(channels=8, T=100)
    with pytest.raises(ValueError, match="multiples of 4"):
        model.features(torch.rand(2, 3, 10, 10), t=5)
    with pytest.raises(ValueError, match="timesteps"):
        model.features(torch.rand(2, 3, 16, 16), t=500)
    with pytest.raises(ValueError, match="blocks"):
        model.features(torch.rand(2, 3, 16, 16), t=5, blocks=("enc9",))
    with pytest.raises(ValueError, match="steps"):
        model.sample(2, 16, steps=0)


# -- Householder ------------------------------------------------------------------------------
def test_householder_product_is_orthogonal():
    v = torch.randn(6, 40, dtype=torch.float64)
    Q = householder_product(v)
    assert torch.allclose(Q.T @ Q, torch.eye(40, dtype=torch.float64), atol=1e-5)
    first = householder_product(v.float(), 6)
    assert torch.allclose(first.T @ first, torch.eye(6), atol=1e-5)
    assert torch.allclose(first, Q[:, :6].float(), atol=1e-5)
    H = torch.eye(40, dtype=torch.float64) - 2 * torch.outer(v[0], v[0]) / v[0].dot(v[0])  # a single reflection
    assert torch.allclose(householder_product(v[:1]), H)


def test_householder_layer_has_equal_singular_values_after_training():
    layer = HouseholderLinear(16, 128, rank=6)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(5):
        loss = layer(torch.randn(32, 16)).pow(3).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    s = torch.linalg.svdvals(layer.weight.detach())
    assert torch.allclose(s[:6], torch.ones(6), atol=1e-5) and s[6:].abs().max() < 1e-5


def test_directions_of_both_first_layers(cfg):
    for first in ("householder", "linear"):
        vae = LatentVAE(latent_dim=8, size=16, first=first, rank=3, width=16, widths=(8, 8))
        data = Dataset(torch.rand(16, 3, 16, 16), torch.zeros(16, dtype=torch.long), ["x"])
        fit(vae, data, cfg, steps=2, batch_size=8, progress=False)
        d, s = vae.directions(3)
        assert d.shape == (3, 8) and torch.allclose(d @ d.T, torch.eye(3), atol=1e-5)
        assert (s[:-1] >= s[1:]).all()
        assert vae.generate(torch.randn(2, 8)).shape == (2, 3, 16, 16)
        frames = traverse(vae, torch.randn(2, 8), d[0], alphas=(-1.0, 0.0, 1.0))
        assert frames.shape == (3, 2, 3, 16, 16)


def test_single_factor_share():
    import pandas as pd
    effects = pd.DataFrame({"a": [1.0, 1.0], "b": [0.0, 1.0]})
    assert single_factor_share(effects).tolist() == [1.0, 0.5]


def test_householder_bad_input():
    with pytest.raises(ValueError, match="rank"):
        HouseholderLinear(4, 8, rank=5)
    with pytest.raises(ValueError, match="first layer"):
        LatentVAE(first="conv")
    with pytest.raises(ValueError, match="shape"):
        householder_product(torch.randn(3))
