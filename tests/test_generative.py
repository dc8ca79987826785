"""Chapter 5 building blocks: the tiny DDPM, the Householder projector and what a latent direction changes."""
import pytest
import torch

from ssl_tutorial import Dataset, fit
from ssl_tutorial.directions import image_change, single_factor_share
from ssl_tutorial.methods.diffusion import BLOCKS, DDPM, linear_schedule, q_sample
from ssl_tutorial.methods.householder import (
    HouseholderLinear,
    LatentVAE,
    from_svd,
    householder_product,
    householder_vectors,
    rotate_basis,
    traverse,
)


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
    from ssl_tutorial.methods.guidance import NoisyInputGuide
    from ssl_tutorial.methods.supervised import Supervised
    from ssl_tutorial.nets import ConvNet

    model = DDPM(channels=8, T=100).cuda()
    assert model.sample(2, 16, steps=3).device.type == "cuda"
    guide = NoisyInputGuide(Supervised(ConvNet((4, 8)), 3).cuda(), 1, scale=2.0)
    guided = model.sample(2, 16, steps=3, guide=guide)
    assert guided.device.type == "cuda" and torch.isfinite(guided).all()


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


@pytest.mark.parametrize("n, r", [(8, 1), (16, 3), (64, 6), (512, 8), (6, 5)])
def test_householder_vectors_invert_the_product(n, r):
    Q = torch.linalg.qr(torch.randn(n, r, dtype=torch.float64))[0]
    assert torch.allclose(householder_product(householder_vectors(Q), r), Q, atol=1e-8)
    I = torch.eye(n, r, dtype=torch.float64)  # the degenerate case: columns already on the axes
    assert torch.allclose(householder_product(householder_vectors(I), r), I, atol=1e-8)


def test_a_square_basis_is_set_up_to_a_joint_sign_flip():
    Q = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))[0]
    if torch.linalg.det(Q) * (-1) ** 5 < 0:
        Q[:, 0] = -Q[:, 0]  # now det(Q) = (-1)^5: a product of 5 reflections
    assert torch.allclose(householder_product(householder_vectors(Q), 5), Q, atol=1e-8)
    Q[:, 0] = -Q[:, 0]
    with pytest.raises(ValueError, match="flip"):
        householder_vectors(Q)
    layer = HouseholderLinear(5, 20, rank=5)  # V is square: set_factors flips a column of U and V together
    U = torch.linalg.qr(torch.randn(20, 5))[0]
    layer.set_factors(U, Q.float())
    assert torch.allclose(layer.weight, U @ Q.float().T, atol=1e-5)


def _small_vae(first, latent_dim=12, rank=3):
    torch.manual_seed(0)
    vae = LatentVAE(latent_dim=latent_dim, size=16, first=first, rank=rank, width=16, widths=(8, 8))
    for p in vae.parameters():  # away from the initialisation, as after training
        p.data += 0.05 * torch.randn_like(p)
    return vae


def test_rotating_the_basis_leaves_the_generator_unchanged():
    vae = _small_vae("householder")
    R = torch.linalg.qr(torch.randn(3, 3))[0]
    rotated = rotate_basis(vae, R)
    z = torch.randn(8, 12)
    assert torch.allclose(rotated.generate(z), vae.generate(z), atol=1e-5)
    d, d_rot = vae.directions()[0], rotated.directions()[0]
    assert torch.allclose(d_rot, R.T @ d, atol=1e-5) and not torch.allclose(d_rot, d, atol=1e-2)
    with pytest.raises(ValueError, match="householder"):
        rotate_basis(_small_vae("linear"), R)


def test_from_svd_starts_from_the_trained_layer_with_unit_spectrum():
    linear = _small_vae("linear", latent_dim=6, rank=6)
    start = from_svd(linear, rank=6)
    W = linear.decoder.first.weight.detach()
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    assert torch.allclose(start.decoder.first.weight, U @ Vh, atol=1e-5)  # S replaced by I
    assert torch.allclose(start.directions()[0].abs(), Vh.abs(), atol=1e-4)  # the SeFa directions
    copied = linear.state_dict()
    assert all(torch.equal(v, copied[k]) for k, v in start.state_dict().items() if not k.startswith("decoder.first."))
    with pytest.raises(ValueError, match="linear"):
        from_svd(start, rank=3)


def test_image_change_is_zero_for_ignored_directions():
    vae = _small_vae("householder")
    _, V = vae.decoder.first.factors()
    null = torch.linalg.svd(V.T.detach(), full_matrices=True)[2][3:]  # directions orthogonal to V's columns
    z = torch.randn(16, 12)
    changes = image_change(vae, z, torch.cat([vae.directions()[0], null[:2]]))
    assert (changes[:3] > 1e-3).all() and (changes[3:] < 1e-5).all()
    with pytest.raises(ValueError, match="directions"):
        image_change(vae, z, torch.randn(2, 5))


def test_autoencoder_baseline_never_sees_noise(cfg):
    from ssl_tutorial.methods.diffusion import UNetAutoencoder

    data = Dataset(torch.rand(16, 3, 8, 8), torch.zeros(16, dtype=torch.long), ["x"])
    model = UNetAutoencoder(channels=8, T=100)
    seen = []
    original = model.unet.forward
    model.unet.forward = lambda x, t: (seen.append(t.clone()), original(x, t))[1]
    fit(model, data, cfg, steps=2, batch_size=8, progress=False)
    model.features(data.images, t=50, grid=1)
    assert all((t == 0).all() for t in seen), "trained and read at t = 0 only"
    with pytest.raises(TypeError, match="cannot sample"):
        model.sample(2, 8)


def test_probe_over_noise_table(cfg):
    from ssl_tutorial.evaluate import probe_over_noise

    labels = torch.arange(40) % 2
    images = torch.rand(40, 3, 8, 8) * 0.2 + labels.view(-1, 1, 1, 1) * 0.8  # two classes, dark and bright
    data = Dataset(images, labels, ["dark", "bright"])
    table = probe_over_noise(DDPM(channels=8, T=100), data, data, ts=(0, 100), blocks=("enc1", "mid"))
    assert list(table.index) == [0, 100] and list(table.columns) == ["enc1", "mid"]
    assert table.loc[0].min() == 100.0, "clean, the classes are separable from any block"
    assert ((table >= 0) & (table <= 100)).all().all()


def test_tiny_ddpm_is_shared_through_the_cache(cfg):
    from ssl_tutorial.artifacts import DDPM_PRESETS, tiny_ddpm

    data = Dataset(torch.rand(16, 3, 8, 8), torch.zeros(16, dtype=torch.long), ["x"])
    preset = {**DDPM_PRESETS["smoke"], "steps": 2}
    first = tiny_ddpm(cfg, data, preset, progress=False)
    second = tiny_ddpm(cfg, data, preset, progress=False)  # what the guidance notebook does after the features one
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert set(DDPM_PRESETS) == {"smoke", "cpu", "gpu"}


def test_probe_over_noise_draws():
    from ssl_tutorial.evaluate import probe_over_noise

    labels = torch.arange(40) % 2
    data = Dataset(torch.rand(40, 3, 8, 8) * 0.2 + labels.view(-1, 1, 1, 1) * 0.8, labels, ["dark", "bright"])
    model = DDPM(channels=8, T=100)
    one = probe_over_noise(model, data, data, ts=(50,), blocks=("mid",), seed=3)
    assert one.equals(probe_over_noise(model, data, data, ts=(50,), blocks=("mid",), seed=3, draws=1))
    assert probe_over_noise(model, data, data, ts=(50,), blocks=("mid",), seed=3, draws=2).shape == (1, 1)
    with pytest.raises(ValueError, match="draws"):
        probe_over_noise(model, data, data, ts=(50,), draws=0)
