"""Models that several notebooks share, trained once per scale and seed and cached by ``fit``.

``mini_clip`` is the curriculum's artifact A2: the CLIP-like model of chapters 5-7, trained on single-object
pictures of the shapes world and their template captions (``data/captions.py``). Every notebook that calls it
with the same scale and seed loads what the first one trained.

``base_model`` is chapter 3's pretrained classifier, and ``base_backbone`` its encoder: a ConvNet trained with labels
on the *base* classes of the shapes world only (``data.episodes.BASE_SHAPES``), the usual pretraining of few-shot
learning. The novel classes never appear in its training pictures. (The curriculum's A1, a self-supervised
backbone, is not built yet: SimCLR on the base shapes put 5-way 1-shot accuracy on the novel shapes barely above
chance at the sizes trained here.)

``tiny_ddpm`` is the curriculum's artifact A3: the unconditional DDPM of chapter 5, used by
notebooks/05_generative/02_diffusion_features.ipynb (its features) and 03_guidance.ipynb (guided
sampling). Both notebooks call it with the same preset, so the second loads what the first trained; a
notebook run alone trains it within its budget.
"""

from __future__ import annotations

from .data import Dataset, load_dataset
from .data.captions import Vocabulary, caption
from .data.episodes import BASE_SHAPES, NOVEL_SHAPES
from .data.shapes import ShapesWorld
from .methods.clip import MiniCLIP
from .methods.diffusion import DDPM
from .methods.supervised import Supervised
from .nets import ConvNet
from .runtime import PRESETS
from .train import History, fit

# data, U-Net width and training of the tiny DDPM at each scale (batch 64)
DDPM_PRESETS = {
    "smoke": dict(data="digits", pixels=8, channels=8, steps=200, lr=3e-3),
    "cpu": dict(data="digits", pixels=8, channels=16, steps=3000, lr=2e-3),
    "gpu": dict(data="shapes", pixels=32, channels=32, steps=8000, lr=2e-3),  # not run on a GPU yet
}


def diffusion_data(cfg):
    """The preset of ``cfg.scale`` and its train and test sets: scikit-learn's 8x8 digits (1 437 / 360) at
    smoke and cpu scale, the shapes world at 32 px (20 000 / 2 000) at gpu scale."""
    preset = DDPM_PRESETS[cfg.scale]
    if preset["data"] == "digits":
        return preset, load_dataset("digits", "train", size=8), load_dataset("digits", "test", size=8)
    train = load_dataset("shapes", "train", n=20000, size=preset["pixels"], seed=cfg.seed)
    test = load_dataset("shapes", "test", n=2000, size=preset["pixels"], seed=cfg.seed)
    return preset, train, test


def tiny_ddpm(cfg, train, preset: dict, progress: bool = True) -> DDPM:
    """A3: the DDPM of ``preset``, trained on ``train`` (its labels are never used) and cached."""
    ddpm = DDPM(preset["channels"])
    fit(ddpm, train, cfg, steps=preset["steps"], batch_size=64, lr=preset["lr"], name="tiny-ddpm", progress=progress)
    return ddpm


# images, encoders and training of mini-CLIP at each scale
CLIP_PRESETS = {
    "smoke": dict(pixels=16, n_train=4000, n_test=1000, widths=(16, 32, 64, 64), steps=500, batch_size=128, lr=1e-3),
    "cpu": dict(pixels=32, n_train=12000, n_test=2000, widths=(16, 32, 64, 128, 128), steps=2500, batch_size=128,
                lr=2e-3),
    "gpu": dict(pixels=32, n_train=40000, n_test=5000, widths=(64, 128, 256, 256, 256), steps=10000, batch_size=256,
                lr=1e-3),  # not run on a GPU yet
}


def clip_data(cfg) -> tuple[dict, Dataset, Dataset, dict[str, list[str]]]:
    """The preset of ``cfg.scale``, its train and test pictures (labels: the shape; ``factors``: every factor), and
    one caption per picture: ``captions["train"]``, ``captions["test"]``."""
    preset = CLIP_PRESETS[cfg.scale]
    world = ShapesWorld(size=preset["pixels"])
    seeds = {"train": 2 * cfg.seed, "test": 2 * cfg.seed + 1}
    data = {split: world.sample(preset[f"n_{split}"], seed=seed) for split, seed in seeds.items()}
    captions = {split: caption(data[split].factors, seed=seed) for split, seed in seeds.items()}
    return preset, data["train"], data["test"], captions


def mini_clip(cfg, progress: bool = True) -> tuple[MiniCLIP, Vocabulary, History]:
    """A2: mini-CLIP trained with the CLIP loss on ``clip_data(cfg)``'s training pictures and captions, and
    cached. Returns the model (eval mode, on ``cfg.device``), its vocabulary and its training history."""
    preset, train, _, captions = clip_data(cfg)
    vocab = Vocabulary()
    model = MiniCLIP(len(vocab), widths=preset["widths"])
    pairs = Dataset(train.images, vocab.encode(captions["train"], model.hparams["length"]), train.class_names,
                    name="shapes+captions")
    # keyed on the scale and seed alone: a notebook's own switches (dataset, sizes) must not retrain the shared model
    shared = cfg.with_(dataset="shapes", **PRESETS[cfg.scale])
    history = fit(model, pairs, shared, steps=preset["steps"], batch_size=preset["batch_size"], lr=preset["lr"],
                  name="mini-clip", progress=progress)
    return model, vocab, history


# pictures, encoder and training of chapter 3's base-class backbone at each scale
FEW_SHOT_PRESETS = {
    "smoke": dict(pixels=16, n_train=4000, n_test=2000, widths=(16, 32, 64, 64), steps=300, batch_size=128, lr=2e-3),
    "cpu": dict(pixels=32, n_train=10000, n_test=4000, widths=(16, 32, 64, 128, 128), steps=1500, batch_size=128,
                lr=2e-3),
    "gpu": dict(pixels=32, n_train=40000, n_test=8000, widths=(64, 128, 256, 256, 256), steps=6000, batch_size=256,
                lr=1e-3),  # not run on a GPU yet
}


def few_shot_data(cfg) -> tuple[dict, Dataset, Dataset]:
    """The preset of ``cfg.scale``, the backbone's training pictures (base classes only; labels: the shape) and
    held-out pictures of *every* class, base and novel, for episodes."""
    preset = FEW_SHOT_PRESETS[cfg.scale]
    world = ShapesWorld(size=preset["pixels"])
    base = world.with_(shapes=BASE_SHAPES).sample(preset["n_train"], seed=2 * cfg.seed)
    return preset, base, world.sample(preset["n_test"], seed=2 * cfg.seed + 1)


def base_model(cfg, progress: bool = True) -> Supervised:
    """Chapter 3's base-class classifier: a ConvNet and a linear head over the 16 shapes, trained with
    cross-entropy on ``few_shot_data(cfg)``'s base-class pictures, and cached (keyed on the scale and seed alone).
    Returns the model, in eval mode, on ``cfg.device``."""
    preset, base, _ = few_shot_data(cfg)
    if set(base.factors["shape_name"]) & set(NOVEL_SHAPES):
        raise RuntimeError("the base backbone's training pictures must hold base classes only")
    model = Supervised(ConvNet(preset["widths"]), len(base.class_names))
    shared = cfg.with_(dataset="shapes", **PRESETS[cfg.scale])
    fit(model, base, shared, steps=preset["steps"], batch_size=preset["batch_size"], lr=preset["lr"],
        name="base-backbone", progress=progress)
    return model.eval()


def base_backbone(cfg, progress: bool = True) -> ConvNet:
    """Chapter 3's encoder: the backbone of :func:`base_model` (trained with labels on the base classes only).
    Returns it in eval mode, on ``cfg.device``."""
    return base_model(cfg, progress).backbone.eval()
