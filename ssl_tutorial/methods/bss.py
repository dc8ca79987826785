"""Batch Styles Standardization (BSS): one style per view-batch, so negatives cannot be told apart by style.

Scalbert, Vakalopoulou & Couzinie-Devy, "Towards domain-invariant Self-Supervised Learning with Batch Styles
Standardization", ICLR 2024. Taught in notebooks/02_invariance/02_bss.ipynb.

Contrastive learning over images from several domains has a shortcut: a negative from another domain is told
apart from the anchor by its style (background, palette, texture) alone, so the encoder learns the domain. The
classic fix restricts negatives to the anchor's domain, which needs domain labels. BSS needs none: it gives every
image of a view-batch the *same* style. With the Fourier transform F(x_i) = A_i e^{j Phi_i} (amplitude, phase),
a reference image r drawn from the batch, and M the centred low-frequency window (ratio ``ratio`` of the side),

    A_hat_i = (1 - M) * A_i + M * A_r ,        x_hat_i = F^-1( A_hat_i e^{j Phi_i} ),

the low-frequency amplitude (colour, brightness, smooth backgrounds: the style) of every image becomes the
reference's while its phase (edges, where things are: the content) stays. Each view-batch draws its own reference,
so the two views of an image get different styles, and the positives must agree despite style.

:class:`StyledViews` wraps any view recipe, so BSS plugs into any method that calls its views on a batch (SimCLR
here). :class:`DomainNegativesSimCLR` is the oracle with domain labels: negatives from the anchor's domain only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..views import Views, _check
from .simclr import SimCLR, info_nce


def low_frequency_mask(height: int, width: int, ratio: float, device=None) -> torch.Tensor:
    """M: 1 on the window centred on the zero frequency (after fftshift), of half-width round(ratio * side / 2)
    (at least the zero frequency itself, the mean colour). The window is symmetric, so a real image stays real."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    mask = torch.zeros(height, width, device=device)
    bh, bw = round(ratio * height / 2), round(ratio * width / 2)
    ch, cw = height // 2, width // 2
    mask[max(ch - bh, 0):ch + bh + 1, max(cw - bw, 0):cw + bw + 1] = 1.0
    return mask


def swap_style(x: torch.Tensor, reference: torch.Tensor, ratio: float = 0.25) -> torch.Tensor:
    """Every image of ``x`` (N, 3, H, W) with the low-frequency amplitude of ``reference`` (3, H, W) and its own
    phase, per colour channel (the equation above). Values are clipped to [0, 1]."""
    _check(x)
    if reference.shape != x.shape[1:]:
        raise ValueError(f"reference must be one image of shape {tuple(x.shape[1:])}, got {tuple(reference.shape)}")
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    amplitude, phase = spectrum.abs(), spectrum.angle()
    reference_amplitude = torch.fft.fftshift(torch.fft.fft2(reference), dim=(-2, -1)).abs()
    m = low_frequency_mask(*x.shape[-2:], ratio, x.device)
    amplitude = (1 - m) * amplitude + m * reference_amplitude
    mixed = torch.fft.ifftshift(torch.polar(amplitude, phase), dim=(-2, -1))
    return torch.fft.ifft2(mixed).real.clamp(0, 1)


def batch_style_standardization(x: torch.Tensor, ratio: float = 0.25, index: int | None = None) -> torch.Tensor:
    """BSS on one view-batch: a random image of the batch (or ``index``) is the style reference of all."""
    _check(x)
    index = int(torch.randint(len(x), (1,))) if index is None else index
    return swap_style(x, x[index], ratio)


@dataclass(frozen=True)
class StyledViews:
    """A view recipe followed by BSS: ``StyledViews(Views(...), ratio=0.25)(batch)`` is one styled view-batch."""

    views: Views = Views()
    ratio: float = 0.25

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return batch_style_standardization(self.views(x), self.ratio)


class DomainNegativesSimCLR(SimCLR):
    """The oracle: SimCLR whose negatives are only the views of images from the anchor's domain (the batch's
    labels must be the domain indices). It uses what BSS does without: domain labels."""

    def loss(self, batch):
        images, domains = batch
        z_a = self.projector(self.backbone(self.views(images)))
        z_b = self.projector(self.backbone(self.views(images)))
        return info_nce(z_a, z_b, self.temperature, self.top_k, groups=domains), {}
