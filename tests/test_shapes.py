import numpy as np
import pytest
import torch

from ssl_tutorial.data import load_dataset
from ssl_tutorial.data.shapes import DOMAINS, SHAPES, TEXTURES, ShapesWorld


@pytest.mark.parametrize("size", [16, 32])
def test_images_and_factors(size):
    d = ShapesWorld(size=size).sample(200, seed=1)
    assert d.images.shape == (200, 3, size, size) and d.images.dtype == torch.float32
    assert 0 <= d.images.min() and d.images.max() <= 1
    assert len(d.factors) == 200 and d.labels.tolist() == d.factors["shape"].tolist()
    assert d.class_names == list(SHAPES) and len(SHAPES) == 16


def test_deterministic_from_seed():
    w = ShapesWorld(size=16)
    a, b, c = w.sample(64, seed=5), w.sample(64, seed=5), w.sample(64, seed=6)
    assert torch.equal(a.images, b.images) and a.factors.equals(b.factors)
    assert not torch.equal(a.images, c.images)


def test_factor_ranges():
    f = ShapesWorld(size=32, jitter=25).sample_factors(2000, seed=0)
    assert f["rotation"].abs().max() <= 25
    assert f["scale"].between(0.5, 0.85).all()
    assert (f["x"].abs() + f["scale"] <= 1).all() and (f["y"].abs() + f["scale"] <= 1).all()
    assert set(f["shape"]) == set(range(16)) and set(f["domain"]) == set(range(len(DOMAINS)))
    assert set(f["texture"]) == set(range(len(TEXTURES)))
    assert (f["superclass"] == f["shape"] // 4).all()
    assert f["light_angle"].between(70, 110).all() and not f["ground"].any()
    u = ShapesWorld(size=32, rotation="uniform").sample_factors(2000, seed=0)
    assert u["rotation"].max() > 300 and u["light_angle"].max() > 300, "uniform: no canonical 'up' left"


def test_render_is_a_function_of_the_table():
    w = ShapesWorld(size=16)
    f = w.sample_factors(40, seed=2)
    full = w.render(f)
    assert torch.allclose(w.render(f.iloc[10:20]), full[10:20], atol=1e-6)
    moved = f.iloc[:1].copy()
    moved["rotation"] += 90
    assert not torch.allclose(w.render(moved), full[:1])


def test_every_shape_is_visible():
    """Each class draws a non-empty object that differs from the background."""
    w = ShapesWorld(size=32, textures=("solid",), domains=("cartoon",), clutter=(0, 0))
    f = w.sample_factors(len(SHAPES), seed=0)
    f["shape"] = np.arange(len(SHAPES))
    img = w.render(f)
    background = img[:, :, 0, 0].view(-1, 3, 1, 1)
    changed = ((img - background).abs().sum(1) > 0.1).float().mean((1, 2))
    assert (changed > 0.05).all(), changed


def test_options_and_errors():
    assert set(ShapesWorld(size=16, shapes=("circle", "T")).sample(50).labels.tolist()) <= {4, 15}
    with pytest.raises(ValueError, match="rotation"):
        ShapesWorld(rotation="sideways")
    with pytest.raises(ValueError, match="valid"):
        ShapesWorld(shapes=("blob",))
    with pytest.raises(ValueError, match="size"):
        ShapesWorld(size=4)
    with pytest.raises(ValueError, match="sample_factors"):
        ShapesWorld().render(ShapesWorld().sample_factors(3).drop(columns=["hue"]))


def test_load_dataset_splits_differ():
    tr = load_dataset("shapes", "train", n=32, size=16, seed=0)
    te = load_dataset("shapes", "test", n=32, size=16, seed=0)
    assert not torch.equal(tr.images, te.images)
    with pytest.raises(ValueError, match="shapes, digits"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="only apply"):
        load_dataset("digits", jitter=10)


def test_new_backgrounds_keep_the_object():
    world = ShapesWorld(size=16)
    factors = world.sample_factors(40, seed=0)
    twins = world.new_backgrounds(factors, seed=1)
    assert (twins["domain"] != factors["domain"]).all(), "another domain on every row"
    assert (twins["noise_seed"] != factors["noise_seed"]).all()
    kept = [c for c in factors if c not in ("domain", "domain_name", "noise_seed")]
    assert twins[kept].equals(factors[kept]), "every object factor is kept"
    assert twins.equals(world.new_backgrounds(factors, seed=1)), "seeded"
    one = ShapesWorld(size=16, domains=("night",))
    assert (one.new_backgrounds(one.sample_factors(10), seed=1)["domain_name"] == "night").all()
    with pytest.raises(ValueError, match="noise_seed"):
        world.new_backgrounds(factors.drop(columns="noise_seed"))


def test_objects_alone_draw_the_object_on_a_plain_background():
    world = ShapesWorld(size=16)
    factors = world.sample_factors(6, seed=3)
    alone = world.objects_alone(factors)
    assert alone.shape == (6, 3, 16, 16)
    assert torch.allclose(alone[:, :, 0, 0], torch.full((6, 3), 0.93), atol=1e-6), "a plain light corner"
    same_object = factors.assign(domain=0, noise_seed=factors["noise_seed"] + 1, n_clutter=1)
    assert torch.allclose(world.objects_alone(same_object), alone), "background and clutter do not matter"
    moved = factors.assign(rotation=factors["rotation"] + 90)
    assert not torch.allclose(world.objects_alone(moved), alone), "the object does"
