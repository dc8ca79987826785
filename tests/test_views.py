import pytest
import torch

from ssl_tutorial import views


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.rand(6, 3, 16, 16)


def test_views_keep_shape_and_range(x):
    v = views.Views(blur=0.5)(x)
    assert v.shape == x.shape and 0 <= v.min() and v.max() <= 1
    assert views.Views(size=8)(x).shape == (6, 3, 8, 8)
    crops = views.multi_crop(x, n_large=2, n_small=3)
    assert [c.shape[-1] for c in crops] == [16, 16, 8, 8, 8]


def test_each_image_gets_its_own_parameters(x):
    same = x[:1].expand(8, -1, -1, -1).contiguous()
    v = views.Views()(same)
    assert not torch.allclose(v[0], v[1]) and not torch.allclose(v[1], v[2])


def test_seeded_views_repeat(x):
    torch.manual_seed(3)
    a = views.Views()(x)
    torch.manual_seed(3)
    assert torch.equal(a, views.Views()(x))


def test_full_crop_without_flip_is_identity(x):
    y = views.random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)
    assert torch.allclose(y, x, atol=1e-5)
    flipped = views.random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0)
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)


def test_photometric_identities(x):
    assert torch.equal(views.color_jitter(x, p=0.0), x)
    assert torch.allclose(views.color_jitter(x, 0, 0, 0, 0, p=1.0), x, atol=1e-5)
    g = views.random_grayscale(x, p=1.0)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    assert torch.allclose(views.gaussian_blur(x, sigma=(1e-4, 1e-4), p=1.0), x, atol=1e-5)
    blurred = views.gaussian_blur(x, sigma=(2.0, 2.0), p=1.0)
    assert blurred.std() < x.std()


def test_rotations(x):
    r, labels = views.all_rotations(x)
    assert r.shape == (24, 3, 16, 16) and labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6
    assert torch.equal(r[6:12], torch.rot90(x, 1, dims=(2, 3)))
    k = torch.tensor([0, 1, 2, 3, 1, 0])
    per_image = views.rotate(x, k)
    for i in range(6):
        assert torch.equal(per_image[i], torch.rot90(x[i], int(k[i]), dims=(1, 2)))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        views.Views()(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="RGB"):
        views.all_rotations(torch.rand(2, 1, 8, 8))


def test_hue_override_reaches_any_hue(x):
    torch.manual_seed(0)
    red = torch.tensor([0.6, 0.2, 0.2]).view(1, 3, 1, 1).expand(500, 3, 4, 4).contiguous()
    turned = views.Views(crop_scale=(1.0, 1.0), flip=0.0, jitter=1.0, jitter_strength=0.0, hue=0.5, gray=0.0)(red)
    default = views.Views(crop_scale=(1.0, 1.0), flip=0.0, jitter=1.0, jitter_strength=0.5, gray=0.0)(red)
    bluer = (turned[:, 2] > turned[:, 0]).float().mean()
    assert bluer > 0.3 and (default[:, 2] > default[:, 0]).float().mean() == 0, "a half-turn range reaches blue"
