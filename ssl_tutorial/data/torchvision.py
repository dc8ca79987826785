"""Real datasets, opt-in: CIFAR-10 and STL-10 (labelled part), stored under ``data/``.

Nothing here touches the network unless you ask: ``ssl-tutorial fetch cifar10`` (or
:func:`fetch`) downloads through torchvision; loading reads the files already on disk and,
when they are missing, raises a ``RuntimeError`` that says how to get them. The readers parse
the datasets' own distribution formats (CIFAR's pickled batches, STL-10's binary arrays), so
they are tested on small files in those formats that the tests write.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SOURCES = {
    "cifar10": {"folder": "cifar-10-batches-py", "archive": "cifar-10-python.tar.gz",
                "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "torchvision": "CIFAR10"},
    "stl10": {"folder": "stl10_binary", "archive": "stl10_binary.tar.gz",
              "url": "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "torchvision": "STL10"},
}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def data_root() -> Path:
    """``$SSL_TUTORIAL_DATA`` or the ``data/`` folder beside the package."""
    return Path(os.environ.get("SSL_TUTORIAL_DATA") or Path(__file__).resolve().parents[2] / "data")


def _check_name(name: str) -> dict:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r} to fetch; choose one of: {', '.join(SOURCES)}")
    return SOURCES[name]


def missing_message(name: str, root: Path) -> str:
    src = SOURCES[name]
    return (f"{name} is not in {root / src['folder']}. Run `ssl-tutorial fetch {name}` on a machine with "
            f"internet access, or download {src['url']} yourself and extract it into {root}/ "
            f"(so that {root / src['folder']} exists). The default dataset, 'shapes', needs no download.")


def fetch(name: str, root: Path | None = None) -> Path:
    """Download ``name`` into ``root`` with torchvision; a clear ``RuntimeError`` when offline."""
    src = _check_name(name)
    root = Path(root or data_root())
    if (root / src["folder"]).exists():
        return root / src["folder"]
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    try:
        cls = getattr(tvd, src["torchvision"])
        kwargs = {"split": "train"} if name == "stl10" else {"train": True}
        cls(str(root), download=True, **kwargs)
    except (OSError, RuntimeError) as e:  # URLError is an OSError
        raise RuntimeError(f"could not download {name} ({type(e).__name__}: {e}). "
                           + missing_message(name, root)) from None
    return root / src["folder"]


def load_torchvision(name: str, split: str = "train", size: int = 32, root: Path | None = None):
    """Read ``name`` from disk as a :class:`Dataset` (images resized to ``size``)."""
    from . import Dataset

    src = _check_name(name)
    root = Path(root or data_root())
    folder = root / src["folder"]
    if not folder.exists():
        raise RuntimeError(missing_message(name, root))
    images, labels = (_read_cifar10 if name == "cifar10" else _read_stl10)(folder, split)
    x = torch.from_numpy(images).float().div_(255)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    classes = CIFAR10_CLASSES if name == "cifar10" else STL10_CLASSES
    return Dataset(x, torch.from_numpy(labels).long(), classes, name=name)


def _read_cifar10(folder: Path, split: str):
    files = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    data, labels = [], []
    for f in files:
        path = folder / f
        if not path.exists():
            raise RuntimeError(f"{path} is missing: the CIFAR-10 folder is incomplete; delete {folder} and fetch again")
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(data), np.concatenate(labels)


def _read_stl10(folder: Path, split: str):
    x_path, y_path = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    for path in (x_path, y_path):
        if not path.exists():
            raise RuntimeError(f"{path} is missing: the STL-10 folder is incomplete; delete {folder} and fetch again")
    images = np.fromfile(x_path, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)  # column-major
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1  # stored as 1..10
    return np.ascontiguousarray(images), labels
