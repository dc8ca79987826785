"""A CLIP-like interface: mini-CLIP by default, a pretrained OpenCLIP model as an opt-in.

Chapter 6 and 7 notebooks need three things of a CLIP: ``tokenize(texts)``, ``encode_text(texts)`` and
``encode_image(images)``, both encoders returning L2-normalised rows of one shared space. ``load_clip`` returns such
an object for the model named by ``SSL_TUTORIAL_CLIP`` (or its ``spec`` argument):

* ``mini`` (the default): the shared mini-CLIP of this scale and seed (``artifacts.mini_clip``, artifact A2),
  trained on the shapes world and its captions; it knows only the words of ``data/captions.py``;
* ``ARCHITECTURE:TAG``, e.g. ``ViT-B-32:laion2b_s34b_b79k``: OpenCLIP's model with those pretrained weights
  (the ``open_clip_torch`` package; ``open_clip.list_pretrained()`` lists the pairs). The weights are downloaded
  once into the Hugging Face cache; offline, without them, ``load_clip`` says so in one line.

Images are given as everywhere in this toolkit, (N, 3, H, W) in [0, 1]; the OpenCLIP adapter resizes them to the
model's input size and normalises them with the model's own mean and standard deviation.

    clip = load_clip(cfg)                    # or SSL_TUTORIAL_CLIP=ViT-B-32:laion2b_s34b_b79k
    weights = clip.encode_text(["a photo of a cat", "a photo of a dog"])
    predicted = (clip.encode_image(images) @ weights.T).argmax(1)
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F


def _texts(texts) -> list[str]:
    """A list of sentences: one sentence alone is wrapped (``list("a cat")`` would split it into letters)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ValueError("no text given: pass a list of one or more sentences")
    return texts


class MiniCLIPAdapter:
    """Mini-CLIP (``methods/clip.py``) and its word-level ``Vocabulary`` behind the CLIP-like interface."""

    def __init__(self, model, vocab):
        self.model, self.vocab = model, vocab
        self.name = "mini-CLIP"

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """(N, L) word ids; a one-line ValueError for a word the vocabulary does not know."""
        from .methods.clip import check_texts

        texts = _texts(texts)
        check_texts(self.model, self.vocab, texts)
        return self.vocab.encode(texts, self.model.hparams["length"])

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        from .methods.clip import encode_texts

        return encode_texts(self.model, self.vocab, _texts(texts))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        from .methods.clip import encode_images

        return encode_images(self.model, images)


class OpenCLIPAdapter:
    """An OpenCLIP model, its tokenizer and its input size and normalisation behind the CLIP-like interface."""

    def __init__(self, model, tokenizer, image_size: int, mean, std, name: str = "OpenCLIP", device="cpu"):
        self.model, self.tokenizer, self.image_size = model.eval().to(device), tokenizer, int(image_size)
        self.name, self.device = name, torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(_texts(texts))

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        ids = self.tokenize(texts)
        return torch.cat([F.normalize(self.model.encode_text(ids[i:i + batch_size].to(self.device)).float(), dim=1)
                          .cpu() for i in range(0, len(ids), batch_size)])

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> the model's input: resized (bicubic, antialiased) and normalised."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        x = F.interpolate(images.to(self.device, torch.float32), size=(self.image_size, self.image_size),
                          mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        return torch.cat([F.normalize(self.model.encode_image(self.preprocess(images[i:i + batch_size])).float(),
                                      dim=1).cpu()
                          for i in range(0, len(images), batch_size)])


def _normalisation(preprocess) -> tuple[list[float], list[float]]:
    """The mean and std of the Normalize step of an OpenCLIP preprocessing pipeline."""
    for step in getattr(preprocess, "transforms", []):
        if hasattr(step, "mean") and hasattr(step, "std"):
            return list(step.mean), list(step.std)
    raise ValueError("the OpenCLIP preprocessing has no Normalize step")


def open_clip_model(architecture: str, pretrained: str | None = None, device="cpu") -> OpenCLIPAdapter:
    """OpenCLIP's ``architecture`` with the ``pretrained`` weights (None: randomly initialised, no download)."""
    try:
        import open_clip
    except ImportError:
        raise RuntimeError("OpenCLIP is not installed: pip install open_clip_torch (it is in requirements.txt), "
                           "or unset SSL_TUTORIAL_CLIP to use mini-CLIP") from None
    if architecture not in open_clip.list_models():
        raise ValueError(f"unknown OpenCLIP architecture {architecture!r}; e.g. ViT-B-32 "
                         f"(open_clip.list_models() lists {len(open_clip.list_models())})")
    quick_gelu = False
    if pretrained is not None:
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        if pretrained.lower().replace("-", "_") not in tags:  # open_clip's own spelling rule for tags
            raise ValueError(f"OpenCLIP has no weights {pretrained!r} for {architecture}; choose from "
                             f"{', '.join(tags) or 'none'}")
        quick_gelu = bool(open_clip.get_pretrained_cfg(architecture, pretrained).get("quick_gelu", False))
    quiet = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # open_clip logs the failed download at length before it raises
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=pretrained, force_quick_gelu=quick_gelu, require_pretrained=pretrained is not None)
        tokenizer = open_clip.get_tokenizer(architecture)  # some download theirs (Hugging Face tokenizers)
    except Exception as error:  # offline: the download fails inside huggingface_hub or urllib, in many ways
        first = (str(error).splitlines() or [""])[0][:160]
        raise RuntimeError(f"could not load OpenCLIP {architecture}:{pretrained} ({type(error).__name__}: {first}). "
                           "If you are offline, run once with internet access, so that the weights reach the Hugging "
                           "Face cache, or unset SSL_TUTORIAL_CLIP to use mini-CLIP") from None
    finally:
        logging.disable(quiet)
    size = model.visual.image_size
    mean, std = _normalisation(preprocess)
    return OpenCLIPAdapter(model, tokenizer, size[0] if isinstance(size, tuple) else size, mean, std,
                           name=f"{architecture}:{pretrained}", device=device)


def load_clip(cfg=None, spec: str | None = None):
    """The CLIP-like model named by ``spec`` or ``SSL_TUTORIAL_CLIP``: ``mini`` (default) or
    ``ARCHITECTURE:TAG`` (OpenCLIP, pretrained). ``cfg`` (from ``setup()``) picks mini-CLIP's scale and seed and
    the device."""
    spec = (spec or os.environ.get("SSL_TUTORIAL_CLIP") or "mini").strip()
    device = getattr(cfg, "device", "cpu")
    if spec == "mini":
        if cfg is None:
            raise ValueError("mini-CLIP is trained per scale and seed: pass cfg = setup()")
        from .artifacts import mini_clip

        model, vocab, _ = mini_clip(cfg)
        return MiniCLIPAdapter(model, vocab)
    architecture, _, tag = spec.partition(":")
    if not tag:
        raise ValueError(f"SSL_TUTORIAL_CLIP must be 'mini' or ARCHITECTURE:TAG (e.g. "
                         f"ViT-B-32:laion2b_s34b_b79k), got {spec!r}")
    return open_clip_model(architecture, tag, device)
