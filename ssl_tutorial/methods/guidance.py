"""Classifier guidance of an unconditional DDPM with a classifier trained only on clean images.

Ma, Hu, Wang & Sun, "Elucidating the Design Space of Classifier-Guided Diffusion Generation", ICLR 2024
(EluCD); Go et al., "Towards Practical Plug-and-Play Diffusion Models", CVPR 2023 (PPAP, in :mod:`ppap`).
Taught in notebooks/05_generative/03_guidance.ipynb.

**Classifier guidance** (Dhariwal & Nichol 2021) samples p(x | y) ~ p(x) p(y | x) by shifting the
predicted noise along the gradient of a classifier, at every step t of ``DDPM.sample``:

    eps <- eps - sqrt(1 - alpha_bar_t) * s * grad_{x_t} log p(y | x_t).

A *guide* is the callable ``guide(x_t, t) -> s * grad_{x_t} log p(y | x_t)``. It needs p(y | x_t) on
noisy images, and a classifier trained on clean images is wrong there (:class:`NoisyInputGuide`, the
naive baseline). Two fixes that need no noisy labelled data:

**EluCD** (training-free, :class:`DenoisedGuide`). (1) Classify the denoised estimate, which looks like
a clean image, and differentiate through the U-Net:

    x0_hat(x_t) = (x_t - sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_bar_t),
    guide = s * grad_{x_t} log p(y | x0_hat(x_t));

(2) smooth the classifier, every ReLU becoming Softplus_beta(z) = log(1 + exp(beta z)) / beta, whose
gradient is not piecewise constant (:func:`softplus_copy`); (3) calibrate with decoupled joint and
marginal temperatures (:func:`guidance_objective`; tau1 = tau2 = 1 is log softmax):

    log [ exp(tau1 f_y) / sum_y' exp(tau2 f_y') ] = tau1 f_y - logsumexp(tau2 f).

**PPAP** (data-free fine-tuning, :class:`ExpertGuide`): one expert per range of timesteps, each the
frozen classifier plus LoRA adapters distilled on the DDPM's own noised samples (see :mod:`ppap`).

Image ranges: guides receive x_t in [-1, 1] (the U-Net's range) and feed classifiers (x + 1) / 2, the
[0, 1] range they were trained on. Nothing is clamped where a gradient must flow (clamping zeroes it);
at large t, x_t and x0_hat leave that range and the classifier sees them as they are.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import DDPM
from .ppap import PPAPExperts


def softplus_copy(classifier: nn.Module, beta: float = 3.0) -> nn.Module:
    """A deep copy of ``classifier`` with every ``nn.ReLU`` module replaced by ``nn.Softplus(beta)`` (EluCD's
    released code uses beta = 3); the original is untouched. ReLUs called as functions (``F.relu``) stay."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    smooth = copy.deepcopy(classifier)
    for module in list(smooth.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.Softplus(beta))
    return smooth


def _labels(y, n: int, device) -> torch.Tensor:
    y = torch.as_tensor(y, device=device).long()
    return y.expand(n) if y.ndim == 0 else y


def _check_temperatures(tau1: float, tau2: float) -> None:
    if not tau1 > 0 or not tau2 > 0:
        raise ValueError(f"temperatures must be > 0, got tau1={tau1!r} and tau2={tau2!r}")


def guidance_objective(logits: torch.Tensor, y, tau1: float = 1.0, tau2: float = 1.0) -> torch.Tensor:
    """Per sample, tau1 * logit_y - logsumexp(tau2 * logits): EluCD's calibrated log p(y | x). ``y`` is a
    class per sample (N,) or one int for all."""
    _check_temperatures(tau1, tau2)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, classes), got shape {tuple(logits.shape)}")
    y = _labels(y, len(logits), logits.device)
    if y.shape != (len(logits),):
        raise ValueError(f"y must be one class per sample ({len(logits)}), got shape {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise ValueError(f"classes must lie in 0..{logits.shape[1] - 1}, got {int(y.min())}..{int(y.max())}")
    return tau1 * logits.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(tau2 * logits, dim=1)


def _gradient(objective, x: torch.Tensor) -> torch.Tensor:
    """grad_x of objective(x).sum(): with the networks in eval mode each sample's gradient is its own."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x).sum(), x)
    return grad


class NoisyInputGuide:
    """Variant (a), the naive baseline: the clean classifier applied to the noisy x_t itself."""

    def __init__(self, classifier: nn.Module, y, scale: float):
        self.classifier, self.y, self.scale = classifier, y, scale

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.classifier.eval()
        return self.scale * _gradient(lambda x: guidance_objective(self.classifier((x + 1) / 2), self.y), x_t)


class DenoisedGuide:
    """EluCD: the classifier on x0_hat(x_t), the gradient back-propagated through the U-Net to x_t. For the
    full method pass ``softplus_copy(classifier)`` and temperatures (the released code: tau2 = tau1 / 2).

    ``through_unet=False`` is the shortcut of EluCD's released code: the gradient with respect to x0_hat
    (detached and clamped to [-1, 1]), one U-Net call without backward, used as if it were w.r.t. x_t."""

    def __init__(self, classifier: nn.Module, ddpm: DDPM, y, scale: float, tau1: float = 1.0, tau2: float = 1.0,
                 through_unet: bool = True):
        _check_temperatures(tau1, tau2)  # now, not mid-sampling
        self.classifier, self.ddpm, self.y, self.scale = classifier, ddpm, y, scale
        self.tau1, self.tau2, self.through_unet = tau1, tau2, through_unet

    def log_p(self, x0: torch.Tensor) -> torch.Tensor:
        return guidance_objective(self.classifier((x0 + 1) / 2), self.y, self.tau1, self.tau2)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.classifier.eval()
        if self.through_unet:
            return self.scale * _gradient(lambda x: self.log_p(self.ddpm.denoised(x, t)), x_t)
        with torch.no_grad():
            x0 = self.ddpm.denoised(x_t, t).clamp(-1, 1)
        return self.scale * _gradient(self.log_p, x0)


class ExpertGuide:
    """PPAP: at step t, the expert of t's range (``experts(images_in_0_1, t)``, e.g. :class:`PPAPExperts`) on x_t."""

    def __init__(self, experts: nn.Module, y, scale: float):
        self.experts, self.y, self.scale = experts, y, scale

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.experts.eval()
        return self.scale * _gradient(lambda x: guidance_objective(self.experts((x + 1) / 2, t), self.y), x_t)


@torch.no_grad()
def _logits(model: nn.Module, images: torch.Tensor, t=None, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    parts = [images[i:i + batch_size].to(device) for i in range(0, len(images), batch_size)]
    return torch.cat([(model(x) if t is None else model(x, t)).cpu() for x in parts])


def judge_accuracy(judge: nn.Module, images: torch.Tensor, y) -> float:
    """How often an independent classifier (the judge) sees the requested class ``y`` in images in [0, 1]."""
    return (_logits(judge, images).argmax(1) == _labels(y, len(images), "cpu")).float().mean().item()


def diversity(features: torch.Tensor, y) -> float:
    """The mean, over the requested classes, of the mean pairwise distance between the L2-normalised
    ``features`` (e.g. a judge's penultimate ``judge.backbone(images)``) of the samples of that class:
    0 when all samples of a class look alike to the judge, at most 2. Guidance too strong lowers it."""
    f = F.normalize(features.flatten(1).float(), dim=1)
    y = _labels(y, len(f), f.device)
    per_class = []
    for c in y.unique():
        fc = f[y == c]
        if len(fc) > 1:  # the mean over the len(fc) * (len(fc) - 1) ordered pairs of distinct samples
            per_class.append(torch.cdist(fc, fc).sum() / (len(fc) * (len(fc) - 1)))
    if not per_class:
        raise ValueError("diversity needs at least two samples of some class")
    return torch.stack(per_class).mean().item()


def accuracy_vs_t(model: nn.Module, ddpm: DDPM, images: torch.Tensor, labels: torch.Tensor, ts, seed: int = 0,
                  denoised: bool = False):
    """Accuracy of a classifier, or of :class:`PPAPExperts` (given t), on x_t of clean ``images`` in [0, 1],
    for each t in ``ts`` (the same noise for every t, from ``seed``): a list aligned with ``ts``.
    ``denoised=True`` classifies the DDPM's estimate x0_hat(x_t) instead, clamped to [-1, 1] (EluCD's premise)."""
    accs = []
    device = ddpm.alpha_bar.device
    for t in ts:
        x_t = ddpm.noised(images.cpu(), t, generator=torch.Generator().manual_seed(seed))
        if denoised:
            with torch.no_grad():
                steps = torch.full((len(x_t),), t, device=device)
                x_t = torch.cat([ddpm.denoised(x_t[i:i + 512].to(device), steps[i:i + 512]).clamp(-1, 1).cpu()
                                 for i in range(0, len(x_t), 512)])
        logits = _logits(model, (x_t + 1) / 2, t if isinstance(model, PPAPExperts) else None)
        accs.append((logits.argmax(1) == labels.cpu()).float().mean().item())
    return accs
