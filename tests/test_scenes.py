import numpy as np
import pandas as pd
import pytest
import torch

from ssl_tutorial.data.scenes import SCENE_COLUMNS, Scenes, crop_objects
from ssl_tutorial.data.shapes import SHAPES, ShapesWorld

pytestmark = pytest.mark.usefixtures("one_thread")
pytest.importorskip("torchvision.ops")  # crop_objects needs it; imported here, at collection, not inside a test

WORLD = ShapesWorld(size=24, scale=(0.22, 0.38))


def _single_object_layout(f: pd.DataFrame):
    """The layout of scenes of one object each, with exactly the factors of the rows of ``f``."""
    scenes = f[list(SCENE_COLUMNS)].assign(n_objects=1)
    objects = f.assign(scene=range(len(f)), depth=0)
    return scenes, objects


def test_same_seed_same_scenes_other_seed_differs():
    s = Scenes(WORLD)
    a, b, c = s.sample(16, seed=3), s.sample(16, seed=3), s.sample(16, seed=4)
    assert len(a) == 16 and a.images.shape == (16, 3, 24, 24) and a.images.dtype == torch.float32
    assert a.instance.shape == a.semantic.shape == (16, 24, 24)
    assert torch.equal(a.images, b.images) and torch.equal(a.instance, b.instance)
    assert torch.equal(a.semantic, b.semantic)
    assert a.scenes.equals(b.scenes) and a.objects.equals(b.objects)
    assert not torch.equal(a.images, c.images)
    assert not a.scenes.equals(c.scenes) and not a.objects.equals(c.objects)


def test_objects_per_scene_depths_and_shared_background():
    s = Scenes(WORLD, objects=(2, 4))
    scenes, objects = s.sample_layout(24, seed=0)
    assert len(scenes) == 24 and scenes["n_objects"].between(2, 4).all()
    assert set(scenes["n_objects"]) == {2, 3, 4}
    counts = objects.groupby("scene").size()
    assert counts.index.tolist() == list(range(24))
    assert (counts.to_numpy() == scenes["n_objects"].to_numpy()).all()
    for k, (_, group) in zip(scenes["n_objects"], objects.groupby("scene")):
        assert group["depth"].tolist() == list(range(k))
    for column in ("domain", "noise_seed", "light_angle", "light_intensity"):
        own = scenes[column].to_numpy()[objects["scene"]]
        assert (objects[column].to_numpy() == own).all(), column
        assert (objects.groupby("scene")[column].nunique() == 1).all(), column
    # the rendered batch carries the same tables
    batch = s.render(scenes, objects)
    assert batch.scenes.equals(scenes.reset_index(drop=True))
    assert batch.objects[objects.columns].equals(objects)


def test_one_object_scene_is_the_single_object_picture():
    f = WORLD.sample_factors(16, seed=7)
    batch = Scenes(WORLD).render(*_single_object_layout(f))
    assert torch.equal(batch.images, WORLD.render(f))
    assert (batch.instance.amax((1, 2)) == 0).all()  # every object is there, alone and fully visible
    assert (batch.objects["visible"] == 1).all()
    assert (batch.semantic.amax((1, 2)).numpy() == f["shape"].to_numpy()).all()


def _check_masks(batch):
    obj = batch.objects
    n, S = batch.instance.shape[0], batch.instance.shape[-1]
    instance, semantic = batch.instance.numpy(), batch.semantic.numpy()
    k = batch.scenes["n_objects"].to_numpy()
    assert (instance >= -1).all() and (instance < k[:, None, None]).all()
    # the class of the object that each pixel's depth names, -1 on background
    shape_of = np.full((n, 9), -1)
    shape_of[obj["scene"], obj["depth"]] = obj["shape"]
    expected = np.take_along_axis(shape_of, instance.reshape(n, -1), axis=1).reshape(n, S, S)
    assert (semantic == expected).all()
    assert ((semantic == -1) == (instance == -1)).all()
    assert set(np.unique(semantic[semantic >= 0])) <= set(range(len(SHAPES)))
    # visible boxes: the tight box of each object's pixels in `instance`, -1s when hidden
    assert obj["visible"].between(0, 1).all()
    for row in obj.itertuples():
        ys, xs = np.nonzero(instance[row.scene] == row.depth)
        box = (row.x0, row.y0, row.x1, row.y1)
        if len(xs):
            assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert row.visible > 0
        else:
            assert box == (-1, -1, -1, -1) and row.visible == 0


@pytest.mark.parametrize("gap", [0.0, 0.8])
def test_masks_and_boxes(gap):
    batch = Scenes(WORLD, objects=(3, 5), gap=gap).sample(32, seed=1)
    _check_masks(batch)
    assert (batch.instance >= 0).any() and (batch.instance == -1).any()


def test_fully_hidden_object():
    f = WORLD.sample_factors(2, seed=0).assign(x=0.0, y=0.0, rotation=0.0, scene=0, depth=[0, 1],
                                                shape=[SHAPES.index("circle"), SHAPES.index("square")],
                                                scale=[0.22, 0.38])
    scenes = f[list(SCENE_COLUMNS)].iloc[:1].assign(n_objects=2)
    for column in SCENE_COLUMNS:
        f[column] = scenes[column].iloc[0]
    batch = Scenes(WORLD, gap=0).render(scenes, f)
    back, front = batch.objects.iloc[0], batch.objects.iloc[1]
    assert back["visible"] == 0 and (back[["x0", "y0", "x1", "y1"]] == -1).all()
    assert front["visible"] == 1 and front["x0"] >= 0
    assert set(np.unique(batch.instance.numpy())) == {-1, 1}
    _check_masks(batch)


def test_front_object_occludes_the_back_one():
    s = Scenes(WORLD, objects=(2, 2), gap=0)
    scenes, objects = s.sample_layout(16, seed=2)
    batch = s.render(scenes, objects.assign(x=0.0, y=0.0))
    o = batch.objects
    assert (o.loc[o["depth"] == 1, "visible"] == 1).all()
    assert (o.loc[o["depth"] == 0, "visible"] < 1).all()
    _check_masks(batch)


def test_placement_keeps_gap_and_stays_inside():
    s = Scenes(ShapesWorld(size=24, scale=(0.15, 0.25)), objects=(2, 2))
    _, objects = s.sample_layout(32, seed=0)
    back, front = objects[objects["depth"] == 0], objects[objects["depth"] == 1]
    assert (back["scene"].to_numpy() == front["scene"].to_numpy()).all()
    distance = np.hypot(back["x"].to_numpy() - front["x"].to_numpy(), back["y"].to_numpy() - front["y"].to_numpy())
    required = s.gap * (back["scale"].to_numpy() + front["scale"].to_numpy())
    assert (distance >= required).mean() >= 0.9  # best effort: the best of a few tries when none fits
    # crowded scenes still get centres inside the canvas
    _, crowded = Scenes(WORLD, objects=(8, 8)).sample_layout(8, seed=0)
    for objs in (objects, crowded):
        assert objs["x"].between(-1, 1).all() and objs["y"].between(-1, 1).all()
        assert (objs["x"].abs() + objs["scale"] <= 1).all() and (objs["y"].abs() + objs["scale"] <= 1).all()


def test_crop_objects():
    batch = Scenes(WORLD, objects=(2, 4), gap=0.3).sample(16, seed=5)
    crops = crop_objects(batch, size=12)
    m = int((batch.objects["x0"] >= 0).sum())
    assert m == int((batch.objects["visible"] > 0).sum())
    assert crops.shape == (m, 3, 12, 12)
    assert crops.min() >= 0 and crops.max() <= 1


def test_crop_of_a_centred_object_shows_the_object():
    plain = ShapesWorld(size=24, scale=(0.3, 0.38), shapes=("circle", "square", "hexagon", "cross"), domains=("cartoon",),
                        textures=("solid",), clutter=(0, 0), nuisance_strength=0.0)  # filled at the centre
    f = plain.sample_factors(4, seed=1).assign(x=0.0, y=0.0)
    batch = Scenes(plain).render(*_single_object_layout(f))
    crops = crop_objects(batch, size=16)
    assert crops.shape == (4, 3, 16, 16)
    assert (crops.flatten(1).var(1) > 1e-3).all()  # not all background
    # its middle is the object's colour, not the background's
    middle, background = crops[:, :, 6:10, 6:10].mean((2, 3)), batch.images[:, :, 0, 0]
    assert ((middle - background).abs().amax(1) > 0.1).all()


@pytest.mark.parametrize("objects", [(0, 3), (3, 2), (1, 9)])
def test_bad_objects_range(objects):
    with pytest.raises(ValueError, match="objects"):
        Scenes(WORLD, objects=objects)


def test_bad_gap_scale_n_and_layout():
    with pytest.raises(ValueError, match="gap"):
        Scenes(WORLD, gap=-0.1)
    with pytest.raises(ValueError, match="gap"):
        Scenes(WORLD, gap=float("nan"))
    with pytest.raises(ValueError, match=r"ShapesWorld\(scale="):  # names the fix
        Scenes(ShapesWorld(size=24, scale=(0.5, 0.85)))
    s = Scenes(WORLD)
    for n in (-1, 2.5):
        with pytest.raises(ValueError, match="n must be"):
            s.sample_layout(n)
    scenes, objects = s.sample_layout(4, seed=0)
    with pytest.raises(ValueError, match=r"'noise_seed'.*'x'"):
        s.render(scenes.drop(columns="noise_seed"), objects.drop(columns="x"))
    with pytest.raises(ValueError, match="'n_objects'"):
        s.render(scenes.drop(columns="n_objects"), objects)


def test_no_scenes():
    s = Scenes(WORLD)
    scenes, objects = s.sample_layout(0)
    assert len(scenes) == 0 and len(objects) == 0
    batch = s.sample(0)
    assert len(batch) == 0 and batch.images.shape == (0, 3, 24, 24)
    assert batch.instance.shape == batch.semantic.shape == (0, 24, 24)
    assert len(batch.scenes) == 0 and len(batch.objects) == 0
    assert {"x0", "y0", "x1", "y1", "visible"} <= set(batch.objects.columns)
    assert crop_objects(batch, size=8).shape == (0, 3, 8, 8)


def test_tags_are_a_permutation_per_scene_and_drawn_only_when_asked():
    plain, tagged = Scenes(WORLD), Scenes(WORLD, tags=True)
    a, b = plain.sample(12, seed=5), tagged.sample(12, seed=5)
    for _, group in b.objects.groupby("scene"):
        assert sorted(group["tag"]) == list(range(1, len(group) + 1))
    # the same layout, masks and tables; only the pixels under the marks change
    assert a.objects.equals(b.objects) and torch.equal(a.instance, b.instance)
    changed = (a.images != b.images).any(1)
    assert changed.any() and changed.float().mean() < 0.25


def test_draw_tags_writes_the_digit_at_the_box_corner():
    from ssl_tutorial.data.scenes import DIGITS, draw_tags

    images = torch.full((1, 3, 20, 20), 0.5)
    objects = pd.DataFrame({"scene": [0], "tag": [7], "x0": [6], "y0": [8], "x1": [12], "y1": [14]})
    out = draw_tags(images, objects)
    patch = out[0, 0, 6:13, 4:9]  # the 7 x 5 square starts 2 pixels above and left of the box corner
    assert torch.equal(patch[1:6, 1:4] < 0.5, torch.tensor(DIGITS[7]))
    assert (patch[0] > 0.9).all() and torch.equal(out[0, :, :6], images[0, :, :6])
    with pytest.raises(ValueError, match="single digits"):
        draw_tags(images, objects.assign(tag=12))


def test_tags_need_room():
    with pytest.raises(ValueError, match="16 pixels"):
        Scenes(ShapesWorld(size=12, scale=(0.22, 0.38)), tags=True)


def test_background_boxes_hold_little_object_and_crops_match():
    from ssl_tutorial.data.scenes import background_boxes, background_crops

    batch = Scenes(WORLD, objects=(1, 3)).sample(40, seed=1)
    boxes = background_boxes(batch, 60, sides=(6, 10), max_object=0.1, seed=2)
    assert boxes.shape == (60, 5)
    side = boxes[:, 3] - boxes[:, 1]
    assert ((side >= 6) & (side <= 10)).all() and (side == boxes[:, 4] - boxes[:, 2]).all()
    assert (boxes[:, 1:3] >= 0).all() and (boxes[:, 3:] <= 24).all()
    for s, x0, y0, x1, y1 in boxes:
        assert (batch.instance[s, y0:y1, x0:x1] >= 0).float().mean() <= 0.1 + 1e-9
    assert np.array_equal(boxes, background_boxes(batch, 60, sides=(6, 10), max_object=0.1, seed=2))
    crops = background_crops(batch, 60, size=8, sides=(6, 10), seed=2)
    assert crops.shape == (60, 3, 8, 8)
    # with max_object=0 no object pixel at all; fewer boxes may come back
    for s, x0, y0, x1, y1 in background_boxes(batch, 30, sides=(6, 10), max_object=0.0, seed=3):
        assert (batch.instance[s, y0:y1, x0:x1] < 0).all()


@pytest.mark.parametrize("kwargs", [dict(max_object=1.5), dict(sides=(0, 4)), dict(sides=(8, 4)),
                                    dict(sides=(8, 40))])
def test_background_boxes_bad_arguments(kwargs):
    from ssl_tutorial.data.scenes import background_boxes

    with pytest.raises(ValueError):
        background_boxes(Scenes(WORLD).sample(2, seed=0), 4, **kwargs)
