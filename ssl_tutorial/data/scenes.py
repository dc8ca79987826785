"""Scenes: several objects of the shapes world on one canvas, with masks, boxes and a depth order.

The multi-object variant of the world (curriculum section 4.3, ``scenes``), built for the chapters that need more
than one object per picture: proposal classification in the open world (chapter 4), grounding and captions with
spatial relations (chapter 6), segmentation and detection (chapter 9). Chapter 4's ``06_hyp_ow`` uses it first:
``crop_objects`` cuts out the objects and ``background_crops`` boxes of background, a detector's proposals.

A scene is a background (one domain, its noise, clutter and ground band, exactly as in the single-object world)
with 1-5 objects painted back to front. Every object keeps the world's factors (shape, colour, texture, scale,
rotation, position), and the scene shares one light. What the renderer knows comes back with the picture:

* ``instance`` (n, S, S): at each pixel, the depth index of the front-most object whose silhouette covers it (the
  filled shape, also for outline textures and sketches), -1 on background;
* ``semantic`` (n, S, S): the class (shape index) of that object, -1 on background;
* per object (a row of ``objects``): its scene, depth (0 = back), the visible box in pixels (x0, y0, x1, y1,
  end-exclusive), and the visible fraction of its own area (occlusion).

Rendering is batched over scenes: one pass per depth layer, each pass a call of the single-object renderer's
painter on the scenes that have an object at that depth. A scene of one object with the same factors renders the
same picture as the single-object world.

With ``tags=True``, every visible object also gets a numeric mark at the top-left corner of its box, a dark
digit on a light square (Set-of-Mark prompting, chapter 6). The numbers 1..k are a random permutation within each
scene (the ``tag`` column), so a mark tells nothing about depth or position. Marks are drawn over the picture and
are not part of the masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .shapes import ShapesWorld

# a 3 x 5 pixel font of the digits 0-9, rows top to bottom
DIGITS = np.array([[int(c) for c in row] for glyph in (
    "111 101 101 101 111", "010 110 010 010 111", "111 001 111 100 111", "111 001 111 001 111",
    "101 101 111 001 001", "111 100 111 001 111", "111 100 111 101 111", "111 001 010 010 010",
    "111 101 111 101 111", "111 101 111 001 111") for row in glyph.split()], dtype=bool).reshape(10, 5, 3)

SCENE_COLUMNS = ("domain", "domain_name", "noise_seed", "n_clutter", "ground", "light_angle", "light_intensity")


def _default_world() -> ShapesWorld:
    return ShapesWorld(size=32, scale=(0.22, 0.38))


@dataclass(frozen=True)
class SceneBatch:
    """Rendered scenes: ``images`` (n, 3, S, S) in [0, 1], ``instance`` and ``semantic`` maps (n, S, S), the
    scene table (one row per scene) and the object table (one row per object, with ``scene`` and ``depth``)."""

    images: torch.Tensor
    instance: torch.Tensor
    semantic: torch.Tensor
    scenes: pd.DataFrame
    objects: pd.DataFrame

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class Scenes:
    """A generator of multi-object scenes over ``world`` (its size, factor ranges and object scale).

    ``objects`` is the range of the number of objects per scene; ``gap`` is how far apart two object centres are
    kept, in units of the sum of their radii (1: just touching; smaller values allow overlap and occlusion).
    """

    world: ShapesWorld = field(default_factory=_default_world)
    objects: tuple[int, int] = (1, 5)
    gap: float = 0.8
    tags: bool = False

    def __post_init__(self):
        low, high = self.objects
        if not 1 <= low <= high <= 8:
            raise ValueError(f"objects must be a range 1 <= low <= high <= 8, got {self.objects}")
        if self.tags and self.world.size < 16:
            raise ValueError(f"numeric tags need canvases of at least 16 pixels, got {self.world.size}")
        if not self.gap >= 0:
            raise ValueError(f"gap must be >= 0, got {self.gap}")
        if self.world.scale[1] > 0.6:
            raise ValueError(f"objects of scale up to {self.world.scale[1]} leave no room for a second one; "
                             "use a world with scale <= 0.6, e.g. ShapesWorld(scale=(0.22, 0.38))")

    # -- layout ----------------------------------------------------------------------------
    def sample_layout(self, n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The scene table (n rows) and the object table of ``n`` scenes; the same seed gives the same tables."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = np.random.default_rng(seed)
        counts = rng.integers(self.objects[0], self.objects[1] + 1, n)
        scene_factors = self.world.sample_factors(n, seed=int(rng.integers(2**31)))
        scenes = scene_factors[list(SCENE_COLUMNS)].assign(n_objects=counts)
        objects = self.world.sample_factors(int(counts.sum()), seed=int(rng.integers(2**31)))
        objects.insert(0, "scene", np.repeat(np.arange(n), counts))
        objects.insert(1, "depth", np.concatenate([np.arange(k) for k in counts]) if n else np.zeros(0, int))
        for column in SCENE_COLUMNS:  # one background and one light per scene
            objects[column] = scenes[column].to_numpy()[objects["scene"]]
        x, y = self._place(objects, rng)
        objects["x"], objects["y"] = x, y
        objects["tag"] = np.concatenate([rng.permutation(k) + 1 for k in counts]) if n else np.zeros(0, int)
        return scenes, objects.reset_index(drop=True)

    def _place(self, objects: pd.DataFrame, rng: np.random.Generator, tries: int = 24):
        """Centres inside the canvas, kept ``gap`` x (sum of radii) apart where possible: for each depth, the best
        of ``tries`` candidates (the one furthest, relative to the gap, from the objects already placed)."""
        radius = objects["scale"].to_numpy()
        room = np.maximum(1 - radius - 0.05, 0)
        x, y = np.zeros(len(objects)), np.zeros(len(objects))
        scene, depth = objects["scene"].to_numpy(), objects["depth"].to_numpy()
        for d in range(int(depth.max()) + 1 if len(depth) else 0):
            rows = np.flatnonzero(depth == d)
            cand_x = rng.uniform(-1, 1, (len(rows), tries)) * room[rows, None]
            cand_y = rng.uniform(-1, 1, (len(rows), tries)) * room[rows, None]
            worst = np.full((len(rows), tries), np.inf)  # smallest distance / required distance to a placed one
            for e in range(d):
                placed = np.flatnonzero(depth == e)
                lookup = dict(zip(scene[placed], placed))
                other = np.array([lookup[s] for s in scene[rows]])
                required = np.maximum(self.gap * (radius[rows] + radius[other]), 1e-9)[:, None]
                distance = np.hypot(cand_x - x[other, None], cand_y - y[other, None])
                worst = np.minimum(worst, distance / required)
            best = np.argmax(np.minimum(worst, 1.0) - 1e-3 * np.arange(tries), axis=1)  # first one that fits
            x[rows], y[rows] = cand_x[np.arange(len(rows)), best], cand_y[np.arange(len(rows)), best]
        return x, y

    # -- pictures --------------------------------------------------------------------------
    def render(self, scenes: pd.DataFrame, objects: pd.DataFrame, device: str | torch.device = "cpu") -> SceneBatch:
        """Draw the scenes of a layout (:meth:`sample_layout`), with their masks and visible boxes."""
        missing = [c for c in (*SCENE_COLUMNS, "n_objects") if c not in scenes] + \
                  [c for c in ("scene", "depth", "shape", "x", "y", "scale") if c not in objects]
        if missing:
            raise ValueError(f"layout lacks columns {missing}; make it with Scenes.sample_layout()")
        device = torch.device(device)
        world, n, S = self.world, len(scenes), self.world.size
        canvas, grid = world._canvas(scenes, device)
        scene, depth = objects["scene"].to_numpy(), objects["depth"].to_numpy()
        shape = torch.tensor(objects["shape"].to_numpy(), device=device)
        covered = torch.zeros(len(objects), S, S, dtype=torch.bool, device=device)
        instance = torch.full((n, S, S), -1, dtype=torch.long, device=device)
        semantic = torch.full((n, S, S), -1, dtype=torch.long, device=device)
        for d in range(int(depth.max()) + 1 if len(objects) else 0):  # back to front: the front-most wins
            rows = torch.tensor(np.flatnonzero(depth == d), device=device)
            index = torch.tensor(scene[rows.cpu().numpy()], device=device)
            painted, alpha = world._paint(canvas[index], objects.iloc[rows.cpu().numpy()], grid, device)
            canvas[index] = painted
            covered[rows] = mask = alpha > 0.5
            instance[index] = torch.where(mask, d, instance[index])
            semantic[index] = torch.where(mask, shape[rows].view(-1, 1, 1), semantic[index])
        images = world._finish(canvas, scenes, device)

        visible = instance[torch.tensor(scene, device=device)] == torch.tensor(depth, device=device).view(-1, 1, 1)
        objects = objects.copy()
        objects[["x0", "y0", "x1", "y1"]] = _boxes(visible).cpu().numpy()
        area = covered.flatten(1).sum(1).clamp_min(1)
        objects["visible"] = (visible.flatten(1).sum(1) / area).cpu().numpy()
        if self.tags:
            if "tag" not in objects:
                raise ValueError("tags=True needs the layout's 'tag' column; make it with Scenes.sample_layout()")
            images = draw_tags(images, objects)
        return SceneBatch(images, instance, semantic, scenes.reset_index(drop=True), objects)

    def sample(self, n: int, seed: int = 0, device: str | torch.device = "cpu") -> SceneBatch:
        """``n`` rendered scenes (:meth:`sample_layout` then :meth:`render`)."""
        return self.render(*self.sample_layout(n, seed), device=device)


def _boxes(masks: torch.Tensor) -> torch.Tensor:
    """The box (x0, y0, x1, y1), in pixels and end-exclusive, of each mask (m, S, S); -1s for an empty mask."""
    rows, cols = masks.any(2), masks.any(1)  # (m, S): which rows / columns have a pixel
    S = masks.shape[-1]
    ar = torch.arange(S, device=masks.device)

    def span(hit):
        first = torch.where(hit, ar, S).min(1).values
        last = torch.where(hit, ar, -1).max(1).values + 1
        return first, last

    y0, y1 = span(rows)
    x0, x1 = span(cols)
    box = torch.stack([x0, y0, x1, y1], 1)
    return torch.where(masks.flatten(1).any(1, keepdim=True), box, torch.full_like(box, -1))


def draw_tags(images: torch.Tensor, objects: pd.DataFrame) -> torch.Tensor:
    """A copy of ``images`` with each visible object's ``tag`` (1-9) drawn at the top-left corner of its box: a
    dark 3 x 5 digit on a light 5 x 7 square, moved inside the canvas where the corner is too close to an edge."""
    shown = objects[(objects["x0"] >= 0)]
    if (shown["tag"] > 9).any() or (shown["tag"] < 0).any():
        raise ValueError("tags are single digits 0-9")
    out = images.clone()
    if len(shown) == 0:
        return out
    S = images.shape[-1]
    device = images.device
    top = torch.tensor(np.clip(shown["y0"].to_numpy() - 2, 0, S - 7), device=device)
    left = torch.tensor(np.clip(shown["x0"].to_numpy() - 2, 0, S - 5), device=device)
    patch = torch.zeros(len(shown), 7, 5, dtype=torch.bool, device=device)  # True: a dark pixel of the digit
    patch[:, 1:6, 1:4] = torch.tensor(DIGITS[shown["tag"].to_numpy()], device=device)
    dy, dx = torch.meshgrid(torch.arange(7, device=device), torch.arange(5, device=device), indexing="ij")
    scene = torch.tensor(shown["scene"].to_numpy(), device=device).view(-1, 1, 1).expand(-1, 7, 5)
    rows, cols = top.view(-1, 1, 1) + dy, left.view(-1, 1, 1) + dx
    value = torch.where(patch, 0.05, 0.97).to(images.dtype)  # (m, 7, 5)
    for channel in range(images.shape[1]):
        out[scene, channel, rows, cols] = value
    return out


def crop_objects(batch: SceneBatch, size: int = 16, margin: float = 0.1) -> torch.Tensor:
    """Each visible object's box (grown by ``margin`` of its side), cut out of its scene and resized to
    ``size`` x ``size``: the "proposals" of a detector whose boxes are exact (torchvision's ``roi_align``)."""
    from torchvision.ops import roi_align

    objects = batch.objects[batch.objects["x0"] >= 0]
    boxes = torch.tensor(objects[["x0", "y0", "x1", "y1"]].to_numpy(dtype=np.float32))
    grow = margin * (boxes[:, 2:] - boxes[:, :2])
    boxes = torch.cat([boxes[:, :2] - grow, boxes[:, 2:] + grow], 1)
    rois = torch.cat([torch.tensor(objects["scene"].to_numpy(), dtype=torch.float32)[:, None], boxes], 1)
    return roi_align(batch.images, rois.to(batch.images), output_size=size, aligned=True)


def background_boxes(batch: SceneBatch, n: int, sides: tuple[int, int] = (8, 13), max_object: float = 0.1,
                     seed: int = 0) -> np.ndarray:
    """Up to ``n`` square boxes of background in random scenes of ``batch``: rows (scene, x0, y0, x1, y1), end
    exclusive. A box's side is drawn from ``sides`` (inclusive); a box is kept when at most ``max_object`` of its
    pixels belong to an object (counted on the instance masks through an integral image). Twice ``n`` boxes are
    drawn, so fewer than ``n`` come back only from crowded scenes."""
    if not 0 <= max_object <= 1:
        raise ValueError(f"max_object is a fraction of the box's pixels, in [0, 1], got {max_object}")
    canvas = batch.images.shape[-1]
    if not 1 <= sides[0] <= sides[1] <= canvas:
        raise ValueError(f"sides must be (low, high) with 1 <= low <= high <= {canvas} (the canvas), got {sides}")
    rng = np.random.default_rng(seed)
    m = 2 * n
    side = rng.integers(sides[0], sides[1] + 1, m)
    x0, y0 = rng.integers(0, canvas - side + 1), rng.integers(0, canvas - side + 1)
    scene = rng.integers(0, len(batch.images), m)
    covered = torch.nn.functional.pad((batch.instance >= 0).double().cumsum(1).cumsum(2), (1, 0, 1, 0))
    s, x, y, h = (torch.as_tensor(v) for v in (scene, x0, y0, side))
    area = covered[s, y + h, x + h] - covered[s, y, x + h] - covered[s, y + h, x] + covered[s, y, x]
    keep = (area / h.double() ** 2 <= max_object + 1e-9).numpy()
    return np.stack([scene, x0, y0, x0 + side, y0 + side], 1)[keep][:n]


def background_crops(batch: SceneBatch, n: int, size: int = 16, sides: tuple[int, int] = (8, 13),
                     max_object: float = 0.1, seed: int = 0) -> torch.Tensor:
    """The ``background_boxes`` cut out of their scenes and resized to ``size`` x ``size``: the "proposals" that
    hold no object."""
    from torchvision.ops import roi_align

    boxes = torch.tensor(background_boxes(batch, n, sides, max_object, seed), dtype=torch.float32)
    return roi_align(batch.images, boxes.reshape(-1, 5).to(batch.images), output_size=size, aligned=True)


def distinct_pairs(scenes: Scenes, n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The layout of ``n`` scenes of exactly two objects that differ in shape and in colour, so that a caption
    naming both binds each colour to one shape (FILIP's compositional retrieval, chapter 6). Scenes are drawn from
    ``Scenes(objects=(2, 2))`` over ``scenes.world`` and the others dropped, until ``n`` are kept."""
    pairs = Scenes(scenes.world, objects=(2, 2), gap=scenes.gap, tags=scenes.tags)
    if len(scenes.world.shapes) < 2 or len(scenes.world.colours) < 2:
        raise ValueError("two objects that differ in shape and colour need a world with >= 2 shapes and colours")
    if n == 0:
        return pairs.sample_layout(0)
    kept_scenes, kept_objects, found, draw = [], [], 0, 0
    while found < n:
        table, objects = pairs.sample_layout(max(2 * (n - found), 16),
                                            seed=int(np.random.default_rng([seed, draw]).integers(2**31)))
        a, b = objects.iloc[0::2].reset_index(drop=True), objects.iloc[1::2].reset_index(drop=True)
        keep = np.flatnonzero((a["shape"] != b["shape"]).to_numpy() & (a["colour"] != b["colour"]).to_numpy())
        keep = keep[:n - found]
        kept_scenes.append(table.iloc[keep])
        chosen = objects[objects["scene"].isin(keep)]
        kept_objects.append(chosen.assign(scene=found + np.searchsorted(keep, chosen["scene"].to_numpy())))
        found, draw = found + len(keep), draw + 1
    return pd.concat(kept_scenes, ignore_index=True), pd.concat(kept_objects, ignore_index=True)


COLOUR_COLUMNS = ("colour", "colour_name", "hue", "saturation", "value")


def swap_colours(objects: pd.DataFrame) -> pd.DataFrame:
    """The object table of two-object scenes (``distinct_pairs``) with the two objects' colours exchanged in every
    scene: the same shapes at the same places, each wearing the other's colour. Render it for the "twin" that a
    bag of words cannot tell from the original. The rows come back in (scene, depth) order, the order of
    ``sample_layout`` and ``distinct_pairs``."""
    counts = objects.groupby("scene").size()
    if len(counts) and not (counts == 2).all():
        raise ValueError("swap_colours needs scenes of exactly two objects (make them with distinct_pairs)")
    out = objects.sort_values(["scene", "depth"]).reset_index(drop=True)
    order = np.arange(len(out)).reshape(-1, 2)[:, ::-1].ravel()  # each object takes its partner's colour
    for column in COLOUR_COLUMNS:
        out[column] = out[column].to_numpy()[order]
    return out
