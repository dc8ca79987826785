"""scikit-learn's bundled handwritten digits (1 797 images of 8x8), upsampled: no download needed.

A fast stand-in for real data. The split is fixed: every fifth image is held out for testing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def load_digits(split: str = "train", size: int = 16):
    from sklearn.datasets import load_digits as sk_digits

    from . import Dataset

    bunch = sk_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    labels = torch.tensor(bunch.target)
    test = torch.arange(len(labels)) % 5 == 0
    keep = test if split == "test" else ~test
    return Dataset(images[keep].expand(-1, 3, -1, -1).contiguous(), labels[keep], [str(i) for i in range(10)],
                   name="digits")
