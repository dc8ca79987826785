"""PPAP: time-range experts for classifier guidance, fine-tuned data-free from one clean classifier.

Go et al., "Towards Practical Plug-and-Play Diffusion Models", CVPR 2023. Taught, with
:mod:`guidance`, in notebooks/05_generative/03_guidance.ipynb.

Classifier guidance needs p(y | x_t) at every noise level, but a classifier f trained on clean images
is wrong on x_t (``guidance.accuracy_vs_t`` shows how fast it degrades). PPAP splits the timesteps
1..T into N equal ranges and gives each range its own **expert** f_n: the frozen f plus small
**adapters**. Each adapter is a low-rank residual on a frozen convolution W (LoRA, Hu et al. 2022):

    W x  ->  W x + B_n (A_n x),     A_n: c_in -> r channels (W's kernel, stride and padding),
                                    B_n: r -> c_out channels (1x1), with B_n = 0 at init,

so every expert starts as f exactly, and only the adapters train (a few % of f's weights). The
experts are trained **data-free**: the clean images are the unconditional DDPM's own samples
x_0 ~ p_theta (no labels, no data set), noised in closed form to x_t, and each expert learns to say on
x_t what f says on x_0 (knowledge distillation):

    L_n = E_{x_0 ~ p_theta, t in range n, eps} KL( softmax f(x_0) || softmax f_n(x_t) ).

Guidance at step t then uses the expert of t's range (``guidance.ExpertGuide``).

Training: ``fit(PPAPExperts(classifier, ddpm), ddpm_samples(ddpm, n, size), cfg, init=False)``.
``init=False`` keeps the adapters seeded by the constructor's ``seed``; ``init=True`` is harmless
(the frozen layers' ``reset_parameters`` do nothing, so only the adapters are re-seeded, from ``cfg.seed``).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset
from .diffusion import DDPM, q_sample


class LoRAConv2d(nn.Module):
    """A frozen convolution W plus ``n_adapters`` low-rank residuals B_k A_k, of which only ``active`` applies
    (``active = None``: W alone). The adapters are raw parameters, not sub-layers, so that nothing but
    :meth:`reset_parameters` (which keeps B_k = 0) can re-initialise them."""

    def __init__(self, conv: nn.Conv2d, rank: int = 4, n_adapters: int = 1):
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros":
            raise ValueError(f"LoRAConv2d wraps an nn.Conv2d with zero padding, got {conv!r}")
        if rank < 1 or n_adapters < 1:
            raise ValueError(f"rank and n_adapters must be >= 1, got {rank} and {n_adapters}")
        self.conv = conv.requires_grad_(False)
        c_in, c_out, kernel = conv.in_channels, conv.out_channels, conv.kernel_size
        self.down = nn.ParameterList(nn.Parameter(torch.empty(rank, c_in, *kernel)) for _ in range(n_adapters))
        self.up = nn.ParameterList(nn.Parameter(torch.empty(c_out, rank, 1, 1)) for _ in range(n_adapters))
        self.rank, self.active = rank, 0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A_k Kaiming-uniform (as ``nn.Conv2d``), B_k = 0: the layer equals W again. W itself is not touched."""
        for down, up in zip(self.down, self.up):
            nn.init.kaiming_uniform_(down, a=math.sqrt(5))
            nn.init.zeros_(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.active is None:
            return out
        c = self.conv
        low = F.conv2d(x, self.down[self.active], None, c.stride, c.padding, c.dilation)
        return out + F.conv2d(low, self.up[self.active])


def _keep_pretrained() -> None:
    """The ``reset_parameters`` of a frozen layer: pretrained weights are never re-initialised."""


def _freeze(module: nn.Module) -> None:
    module.requires_grad_(False)
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters = _keep_pretrained  # fit(init=True) calls reset_parameters on every module


class PPAPExperts(nn.Module):
    """N experts sharing one frozen copy of ``classifier``; expert n adds adapter n to every ``nn.Conv2d``.

    ``forward(images, t)`` takes images in [0, 1], like the classifier (pass (x_t + 1) / 2 for a DDPM's
    x_t in [-1, 1]) and a timestep per sample (or one for all), and returns the logits of each sample's
    expert. ``ddpm`` only provides T and the noise schedule alpha_bar (it is not stored).
    """

    def __init__(self, classifier: nn.Module, ddpm: DDPM, n_experts: int = 4, rank: int = 4, seed: int = 0):
        super().__init__()
        if not 1 <= n_experts <= ddpm.T:
            raise ValueError(f"n_experts must lie in 1..T={ddpm.T}, got {n_experts}")
        self.classifier = copy.deepcopy(classifier)  # the caller's classifier stays as it is
        _freeze(self.classifier)
        convs = [(parent, name, child) for parent in self.classifier.modules()
                 for name, child in parent.named_children() if isinstance(child, nn.Conv2d)]
        if not convs:
            raise ValueError(f"{type(classifier).__name__} has no nn.Conv2d to put adapters on")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for parent, name, conv in convs:
                setattr(parent, name, LoRAConv2d(conv, rank, n_experts))
        self.register_buffer("alpha_bar", ddpm.alpha_bar.detach().clone(), persistent=False)
        self.T, self.n_experts, self.rank = ddpm.T, n_experts, rank
        self.hparams = {"n_experts": n_experts, "rank": rank, "T": ddpm.T, "seed": seed}
        self.train(False)

    def train(self, mode: bool = True) -> PPAPExperts:
        super().train(mode)
        self.classifier.eval()  # frozen: batch norm keeps the clean running statistics, even while training
        return self

    def expert_of(self, t) -> torch.Tensor:
        """The expert (0..N-1) of each timestep: equal ranges of 1..T; t = 0 (a clean image) goes to expert 0."""
        t = torch.as_tensor(t).long()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) > self.T):
            raise ValueError(f"timesteps must lie in 0..{self.T}, got {int(t.min())}..{int(t.max())}")
        return (t - 1).clamp(min=0) * self.n_experts // self.T

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """(first, last) timestep of each expert."""
        ts = torch.arange(1, self.T + 1)
        experts = self.expert_of(ts)
        return [(int(ts[experts == n].min()), int(ts[experts == n].max())) for n in range(self.n_experts)]

    def expert(self, images: torch.Tensor, n: int | None) -> torch.Tensor:
        """Logits of expert ``n`` on images in [0, 1]; ``n = None`` is the clean classifier f itself."""
        for m in self.classifier.modules():
            if isinstance(m, LoRAConv2d):
                m.active = n
        return self.classifier(images)

    def forward(self, images: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, device=images.device).long()
        t = t.expand(len(images)) if t.ndim == 0 else t
        if t.shape != (len(images),):
            raise ValueError(f"expected one timestep per image ({len(images)}), got shape {tuple(t.shape)}")
        experts = self.expert_of(t)
        out = None
        for n in experts.unique().tolist():  # each expert runs once, on its part of the batch
            rows = experts == n
            logits = self.expert(images[rows], n)
            out = logits.new_zeros(len(images), logits.shape[1]) if out is None else out
            out[rows] = logits
        return self.expert(images, 0) if out is None else out  # out is None for an empty batch

    def loss(self, batch):
        images, _ = batch  # clean samples of the DDPM itself, in [0, 1]; labels unused
        self.classifier.eval()
        t = torch.randint(1, self.T + 1, (len(images),), device=images.device)
        x_t = q_sample(images * 2 - 1, t, self.alpha_bar)
        with torch.no_grad():
            teacher = F.log_softmax(self.expert(images, None), dim=1)
        student = F.log_softmax(self((x_t + 1) / 2, t), dim=1)
        kl = F.kl_div(student, teacher, log_target=True, reduction="batchmean")
        return kl, {"kl": kl.detach()}


@torch.no_grad()
def ddpm_samples(ddpm: DDPM, n: int, size: int, steps: int = 50, seed: int = 0, batch_size: int = 256) -> Dataset:
    """The data-free training set: ``n`` unconditional samples of ``ddpm`` (in [0, 1], on the CPU), labels 0."""
    images = torch.cat([ddpm.sample(min(batch_size, n - i), size, steps, seed=seed + i).cpu()
                        for i in range(0, n, batch_size)])
    return Dataset(images, torch.zeros(n, dtype=torch.long), [], name="ddpm samples")
