"""OBoW: "Online Bag-of-Visual-Words Generation for Unsupervised Representation Learning".

Gidaris, Bursuc, Puy, Komodakis, Cord & Pérez, CVPR 2021. Taught in notebooks/01_foundations/07_obow.ipynb.

A **teacher** network (an exponential moving average of the student) looks at the whole, unperturbed
image and describes it as a **bag of visual words**: each location u of a teacher feature map is
softly assigned to the words v_k of a vocabulary,

    q_k(u) = softmax_k( -(1 / (delta * mu)) * ||f(u) - v_k||^2 ),

where mu is a running mean of the distance to the closest word (an adaptive temperature) and
1/delta = ``inv_delta``. The image's BoW y is the maximum of q_k(u) over locations, L1-normalised.
The **student** sees perturbed crops, some of them small patches, and must predict y from its global
feature: the context reasoning that the method is named for. Its head is *dynamic*: the weight of
word k is generated from the word itself, omega_k = l2(MLP(l2(v_k))), and the prediction is
p = softmax_k(kappa * l2(f)^T omega_k). The loss is the cross-entropy -sum_k y_k log p_k.

What the teacher sees decides what the words describe. By default it is the image itself, as in the
paper. ``teacher_images`` replaces it, row by row, with another picture of the same training image (the
notebook's view: the object alone on a plain background, in grayscale); the training labels must then
be the row numbers, so that ``loss`` can look each image's picture up.

The vocabulary is **online**: a queue of K teacher features, one random (3x3-averaged) location
per image per step, so the words follow the teacher as it learns. The teacher update,
theta_teacher <- alpha theta_teacher + (1 - alpha) theta_student, has alpha going from
``momentum`` to 1 along a cosine.
"""

from __future__ import annotations

import copy
import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluate import perplexity
from ..views import multi_crop


def bag_of_words(feature_map: torch.Tensor, words: torch.Tensor, inv_delta: float, mean_distance: float):
    """The soft BoW of each image: (B, K), rows sum to 1. ``feature_map`` (B, C, H, W) with its
    1-pixel border dropped, ``words`` (K, C). Also returns the soft codes per location (B, K, h, w)."""
    f = feature_map[:, :, 1:-1, 1:-1] if min(feature_map.shape[-2:]) > 2 else feature_map
    d = (f.pow(2).sum(1, keepdim=True) - 2 * torch.einsum("bchw,kc->bkhw", f, words)
         + words.pow(2).sum(1).view(1, -1, 1, 1)).clamp_min(0)  # ||f(u) - v_k||^2
    codes = torch.softmax(-(inv_delta / mean_distance) * d, dim=1)
    bow = codes.flatten(2).max(dim=2).values
    return bow / bow.sum(1, keepdim=True), codes, d


class OBoW(nn.Module):
    """Student + EMA teacher + online vocabulary of ``n_words`` teacher features at block ``level``.

    The student sees ``n_large`` crops and ``n_small`` small patches (:func:`views.multi_crop`; other
    keyword arguments go there too). ``level`` indexes ``backbone.features()``: the default -3 is the
    4x4 map of the presets' ConvNets (16 px smoke, 32 px cpu/gpu). ``teacher_images`` (N, 3, H, W), if
    given, is what the teacher sees instead of training image i; train on data whose labels are the
    row numbers 0 .. N-1 (``dataclasses.replace(train, labels=torch.arange(len(train)))``).
    """

    def __init__(self, backbone: nn.Module, n_words: int = 64, level: int = -3, inv_delta: float = 15.0,
                 kappa: float = 5.0, momentum: float = 0.99, n_large: int = 1, n_small: int = 2,
                 teacher_images: torch.Tensor | None = None, **view_args):
        super().__init__()
        if not hasattr(backbone, "features"):
            raise ValueError("OBoW needs a backbone with a .features(x) method returning its feature maps")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.backbone = backbone
        self.teacher = copy.deepcopy(backbone).requires_grad_(False)
        channels = self._channels(level)
        self.level, self.inv_delta, self.kappa, self.momentum = level, inv_delta, kappa, momentum
        self.n_large, self.n_small, self.view_args = n_large, n_small, view_args
        # the dynamic BoW head: word -> weight of its logit
        self.weight_generator = nn.Sequential(nn.Linear(channels, 2 * channels), nn.BatchNorm1d(2 * channels),
                                              nn.ReLU(inplace=True), nn.Linear(2 * channels, backbone.out_dim))
        self.register_buffer("words", torch.zeros(n_words, channels))
        self.register_buffer("mean_distance", torch.zeros(()))  # 0 until the first batch
        self.hparams = {"n_words": n_words, "level": level, "inv_delta": inv_delta, "kappa": kappa,
                        "momentum": momentum, "n_large": n_large, "n_small": n_small, "views": view_args}
        self.teacher_images = None
        if teacher_images is not None:
            if not isinstance(teacher_images, torch.Tensor) or teacher_images.ndim != 4 or teacher_images.shape[1] != 3:
                shape = tuple(getattr(teacher_images, "shape", ()))
                raise ValueError(f"teacher_images must be a batch of RGB images (N, 3, H, W), got {shape}")
            self.teacher_images = teacher_images.detach().cpu()
            digest = hashlib.blake2b(self.teacher_images.contiguous().numpy().tobytes(), digest_size=8)
            self.hparams["teacher_images"] = digest.hexdigest()  # enters fit's cache key

    def _channels(self, level: int) -> int:
        with torch.no_grad():
            was = self.backbone.training
            maps = self.backbone.eval().features(torch.zeros(1, 3, 16, 16, device=next(self.backbone.parameters()).device))
            self.backbone.train(was)
        return maps[level].shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation f(x): the student's global feature."""
        return self.backbone(x)

    @torch.no_grad()
    def teacher_targets(self, images: torch.Tensor):
        """The teacher's feature map of the unperturbed images and their BoW targets. In training mode it
        also moves the adaptive temperature (and, on the first batch, fills the vocabulary)."""
        fmap = self.teacher.features(images)[self.level]
        first = self.mean_distance <= 0
        if first:
            self._enqueue(fmap, fill=True)
        bow, _, d = bag_of_words(fmap, self.words, self.inv_delta, float(self.mean_distance.clamp_min(1e-8)))
        if self.training or first:
            min_distance = d.min(dim=1).values.mean()
            self.mean_distance.copy_(min_distance if first else 0.99 * self.mean_distance + 0.01 * min_distance)
        return fmap, bow

    @torch.no_grad()
    def _enqueue(self, fmap: torch.Tensor, fill: bool = False) -> None:
        """Add one random location per image (3x3 local average) to the front of the vocabulary."""
        local = F.avg_pool2d(fmap, 3, stride=1) if min(fmap.shape[-2:]) >= 3 else fmap
        b, c, h, w = local.shape
        k = len(self.words)
        n = k if fill else min(b, k)
        rows = torch.randint(b, (n,), device=fmap.device) if fill else torch.randperm(b, device=fmap.device)[:n]
        where = torch.randint(h * w, (n,), device=fmap.device)
        new = local.flatten(2)[rows, :, where]
        self.words.copy_(torch.cat([new, self.words])[:k])

    def word_weights(self) -> torch.Tensor:
        """omega_k for every word of the current vocabulary: (K, D), unit norm."""
        return F.normalize(self.weight_generator(F.normalize(self.words, dim=1)), dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The student's BoW logits for images or crops x: (B, K)."""
        return self.kappa * F.normalize(self.backbone(x), dim=1) @ self.word_weights().T

    def teacher_view(self, images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """What the teacher sees for a batch: the images themselves, or their rows of ``teacher_images``."""
        if self.teacher_images is None:
            return images
        rows = rows.cpu()
        if rows.dtype != torch.long or rows.min() < 0 or rows.max() >= len(self.teacher_images):
            last = len(self.teacher_images) - 1
            raise ValueError(f"with teacher_images, the training labels must be the row numbers 0..{last}; "
                             "train on dataclasses.replace(train, labels=torch.arange(len(train)))")
        return self.teacher_images[rows].to(images.device, images.dtype)

    def loss(self, batch):
        images, rows = batch
        fmap, target = self.teacher_targets(self.teacher_view(images, rows))
        crops = multi_crop(images, self.n_large, self.n_small, **self.view_args)
        losses = [-(target * F.log_softmax(self.predict(c), dim=1)).sum(1).mean() for c in crops]
        self._enqueue(fmap)
        image_perplexity = torch.exp(-(target * target.clamp_min(1e-12).log()).sum(1)).mean()
        return sum(losses) / len(losses), {"perplexity": perplexity(target.mean(0)),
                                           "image_perplexity": float(image_perplexity)}

    @torch.no_grad()
    def word_codes(self, images: torch.Tensor):
        """For the visual-word explorer: the soft word assignment of every inner location of the teacher's
        map (N * h * w, K) and the image patch each location sees (3 x 3 map cells around it), on the CPU."""
        images = images.to(self.words.device)
        fmap = self.teacher.eval().features(images)[self.level]
        _, codes, _ = bag_of_words(fmap, self.words, self.inv_delta, float(self.mean_distance.clamp_min(1e-8)))
        n, k, h, w = codes.shape
        border = (fmap.shape[-1] - w) // 2
        cell = images.shape[-1] // fmap.shape[-1]
        padded = F.pad(images, (cell, cell, cell, cell), value=1.0)
        patches = [padded[:, :, (i + border) * cell:(i + border + 3) * cell, (j + border) * cell:(j + border + 3) * cell]
                   for i in range(h) for j in range(w)]
        patches = torch.stack(patches, 1).flatten(0, 1)  # (N * h * w, 3, 3 cell, 3 cell), image-major
        return codes.permute(0, 2, 3, 1).reshape(n * h * w, k).cpu(), patches.cpu()

    @torch.no_grad()
    def after_init(self) -> None:
        """The teacher starts as an exact copy of the student (called by ``fit`` after initialisation)."""
        self.teacher.load_state_dict(self.backbone.state_dict())

    @torch.no_grad()
    def after_step(self, step: int, steps: int) -> None:
        """The teacher follows the student: alpha goes from ``momentum`` to 1 along a cosine."""
        alpha = 1 - (1 - self.momentum) * (math.cos(math.pi * (step + 1) / max(steps, 1)) + 1) / 2
        for t, s in zip(self.teacher.parameters(), self.backbone.parameters()):
            t.mul_(alpha).add_(s.detach(), alpha=1 - alpha)
        # The batch-norm statistics are *not* copied: the teacher sees whole, unperturbed images and keeps
        # running statistics of those; the student's are a mix of crops and small patches.
