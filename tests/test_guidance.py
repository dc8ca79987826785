"""Classifier guidance with a clean classifier: EluCD's denoised guide and softplus copy, PPAP's LoRA experts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_tutorial.data import Dataset
from ssl_tutorial.methods.diffusion import DDPM
from ssl_tutorial.methods.guidance import (
    DenoisedGuide,
    ExpertGuide,
    NoisyInputGuide,
    accuracy_vs_t,
    diversity,
    guidance_objective,
    judge_accuracy,
    softplus_copy,
)
from ssl_tutorial.methods.ppap import LoRAConv2d, PPAPExperts, ddpm_samples
from ssl_tutorial.methods.supervised import Supervised
from ssl_tutorial.nets import ConvNet, seeded_init
from ssl_tutorial.train import fit

T = 50


@pytest.fixture
def classifier():
    return seeded_init(Supervised(ConvNet((4, 8)), num_classes=3), 0).eval()


@pytest.fixture
def ddpm():
    return DDPM(channels=8, T=T).eval()


def _guides(classifier, ddpm, y=1, scale=2.0):
    experts = PPAPExperts(classifier, ddpm, n_experts=4, rank=2)
    return {"noisy": NoisyInputGuide(classifier, y, scale),
            "denoised": DenoisedGuide(softplus_copy(classifier), ddpm, y, scale, tau1=1.0, tau2=0.5),
            "denoised shortcut": DenoisedGuide(classifier, ddpm, y, scale, through_unet=False),
            "expert": ExpertGuide(experts, y, scale)}


def test_guides_give_finite_gradients_of_the_input_shape(classifier, ddpm):
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 0])
    for name, guide in _guides(classifier, ddpm, y).items():
        for t in (1, 20, T):
            g = guide(x, torch.full((4,), t))
            assert g.shape == x.shape and torch.isfinite(g).all() and g.abs().sum() > 0, (name, t)
    for name, guide in _guides(classifier, ddpm, 1).items():  # one sample at each timestep 1..T, in one batch
        g = guide(torch.randn(T, 3, 8, 8), torch.arange(1, T + 1))
        assert torch.isfinite(g).all(), (name, "at some t in 1..T")
    assert classifier.head.weight.grad is None, "a guide differentiates w.r.t. x_t only"


def test_guidance_objective_is_log_softmax_at_unit_temperatures():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 3, 1, 1, 2])
    expected = F.log_softmax(logits, 1)[torch.arange(5), y]
    assert torch.allclose(guidance_objective(logits, y), expected, atol=1e-6)
    manual = 2 * logits[torch.arange(5), y] - torch.log(torch.exp(0.5 * logits).sum(1))
    assert torch.allclose(guidance_objective(logits, y, 2.0, 0.5), manual, atol=1e-5)
    assert torch.allclose(guidance_objective(logits, 3), F.log_softmax(logits, 1)[:, 3], atol=1e-6)
    for bad in [dict(tau1=0.0), dict(tau2=-1.0)]:
        with pytest.raises(ValueError, match="temperatures"):
            guidance_objective(logits, y, **bad)
    with pytest.raises(ValueError, match="classes must lie"):
        guidance_objective(logits, 4)
    with pytest.raises(ValueError, match="one class per sample"):
        guidance_objective(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="temperatures"):
        DenoisedGuide(nn.Identity(), DDPM(channels=8, T=T), 0, 1.0, tau1=0.0)


def test_softplus_copy_replaces_every_relu_and_leaves_the_original(classifier):
    smooth = softplus_copy(classifier, beta=100.0)
    assert not any(isinstance(m, nn.ReLU) for m in smooth.modules())
    assert sum(isinstance(m, nn.Softplus) for m in smooth.modules()) == 2
    assert sum(isinstance(m, nn.ReLU) for m in classifier.modules()) == 2
    x = torch.rand(4, 3, 8, 8)
    assert torch.allclose(smooth.eval()(x), classifier(x), atol=0.05), "same weights, a sharp softplus ~ ReLU"
    with pytest.raises(ValueError, match="beta"):
        softplus_copy(classifier, beta=0)


def test_experts_start_as_the_clean_classifier_even_after_reset_parameters(classifier, ddpm):
    experts = PPAPExperts(classifier, ddpm, n_experts=4, rank=2)
    x, t = torch.rand(6, 3, 8, 8), torch.tensor([1, 13, 14, 30, 50, 0])
    with torch.no_grad():
        clean = classifier(x)
        assert torch.allclose(experts(x, t), clean, atol=1e-6)
        for m in experts.modules():  # what fit(init=True) does: seeded_init
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        assert torch.allclose(experts(x, t), clean, atol=1e-6)
        lora = [m for m in experts.modules() if isinstance(m, LoRAConv2d)]
        assert len(lora) == 2 and all(len(m.down) == 4 and m.down[0].abs().sum() > 0 for m in lora)
        for m in lora:  # switch the adapters on: experts now differ, and each sample uses its own
            for up in m.up:
                up.normal_()
        mixed = experts(x, t)
        one_by_one = torch.cat([experts(x[i:i + 1], t[i]) for i in range(6)])
        assert torch.allclose(mixed, one_by_one, atol=1e-5) and not torch.allclose(mixed, clean, atol=1e-3)
        assert torch.allclose(experts.expert(x, None), clean, atol=1e-6)


def test_only_the_adapters_train(classifier, ddpm):
    experts = PPAPExperts(classifier, ddpm, n_experts=2, rank=2)
    trainable = [n for n, p in experts.named_parameters() if p.requires_grad]
    assert trainable and all(".down." in n or ".up." in n for n in trainable)
    frozen = {k: v.clone() for k, v in experts.state_dict().items() if ".down." not in k and ".up." not in k}
    original = {k: v.clone() for k, v in classifier.state_dict().items()}
    opt = torch.optim.AdamW(experts.parameters(), lr=0.1, weight_decay=0.5)
    experts.train()
    loss, logs = experts.loss((torch.rand(8, 3, 8, 8), torch.zeros(8, dtype=torch.long)))
    assert loss >= 0 and "kl" in logs
    loss.backward()
    opt.step()
    assert all(torch.equal(v, experts.state_dict()[k]) for k, v in frozen.items()), "frozen weights and BN stats"
    assert all(torch.equal(v, classifier.state_dict()[k]) for k, v in original.items())
    assert any(m.up[0].abs().sum() > 0 for m in experts.modules() if isinstance(m, LoRAConv2d))


def test_fit_trains_the_experts_data_free(classifier, ddpm, cfg):
    samples = ddpm_samples(ddpm, 8, 8, steps=3)
    assert isinstance(samples, Dataset) and samples.images.shape == (8, 3, 8, 8)
    experts = PPAPExperts(classifier, ddpm, n_experts=2, rank=2)
    x = torch.rand(4, 3, 8, 8)
    fit(experts, samples, cfg, steps=2, batch_size=4, progress=False, cache=False, init=True)
    assert torch.allclose(experts.expert(x, None), classifier(x), atol=1e-6), "init=True keeps the classifier"
    assert experts.hparams == {"n_experts": 2, "rank": 2, "T": T, "seed": 0}


def test_expert_of_covers_every_timestep_with_equal_ranges(ddpm):
    experts = PPAPExperts(seeded_init(Supervised(ConvNet((4,)), 3), 0), ddpm, n_experts=4)
    ranges = experts.ranges
    assert ranges[0][0] == 1 and ranges[-1][1] == T
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges[:-1], ranges[1:]))
    sizes = [hi - lo + 1 for lo, hi in ranges]
    assert max(sizes) - min(sizes) <= 1
    e = experts.expert_of(torch.arange(1, T + 1))
    assert (e.diff() >= 0).all() and set(e.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="timesteps"):
        experts.expert_of(T + 1)
    with pytest.raises(ValueError, match="n_experts"):
        PPAPExperts(nn.Conv2d(3, 3, 1), ddpm, n_experts=T + 1)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        PPAPExperts(nn.Linear(3, 3), ddpm)
    with pytest.raises(ValueError, match="rank"):
        LoRAConv2d(nn.Conv2d(3, 3, 1), rank=0)


def test_sampling_with_each_guide(classifier, ddpm):
    plain = ddpm.sample(3, 8, steps=4, seed=1)
    for name, guide in _guides(classifier, ddpm, torch.tensor([0, 1, 2]), scale=0.0).items():
        assert torch.equal(ddpm.sample(3, 8, steps=4, seed=1, guide=guide), plain), name
    for name, guide in _guides(classifier, ddpm, 2, scale=5.0).items():
        x = ddpm.sample(3, 8, steps=4, seed=1, guide=guide)
        assert x.shape == (3, 3, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1, name
        assert not torch.equal(x, plain), name


def test_judge_diversity_and_accuracy_vs_t(classifier, ddpm):
    images = torch.rand(6, 3, 8, 8)
    pred = classifier(images).argmax(1)
    assert judge_accuracy(classifier, images, pred) == 1.0
    assert judge_accuracy(classifier, images, 0) == pytest.approx((pred == 0).float().mean().item())
    same = torch.ones(4, 5)
    assert diversity(same, 0) == pytest.approx(0.0, abs=1e-6)
    assert diversity(torch.eye(2), 0) == pytest.approx(2 ** 0.5)
    with pytest.raises(ValueError, match="two samples"):
        diversity(torch.eye(2), torch.tensor([0, 1]))
    experts = PPAPExperts(classifier, ddpm, n_experts=2, rank=2)
    for model in (classifier, experts):
        accs = accuracy_vs_t(model, ddpm, images, pred, ts=[0, 10, T])
        assert len(accs) == 3 and accs[0] == pytest.approx(1.0) and all(0 <= a <= 1 for a in accs)
