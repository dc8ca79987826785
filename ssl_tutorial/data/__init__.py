"""Datasets: one file per data family, one small container for all of them.

* ``shapes``  -- the procedural shapes world (default; generated, no download), ``shapes.py``
* ``digits``  -- scikit-learn's bundled 8x8 digits, upsampled, ``digits.py``
* ``cifar10``, ``stl10`` -- opt-in downloads through torchvision into ``data/``, ``torchvision.py``

Taught in notebooks/00_start/01_shapes_world.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

DATASETS = ("shapes", "digits", "cifar10", "stl10")


@dataclass
class Dataset:
    """Images (N, 3, H, W) in [0, 1], integer labels (N,), and, for generated data, every factor."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    factors: pd.DataFrame | None = None
    name: str = ""

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> Dataset:
        """The rows at ``index`` (a slice, a boolean mask or integer indices)."""
        index = torch.as_tensor(index) if not isinstance(index, slice) else index
        rows = index.cpu().numpy() if isinstance(index, torch.Tensor) else index
        factors = None if self.factors is None else self.factors.iloc[rows].reset_index(drop=True)
        return Dataset(self.images[index], self.labels[index], self.class_names, factors, self.name)

    def to(self, device) -> Dataset:
        return Dataset(self.images.to(device), self.labels.to(device), self.class_names, self.factors, self.name)

    def label_by(self, *columns: str) -> Dataset:
        """The same images, labelled by the combination of factor ``columns`` (one class per combination,
        in sorted order), e.g. ``label_by("superclass_name", "colour_name")`` -> classes like "round/red"."""
        if self.factors is None:
            raise ValueError(f"{self.name or 'this dataset'} has no factor table to label by")
        missing = [c for c in columns if c not in self.factors]
        if missing or not columns:
            raise ValueError(f"unknown factor columns {missing or '(none given)'}; choose from: {', '.join(self.factors)}")
        keys = self.factors[list(columns)].astype(str).agg("/".join, axis=1)
        names = sorted(keys.unique())
        labels = torch.tensor(keys.map({k: i for i, k in enumerate(names)}).to_numpy(), device=self.labels.device)
        return Dataset(self.images, labels, names, self.factors, self.name)

    def few_labels(self, per_class: int, seed: int = 0) -> Dataset:
        """A labelled subset with ``per_class`` examples of every class (the few-label setting)."""
        g = torch.Generator().manual_seed(seed)
        labels = self.labels.cpu()
        keep = []
        for c in labels.unique():
            idx = torch.nonzero(labels == c).flatten()
            keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
        return self.subset(torch.cat(keep).sort().values)


def concat(*datasets: Dataset, name: str = "") -> Dataset:
    """The images of several datasets in one (e.g. a target set plus open-set samples). They must share
    image size and class names; factor tables are kept when every dataset has one."""
    if not datasets:
        raise ValueError("concat needs at least one dataset")
    shapes = {tuple(d.images.shape[1:]) for d in datasets}
    if len(shapes) > 1:
        raise ValueError(f"cannot concatenate images of different shapes: {sorted(shapes)}")
    if any(d.class_names != datasets[0].class_names for d in datasets):
        raise ValueError("cannot concatenate datasets with different class names")
    factors = None
    if all(d.factors is not None for d in datasets):
        factors = pd.concat([d.factors for d in datasets], ignore_index=True)
    return Dataset(torch.cat([d.images for d in datasets]), torch.cat([d.labels for d in datasets]),
                   datasets[0].class_names, factors, name or "+".join(d.name for d in datasets))


def load_dataset(name: str, split: str = "train", n: int | None = None, size: int = 32, seed: int = 0,
                 **world) -> Dataset:
    """Load a dataset by name. ``split`` is "train" or "test"; ``n`` caps the number of images.

    For ``shapes``, the train and test splits are drawn with different seeds from the same world,
    and ``world`` passes factor ranges to :class:`ShapesWorld` (e.g. ``rotation="uniform"``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "shapes":
        from .shapes import ShapesWorld

        return ShapesWorld(size=size, **world).sample(n or 5000, seed=2 * seed + (split == "test"))
    if world:
        raise ValueError(f"factor ranges {sorted(world)} only apply to the shapes world, not {name!r}")
    if name == "digits":
        from .digits import load_digits

        data = load_digits(split, size=size)
    else:
        from .torchvision import load_torchvision

        data = load_torchvision(name, split, size=size)
    if n is not None and n < len(data):
        data = data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values)
    return data


def load_splits(cfg, dataset: str | None = None, **world) -> tuple[Dataset, Dataset]:
    """Train and test splits sized by the scale preset ``cfg`` (from :func:`ssl_tutorial.setup`)."""
    name = dataset or cfg.dataset
    train = load_dataset(name, "train", n=cfg.n_train, size=cfg.image_size, seed=cfg.seed, **world)
    test = load_dataset(name, "test", n=cfg.n_test, size=cfg.image_size, seed=cfg.seed, **world)
    return train, test
