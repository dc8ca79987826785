"""The shapes world: procedural images whose every generative factor is known.

Taught in notebooks/00_start/01_shapes_world.ipynb.

One object per image, drawn from a table of factors (curriculum section 4.1):

=============  ===============================================================
factor         values
=============  ===============================================================
shape          16 classes in 4 superclasses (angular, round, star-like, glyph)
colour         8 named hues (+ jitter), saturation, value
texture        solid, stripes, dots, checker, gradient, outline
scale          object radius as a fraction of the half-canvas (0.5-0.85)
rotation       +-25 degrees around an upright pose ("upright"), or 0-360 ("uniform",
               which also lets the light come from any direction: no "up" at all)
position       x, y inside the safe area
lighting       light direction (from above by default) and intensity:
               shading across the object and a drop shadow on the far side
ground         a ground band at the bottom of the picture (off by default: it is a global
               "up" cue that lets rotation prediction succeed without looking at the object)
domain         background style: photo, cartoon, sketch, painting, night
clutter        0-1 small distractor blobs (up to 3 as an option)
=============  ===============================================================

Rendering is a pure function of the factor table: ``render(sample_factors(n, seed))`` draws
every image with batched tensor operations (signed distance functions on a pixel grid, no
per-image Python loop), and the background noise comes from a hash of each image's
``noise_seed`` column, so re-rendering a row (for example with its rotation changed) gives
the same picture with only that factor changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

SHAPES = (
    "triangle", "square", "pentagon", "hexagon",
    "circle", "ellipse", "semicircle", "ring",
    "star4", "star5", "star6", "cross",
    "heart", "arrow", "L", "T",
)
SUPERCLASSES = ("angular", "round", "star-like", "glyph")
COLOURS = {"red": 0, "orange": 30, "yellow": 55, "green": 120,
           "cyan": 180, "blue": 225, "purple": 275, "pink": 320}
TEXTURES = ("solid", "stripes", "dots", "checker", "gradient", "outline")
DOMAINS = ("photo", "cartoon", "sketch", "painting", "night")
ROTATIONS = ("upright", "uniform")

_CHUNK = 512  # images rendered at once; bounds peak memory at large sizes


@dataclass(frozen=True)
class ShapesWorld:
    """A configurable generator of shape images and their factor table.

    Every field is a factor range; the defaults are the calibrated "upright" world used by
    chapter 1. ``rotation="uniform"`` removes the canonical orientation (and, with it, the
    signal that rotation prediction learns from).
    """

    size: int = 32
    rotation: str = "upright"
    jitter: float = 25.0  # degrees around upright, used when rotation == "upright"
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    textures: tuple[str, ...] = TEXTURES
    domains: tuple[str, ...] = DOMAINS
    scale: tuple[float, float] = (0.5, 0.85)
    clutter: tuple[int, int] = (0, 1)
    ground: float = 0.0  # probability of a ground band: a global "up" cue that lets RotNet cheat
    light_jitter: float = 20.0  # degrees around "from above"
    light_intensity: tuple[float, float] = (0.0, 0.12)  # weak: "up" should come from shape, not light
    nuisance_strength: float = 0.5  # contrast of background texture and clutter

    def __post_init__(self):
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {self.rotation!r}")
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size must be an integer >= 8 pixels, got {self.size!r}")
        for name, valid, chosen in (("shapes", SHAPES, self.shapes), ("colours", tuple(COLOURS), self.colours),
                                    ("textures", TEXTURES, self.textures), ("domains", DOMAINS, self.domains)):
            bad = [c for c in chosen if c not in valid]
            if bad or not chosen:
                raise ValueError(f"unknown {name} {bad or '(none given)'}; valid: {', '.join(valid)}")
        if not 0 < self.scale[0] <= self.scale[1] <= 0.9:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 0.9, got {self.scale}")

    def with_(self, **changes) -> ShapesWorld:
        """A copy with some factor ranges changed, e.g. ``world.with_(rotation="uniform")``."""
        return replace(self, **changes)

    # -- factors ---------------------------------------------------------------------------
    def sample_factors(self, n: int, seed: int = 0) -> pd.DataFrame:
        """Draw ``n`` rows of factors; the same seed gives the same table."""
        rng = np.random.default_rng(seed)
        shape = rng.choice([SHAPES.index(s) for s in self.shapes], n)
        colour = rng.choice([list(COLOURS).index(c) for c in self.colours], n)
        hue = (np.array(list(COLOURS.values()))[colour] + rng.uniform(-8, 8, n)) % 360
        if self.rotation == "upright":
            rotation = rng.uniform(-self.jitter, self.jitter, n)
        else:
            rotation = rng.uniform(0, 360, n)
        scale = rng.uniform(*self.scale, n)
        room = np.maximum(1 - scale - 0.05, 0)  # keep the object inside the canvas
        df = pd.DataFrame({
            "shape": shape,
            "shape_name": np.array(SHAPES)[shape],
            "superclass": shape // 4,
            "superclass_name": np.array(SUPERCLASSES)[shape // 4],
            "colour": colour,
            "colour_name": np.array(list(COLOURS))[colour],
            "hue": hue,
            "saturation": rng.uniform(0.55, 1.0, n),
            "value": rng.uniform(0.7, 1.0, n),
            "texture": rng.choice([TEXTURES.index(t) for t in self.textures], n),
            "texture_angle": rng.uniform(0, 180, n),
            "scale": scale,
            "rotation": rotation,
            "x": rng.uniform(-1, 1, n) * room,
            "y": rng.uniform(-1, 1, n) * room,  # isotropic: position must not tell where "up" is
            # no canonical orientation at all in the uniform world: the light comes from anywhere too
            "light_angle": (90 + rng.uniform(-self.light_jitter, self.light_jitter, n)) if self.rotation == "upright"
            else rng.uniform(0, 360, n),
            "light_intensity": rng.uniform(*self.light_intensity, n),
            "ground": rng.random(n) < self.ground,
            "domain": rng.choice([DOMAINS.index(d) for d in self.domains], n),
            "n_clutter": rng.integers(self.clutter[0], self.clutter[1] + 1, n),
            "noise_seed": rng.integers(0, 2**31 - 1, n),
        })
        df["texture_name"] = np.array(TEXTURES)[df["texture"]]
        df["domain_name"] = np.array(DOMAINS)[df["domain"]]
        return df

    def new_backgrounds(self, factors: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
        """The same objects on other backgrounds: each row gets another of this world's domains (if it
        has more than one) and fresh background noise and clutter; every object factor is kept. Render
        the result to get each image's "twin" (a teacher view in exercise 1 of
        notebooks/01_foundations/07_obow.ipynb)."""
        if "domain" not in factors or "noise_seed" not in factors:
            raise ValueError("factor table lacks 'domain' or 'noise_seed'; make it with ShapesWorld.sample_factors()")
        rng = np.random.default_rng(seed)
        out = factors.copy()
        own = [DOMAINS.index(d) for d in self.domains]
        position = np.array([own.index(d) if d in own else 0 for d in out["domain"]])
        shift = rng.integers(1, len(own), len(out)) if len(own) > 1 else np.zeros(len(out), dtype=int)
        out["domain"] = np.array(own)[(position + shift) % len(own)]
        out["domain_name"] = np.array(DOMAINS)[out["domain"]]
        out["noise_seed"] = rng.integers(0, 2**31 - 1, len(out))
        return out

    def objects_alone(self, factors: pd.DataFrame, device: str | torch.device = "cpu") -> torch.Tensor:
        """Each row's object alone: the same object factors, drawn on a plain light background with no
        clutter. OBoW's teacher view (notebooks/01_foundations/07_obow.ipynb): it uses the renderer's
        knowledge of which pixels are the object, which photographs only give through a segmentation model."""
        plain = replace(self, domains=("sketch",), nuisance_strength=0.0)  # a flat, light background
        return plain.render(factors.assign(domain=DOMAINS.index("sketch"), domain_name="sketch", n_clutter=0), device)

    # -- pictures --------------------------------------------------------------------------
    def render(self, factors: pd.DataFrame, device: str | torch.device = "cpu") -> torch.Tensor:
        """Draw the images of a factor table: float tensor (N, 3, size, size) in [0, 1]."""
        missing = [c for c in ("shape", "hue", "scale", "rotation", "x", "y", "noise_seed") if c not in factors]
        if missing:
            raise ValueError(f"factor table lacks columns {missing}; make it with ShapesWorld.sample_factors()")
        out = [self._render_chunk(factors.iloc[i:i + _CHUNK], torch.device(device))
               for i in range(0, len(factors), _CHUNK)]
        if not out:
            return torch.zeros(0, 3, self.size, self.size, device=device)
        return torch.cat(out)

    def sample(self, n: int, seed: int = 0, device: str | torch.device = "cpu"):
        """``n`` images with their factors, as a :class:`ssl_tutorial.data.Dataset`."""
        from . import Dataset

        factors = self.sample_factors(n, seed)
        return Dataset(images=self.render(factors, device), labels=torch.tensor(factors["shape"].to_numpy(), device=device),
                       class_names=list(SHAPES), factors=factors, name="shapes")

    def _render_chunk(self, f: pd.DataFrame, device: torch.device) -> torch.Tensor:
        bg, grid = self._canvas(f, device)
        img, _ = self._paint(bg, f, grid, device)
        return self._finish(img, f, device)

    def _grid(self, device: torch.device):
        """The pixel centres in world units (the canvas spans [-1, 1], y up) and one pixel's width."""
        S = self.size
        pw = 2.0 / S  # one pixel in world units (the canvas spans [-1, 1])
        t = (torch.arange(S, device=device, dtype=torch.float32) + 0.5) * pw - 1
        return t.view(1, 1, S), -t.view(1, S, 1), pw  # y points up

    def _canvas(self, f: pd.DataFrame, device: torch.device):
        """The background of each row (its domain, ground band and clutter): (n, 3, S, S), and the pixel grid."""
        n, S = len(f), self.size
        seeds = torch.tensor(f["noise_seed"].to_numpy(dtype=np.int64), device=device)
        strength = self.nuisance_strength
        X, Y, pw = grid = self._grid(device)

        # background by domain ------------------------------------------------------------
        domain = torch.tensor(f["domain"].to_numpy(dtype=np.int64), device=device)
        base_hue = _hash_uniform(seeds, 1) * 360
        smooth = _value_noise(seeds, 4, S, 2) * 0.6 + _value_noise(seeds, 8, S, 3) * 0.4  # (n,S,S)
        strokes = _value_noise(seeds, S // 3, S, 5)
        bg = torch.empty(n, 3, S, S, device=device)
        for d, name in enumerate(DOMAINS):
            m = domain == d
            if not m.any():
                continue
            h = base_hue[m].view(-1, 1, 1)
            k = int(m.sum())
            if name == "photo":
                c = _hsv(h, torch.full_like(h, 0.35), torch.full_like(h, 0.6))
                shade = 0.75 + strength * 0.6 * (smooth[m] - 0.5)
                img = c * shade.unsqueeze(1)
            elif name == "cartoon":
                img = _hsv(h, torch.full_like(h, 0.25), torch.full_like(h, 0.95)).expand(k, 3, S, S)
            elif name == "sketch":
                img = torch.full((k, 3, S, S), 0.93, device=device) - strength * 0.08 * (smooth[m].unsqueeze(1) - 0.5)
            elif name == "painting":
                hues = (h + 120 * strokes[m]) % 360
                img = _hsv(hues, torch.full_like(hues, 0.45), 0.55 + 0.35 * strength * (strokes[m] - 0.5).abs() * 2)
            else:  # night
                img = _hsv(h, torch.full_like(h, 0.5), torch.full_like(h, 0.22)).expand(k, 3, S, S)
                img = img + strength * 0.06 * (smooth[m].unsqueeze(1) - 0.5)
            bg[m] = img.expand(k, 3, S, S)

        # ground band: darker, textured, at the bottom ---------------------------------------
        ground = torch.tensor(f["ground"].to_numpy(dtype=bool), device=device).view(n, 1, 1)
        level = -0.62 + 0.1 * (_hash_uniform(seeds, 7).view(n, 1, 1) - 0.5)
        g_alpha = ((level - Y) / pw + 0.5).clamp(0, 1) * ground
        g_col = bg * 0.55 + 0.08 * (_value_noise(seeds, S // 2, S, 11) - 0.5).unsqueeze(1)
        bg = torch.lerp(bg, g_col, g_alpha.unsqueeze(1))

        # clutter: small blobs behind the object ----------------------------------------------
        n_clutter = torch.tensor(f["n_clutter"].to_numpy(dtype=np.int64), device=device)
        for j in range(int(n_clutter.max()) if n else 0):
            on = (n_clutter > j).view(n, 1, 1)
            cx = _hash_uniform(seeds, 20 + j).view(n, 1, 1) * 1.8 - 0.9
            cy = _hash_uniform(seeds, 30 + j).view(n, 1, 1) * 1.8 - 0.9
            r = 0.07 + 0.08 * _hash_uniform(seeds, 40 + j).view(n, 1, 1)
            a = ((r - torch.sqrt((X - cx) ** 2 + (Y - cy) ** 2)) / pw + 0.5).clamp(0, 1) * on * min(strength, 1.0)
            c = _hsv(_hash_uniform(seeds, 50 + j).view(n, 1, 1) * 360, torch.full_like(cx, 0.7), torch.full_like(cx, 0.8))
            bg = torch.lerp(bg, c.expand(n, 3, S, S), a.unsqueeze(1))
        return bg, grid

    def _paint(self, bg: torch.Tensor, f: pd.DataFrame, grid, device: torch.device):
        """Draw each row's object (with its shadow) over ``bg``: the new canvas, and the coverage (n, S, S) in
        [0, 1] of the object's silhouette (filled, even where only its outline is drawn). Rows carry the object's
        factors and the canvas's ``domain`` (which styles it)."""
        n, S = len(f), self.size
        X, Y, pw = grid
        col = {k: torch.tensor(f[k].to_numpy(dtype=np.float32), device=device).view(n, 1, 1)
               for k in ("hue", "saturation", "value", "scale", "rotation", "x", "y", "light_angle",
                         "light_intensity", "texture_angle")}
        domain = torch.tensor(f["domain"].to_numpy(dtype=np.int64), device=device)

        # the object's frame: world -> object coordinates (radius 1) ---------------------------
        s, theta = col["scale"], col["rotation"] * (math.pi / 180)
        dx, dy = X - col["x"], Y - col["y"]
        u = (torch.cos(theta) * dx + torch.sin(theta) * dy) / s
        v = (-torch.sin(theta) * dx + torch.cos(theta) * dy) / s
        shape = torch.tensor(f["shape"].to_numpy(dtype=np.int64), device=device)
        dist = torch.empty(n, S, S, device=device)
        for k in range(len(SHAPES)):
            m = shape == k
            if m.any():
                dist[m] = _SDF[SHAPES[k]](u[m], v[m])
        dist = dist * s  # back to world units
        alpha = silhouette = (0.5 - dist / pw).clamp(0, 1)

        # light: shadow on the far side, shading across the object ---------------------------
        la = col["light_angle"] * (math.pi / 180)
        lx, ly = torch.cos(la), torch.sin(la)
        off = 0.1 * s / 0.6
        du, dv = dx + lx * off, dy + ly * off  # the object moved away from the light
        su = (torch.cos(theta) * du + torch.sin(theta) * dv) / s
        sv = (-torch.sin(theta) * du + torch.cos(theta) * dv) / s
        sdist = torch.empty(n, S, S, device=device)
        for k in range(len(SHAPES)):
            m = shape == k
            if m.any():
                sdist[m] = _SDF[SHAPES[k]](su[m], sv[m])
        shadow = (0.5 - sdist * s / (2.5 * pw)).clamp(0, 1) * col["light_intensity"] * 1.1
        bg = bg * (1 - shadow.clamp(max=0.7)).unsqueeze(1)

        # texture and colour --------------------------------------------------------------------
        texture = torch.tensor(f["texture"].to_numpy(dtype=np.int64), device=device).view(n, 1, 1)
        ta = col["texture_angle"] * (math.pi / 180)
        along = torch.cos(ta) * u + torch.sin(ta) * v
        pattern = torch.ones(n, S, S, device=device)
        pattern = torch.where(texture == 1, 0.55 + 0.45 * (torch.sin(along * 7.0) * 3).clamp(0, 1), pattern)
        dots = ((torch.remainder(u * 2.2, 1) - 0.5) ** 2 + (torch.remainder(v * 2.2, 1) - 0.5) ** 2).sqrt()
        pattern = torch.where(texture == 2, 1 - 0.5 * ((0.28 - dots) * 12).clamp(0, 1), pattern)
        checker = (torch.sin(u * 4.7) * torch.sin(v * 4.7) * 6).clamp(-1, 1)
        pattern = torch.where(texture == 3, 0.75 + 0.25 * checker, pattern)
        pattern = torch.where(texture == 4, 0.6 + 0.4 * (0.5 + 0.5 * v).clamp(0, 1), pattern)
        rim = 0.16 * s  # outline width
        outline = (0.5 - (dist.abs() - rim / 2) / pw).clamp(0, 1)
        alpha = torch.where(texture == 5, outline, alpha)

        colour = _hsv(col["hue"], col["saturation"], col["value"])  # (n,3,1,1)
        light = 1 + col["light_intensity"] * 0.6 * (dx * lx + dy * ly) / s
        obj = colour * (pattern * light).unsqueeze(1)

        # domain-specific styling of the object ------------------------------------------------
        is_sketch = (domain == DOMAINS.index("sketch")).view(n, 1, 1)
        sketch_alpha = outline * 0.9
        alpha = torch.where(is_sketch, sketch_alpha, alpha)
        obj = torch.where(is_sketch.unsqueeze(1), obj * 0.35 + 0.1, obj)
        is_cartoon = (domain == DOMAINS.index("cartoon")).view(n, 1, 1, 1)
        edge = (0.5 - ((dist.abs() - 0.5 * pw) / pw)).clamp(0, 1).unsqueeze(1)
        obj = torch.where(is_cartoon, obj * (1 - edge), obj)

        return torch.lerp(bg, obj, alpha.unsqueeze(1)), silhouette

    def _finish(self, img: torch.Tensor, f: pd.DataFrame, device: torch.device) -> torch.Tensor:
        """The night domain darkens the whole picture, objects included; every pixel is clamped to [0, 1]."""
        domain = torch.tensor(f["domain"].to_numpy(dtype=np.int64), device=device)
        is_night = (domain == DOMAINS.index("night")).view(len(f), 1, 1, 1)
        img = torch.where(is_night, 0.08 + 0.45 * img, img)
        return img.clamp(0, 1)


# -- signed distances of the 16 shapes, in object units (the shape fits the unit disc) -------
def _box(u, v, cx, cy, hx, hy):
    return torch.maximum((u - cx).abs() - hx, (v - cy).abs() - hy)


def _polygon(n):
    normals = [(-math.pi / 2 + 2 * math.pi * i / n) for i in range(n)]  # a flat side at the bottom
    apothem = math.cos(math.pi / n) * 0.95

    def sdf(u, v):
        return torch.stack([u * math.cos(a) + v * math.sin(a) for a in normals]).amax(0) - apothem
    return sdf


def _star(k, r_in=0.45):
    def sdf(u, v):
        r = torch.sqrt(u * u + v * v)
        a = torch.remainder(torch.atan2(v, u) - math.pi / 2 + math.pi / k, 2 * math.pi / k) - math.pi / k
        return (r - (r_in + (1 - r_in) * (1 - a.abs() / (math.pi / k)))) * 0.6
    return sdf


def _halfplanes(u, v, px, py, normals):
    return torch.stack([(u - px) * nx + (v - py) * ny for nx, ny in normals]).amax(0)


def _unit(x, y):
    n = math.hypot(x, y)
    return x / n, y / n


def _heart(u, v):
    lobes = torch.minimum(torch.sqrt((u + 0.42) ** 2 + (v - 0.28) ** 2) - 0.45,
                          torch.sqrt((u - 0.42) ** 2 + (v - 0.28) ** 2) - 0.45)
    tip = torch.maximum(_halfplanes(u, v, 0, -0.9, [_unit(-1.05, -0.82), _unit(1.05, -0.82)]), v - 0.25)
    return torch.minimum(lobes, tip)


def _arrow(u, v):
    head = torch.maximum(_halfplanes(u, v, 0, 0.95, [_unit(-0.9, 0.7), _unit(0.9, 0.7)]), 0.05 - v)
    return torch.minimum(head, _box(u, v, 0, -0.4, 0.22, 0.5))


_SDF = {
    "triangle": _polygon(3), "square": _polygon(4), "pentagon": _polygon(5), "hexagon": _polygon(6),
    "circle": lambda u, v: torch.sqrt(u * u + v * v) - 0.9,
    "ellipse": lambda u, v: (torch.sqrt(u * u + (v / 0.5) ** 2) - 1) * 0.5,
    "semicircle": lambda u, v: torch.maximum(torch.sqrt(u * u + (v + 0.4) ** 2) - 0.95, -(v + 0.4)),
    "ring": lambda u, v: (torch.sqrt(u * u + v * v) - 0.7).abs() - 0.2,
    "star4": _star(4), "star5": _star(5), "star6": _star(6),
    "cross": lambda u, v: torch.minimum(_box(u, v, 0, 0, 0.9, 0.28), _box(u, v, 0, 0, 0.28, 0.9)),
    "heart": _heart,
    "arrow": _arrow,
    "L": lambda u, v: torch.minimum(_box(u, v, -0.42, 0, 0.22, 0.9), _box(u, v, 0.08, -0.68, 0.72, 0.22)),
    "T": lambda u, v: torch.minimum(_box(u, v, 0, 0.68, 0.85, 0.22), _box(u, v, 0, -0.1, 0.22, 0.85)),
}


# -- colour and deterministic noise ------------------------------------------------------------
def _hsv(h, s, v):
    """HSV (hue in degrees) -> RGB, broadcasting; returns (..., 3, H, W) with a channel dim at 1."""
    h = torch.as_tensor(h)
    k = torch.stack([(5 + h / 60) % 6, (3 + h / 60) % 6, (1 + h / 60) % 6], dim=1)
    s, v = torch.as_tensor(s).unsqueeze(1), torch.as_tensor(v).unsqueeze(1)
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _hash(x: torch.Tensor) -> torch.Tensor:
    """An integer hash (32-bit, kept in int64) that is the same on every device."""
    x = x & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    return (x >> 16) ^ x


def _hash_uniform(seeds: torch.Tensor, salt: int) -> torch.Tensor:
    return _hash(seeds * 1000003 + salt * 7919).float() / 2**32


def _value_noise(seeds: torch.Tensor, cells: int, size: int, salt: int) -> torch.Tensor:
    """Smooth random field per image: a hashed lattice of ``cells`` x ``cells`` values, upsampled."""
    cells = max(cells, 2)
    iy = torch.arange(cells, device=seeds.device).view(1, cells, 1)
    ix = torch.arange(cells, device=seeds.device).view(1, 1, cells)
    lattice = _hash(_hash(seeds.view(-1, 1, 1) * 31 + salt) + iy * 92821 + ix * 68917).float() / 2**32
    return torch.nn.functional.interpolate(lattice.unsqueeze(1), size=(size, size), mode="bilinear",
                                           align_corners=False).squeeze(1)
