import numpy as np
import pytest
import torch

from ssl_tutorial.methods.bss import (
    DomainNegativesSimCLR,
    StyledViews,
    batch_style_standardization,
    low_frequency_mask,
    swap_style,
)
from ssl_tutorial.methods.simclr import info_nce
from ssl_tutorial.nets import ConvNet
from ssl_tutorial.views import Views


def _numpy_swap(x, ref, ratio):
    """The equation, computed directly with numpy: reference amplitude inside the window, own phase everywhere."""
    spec = np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))
    ref_amp = np.abs(np.fft.fftshift(np.fft.fft2(ref), axes=(-2, -1)))
    window = low_frequency_mask(x.shape[-2], x.shape[-1], ratio).numpy().astype(bool)
    amp = np.abs(spec)
    amp[..., window] = ref_amp[..., window]
    out = np.fft.ifft2(np.fft.ifftshift(amp * np.exp(1j * np.angle(spec)), axes=(-2, -1)))
    return np.real(out).clip(0, 1)


def test_swap_style_matches_numpy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g, dtype=torch.float64)
    ref = torch.rand(3, 16, 16, generator=g, dtype=torch.float64)
    for ratio in (0.1, 0.25, 0.5):
        np.testing.assert_allclose(swap_style(x, ref, ratio).numpy(), _numpy_swap(x.numpy(), ref.numpy(), ratio),
                                   atol=1e-12)


def test_swap_keeps_phase_and_takes_the_reference_low_frequency_amplitude():
    g = torch.Generator().manual_seed(1)
    x = 0.25 + 0.5 * torch.rand(3, 3, 16, 16, generator=g, dtype=torch.float64)  # far from the clip at 0 and 1
    ref = 0.25 + 0.5 * torch.rand(3, 16, 16, generator=g, dtype=torch.float64)
    y = swap_style(x, ref, 0.25)
    spec_x, spec_y = (torch.fft.fftshift(torch.fft.fft2(t), dim=(-2, -1)) for t in (x, y))
    spec_r = torch.fft.fftshift(torch.fft.fft2(ref), dim=(-2, -1))
    window = low_frequency_mask(16, 16, 0.25).bool()
    assert ((y > 0) & (y < 1)).all()  # nothing clipped, so the spectrum of y is exactly the swapped one
    torch.testing.assert_close(spec_y.abs()[..., window], spec_r.abs().expand_as(spec_y)[..., window])
    torch.testing.assert_close(spec_y.abs()[..., ~window], spec_x.abs()[..., ~window])
    strong = spec_x.abs() > 1e-6
    torch.testing.assert_close(torch.cos(spec_y.angle() - spec_x.angle())[strong],
                               torch.ones_like(spec_x.abs())[strong])


def test_mask_is_symmetric_centred_and_validated():
    m = low_frequency_mask(16, 16, 0.25)
    assert m.sum() == 25 and m[8, 8] == 1  # half-width 2 around the zero frequency
    assert low_frequency_mask(16, 16, 0.01).sum() == 1  # only the mean colour
    flipped = torch.roll(torch.flip(m, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))  # k -> -k after fftshift
    assert torch.equal(flipped, m)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            low_frequency_mask(16, 16, bad)


def test_real_images_stay_real_and_reference_is_unchanged():
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    y = batch_style_standardization(x, 0.25, index=3)
    assert y.shape == x.shape and y.dtype == x.dtype and 0 <= y.min() and y.max() <= 1
    torch.testing.assert_close(y[3], x[3].clamp(0, 1), atol=1e-5, rtol=0)  # the reference keeps its own style


def test_one_style_per_batch_equalises_mean_colour():
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 0.3
    x[:3] += 0.6  # two "domains": bright and dark
    y = batch_style_standardization(x, 0.01, index=0)  # the window is the zero frequency: the mean colour
    means = y.mean(dim=(2, 3))
    assert (means.max(0).values - means.min(0).values).max() < 0.02


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="reference"):
        swap_style(torch.rand(2, 3, 8, 8), torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="RGB"):
        batch_style_standardization(torch.rand(2, 8, 8))


def test_styled_views_and_oracle_loss():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    views = StyledViews(Views(), ratio=0.25)
    assert views(x).shape == x.shape
    oracle = DomainNegativesSimCLR(ConvNet([8, 8]), temperature=0.5, views=Views())
    domains = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    loss, _ = oracle.loss((x, domains))
    assert torch.isfinite(loss)
    # with a single domain the oracle is plain SimCLR: same views, same loss
    torch.manual_seed(1)
    same, _ = oracle.loss((x, torch.zeros(8, dtype=torch.long)))
    torch.manual_seed(1)
    z_a = oracle.projector(oracle.backbone(oracle.views(x)))
    z_b = oracle.projector(oracle.backbone(oracle.views(x)))
    torch.testing.assert_close(same, info_nce(z_a, z_b, 0.5))


def test_info_nce_groups_keep_only_same_group_negatives():
    g = torch.Generator().manual_seed(4)
    z_a, z_b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    domains = torch.tensor([0, 1, 0, 2, 1, 0])
    z = torch.nn.functional.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = (z @ z.T / 0.5).tolist()
    d = domains.tolist() * 2
    losses = []
    for i in range(12):  # the direct sum: partner over partner + same-domain negatives
        partner = (i + 6) % 12
        denominator = sum(np.exp(sim[i][k]) for k in range(12) if k != i and d[k] == d[i])
        losses.append(-(sim[i][partner] - np.log(denominator)))
    assert info_nce(z_a, z_b, 0.5, groups=domains).item() == pytest.approx(np.mean(losses), rel=1e-5)
    assert info_nce(z_a, z_b, 0.5, groups=torch.zeros(6, dtype=torch.long)).item() == \
        pytest.approx(info_nce(z_a, z_b, 0.5).item(), rel=1e-6)
