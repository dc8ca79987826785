"""Mini-CLIP: contrastive language-image pretraining at the scale of the shapes world (groundwork).

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021. The shared
model (curriculum artifact ``A2``) of chapters 5-7, trained and cached by ``artifacts.mini_clip``; taught in
``notebooks/06_vision_language/01_mini_clip.ipynb``.

A batch holds N images and their N captions. An image encoder and a text encoder each end in a linear projection
to a shared space; after L2 normalisation, I (N, d) and T (N, d) are compared all against all:

    logits = s * I T^T,  s = exp(t)  (t: a learned log temperature, clamped so that s <= 100, as in CLIP)

    L = ( CE(logits, diag) + CE(logits^T, diag) ) / 2

Each image must pick its own caption among the N captions of the batch (the rows), and each caption its own image
(the columns): InfoNCE in both directions, with the other pairs of the batch as negatives.

The encoders keep their tokens, which later notebooks need (FILIP's late interaction, grounding):
* ``ImageEncoder``: the chapter's ConvNet; its last feature map, one token per cell (patch tokens), and their
  mean as the global feature;
* ``TextEncoder``: word embeddings plus learned positions, a small Transformer with a causal mask (as CLIP), the
  word tokens, and the feature of the ``<eos>`` token as the sentence feature.

Zero-shot classification (``zero_shot_classifier``): each class is the normalised mean of the text embeddings of
its prompts ("a circle", "a picture of a circle", ...); an image goes to the class of largest cosine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.captions import tokenize
from ..nets import ConvNet

MAX_LOGIT_SCALE = 100.0
EOS = 3  # the Vocabulary's <eos> id (data/captions.py)


def clip_loss(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
              logit_scale: torch.Tensor | float) -> torch.Tensor:
    """The symmetric cross-entropy of matching rows: (N, d) image and text embeddings (normalised here) and the
    scale s = exp(t) > 0."""
    if image_embeddings.ndim != 2 or image_embeddings.shape != text_embeddings.shape:
        raise ValueError(f"image and text embeddings must both be (N, d), got {tuple(image_embeddings.shape)} and "
                         f"{tuple(text_embeddings.shape)}")
    if len(image_embeddings) < 2:
        raise ValueError("a batch needs at least 2 image-text pairs: the other pairs are the negatives")
    scale = torch.as_tensor(logit_scale, dtype=image_embeddings.dtype, device=image_embeddings.device)
    if not bool(scale > 0):
        raise ValueError(f"logit_scale is s = exp(t) and must be > 0, got {float(scale)}")
    image, text = F.normalize(image_embeddings, dim=1), F.normalize(text_embeddings, dim=1)
    logits = scale * image @ text.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class ImageEncoder(nn.Module):
    """A ConvNet whose last feature map gives patch tokens (N, cells, width) and a global feature (N, width)."""

    def __init__(self, widths=(16, 32, 64, 64)):
        super().__init__()
        self.backbone = ConvNet(widths)
        self.out_dim = widths[-1]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.backbone.features(images)[-1].flatten(2).transpose(1, 2)  # (N, h * w, C)
        return tokens.mean(1), tokens


class TextEncoder(nn.Module):
    """Word embeddings + learned positions -> a causal Transformer; the <eos> token's feature is the sentence's."""

    def __init__(self, vocab_size: int, width: int = 64, layers: int = 2, heads: int = 2, length: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(length, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out_dim, self.length = width, length

    def reset_parameters(self) -> None:
        """Called by ``nets.seeded_init`` (so by ``fit``), under the seed: the attention layers' own initialiser is
        private (``_reset_parameters``), so seeded_init would miss them, and the positions start at 0."""
        for module in self.modules():
            if isinstance(module, nn.MultiheadAttention):
                module._reset_parameters()
        nn.init.zeros_(self.position)

    def forward(self, ids: torch.Tensor, embeddings: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The sentence feature (N, width) and the word tokens (N, L, width). ``embeddings`` (N, L, width), when
        given, replace the word embeddings of ``ids`` (soft prompts, chapter 6's CSP); ``ids`` still mark <eos>."""
        if ids.ndim != 2 or ids.shape[1] > self.length:
            raise ValueError(f"token ids must be (N, L) with L <= {self.length}, got {tuple(ids.shape)}")
        L = ids.shape[1]
        if embeddings is None:
            embeddings = self.embed(ids)
        elif embeddings.shape != (*ids.shape, self.out_dim):
            raise ValueError(f"embeddings must be (N, L, {self.out_dim}) like the ids, got {tuple(embeddings.shape)}")
        causal = torch.triu(torch.full((L, L), float("-inf"), device=ids.device), 1)
        tokens = self.norm(self.transformer(embeddings + self.position[:L], mask=causal))
        eos = (ids == EOS).int().argmax(1)  # the first <eos>; a row without one uses its first token
        return tokens[torch.arange(len(ids), device=ids.device), eos], tokens


class MiniCLIP(nn.Module):
    """Two encoders, two projections into a shared ``dim``-space, and the learned log temperature t."""

    def __init__(self, vocab_size: int, dim: int = 64, widths=(16, 32, 64, 64), text_width: int = 64,
                 length: int = 16, temperature: float = 0.07):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.image_encoder = ImageEncoder(widths)
        self.text_encoder = TextEncoder(vocab_size, text_width, length=length)
        self.image_projection = nn.Linear(self.image_encoder.out_dim, dim, bias=False)
        self.text_projection = nn.Linear(text_width, dim, bias=False)
        self.initial_log_scale = math.log(1 / temperature)
        self.log_scale = nn.Parameter(torch.tensor(self.initial_log_scale))
        self.hparams = {"dim": dim, "widths": tuple(widths), "text_width": text_width, "length": length,
                        "temperature": temperature}

    def after_init(self) -> None:
        """``fit`` re-initialises every layer; the log temperature is a bare parameter, so set it back here."""
        with torch.no_grad():
            self.log_scale.fill_(self.initial_log_scale)

    def logit_scale(self) -> torch.Tensor:
        """s = exp(t), clamped to at most 100 as in CLIP."""
        return self.log_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings (N, dim)."""
        return F.normalize(self.image_projection(self.image_encoder(images)[0]), dim=1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Normalised text embeddings (N, dim)."""
        return F.normalize(self.text_projection(self.text_encoder(ids)[0]), dim=1)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised patch tokens in the shared space (N, cells, dim): what FILIP compares word by word."""
        return F.normalize(self.image_projection(self.image_encoder(images)[1]), dim=-1)

    def text_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Normalised word tokens in the shared space (N, L, dim)."""
        return F.normalize(self.text_projection(self.text_encoder(ids)[1]), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The image representation before the projection (what a probe reads)."""
        return self.image_encoder(images)[0]

    def loss(self, batch):
        images, ids = batch  # the Dataset's "labels" are the captions' token ids (N, L)
        image, text = self.encode_image(images), self.encode_text(ids)
        scale = self.logit_scale()
        loss = clip_loss(image, text, scale)
        with torch.no_grad():
            top1 = ((image @ text.T).argmax(1) == torch.arange(len(image), device=image.device)).float().mean()
        return loss, {"logit_scale": scale.detach(), "top1": top1}


# -- zero-shot classification and retrieval --------------------------------------------------------------------------

SHAPE_PROMPTS = ("a {shape}", "a picture of a {shape}", "there is a {shape}", "the {shape} is {colour}")
COLOUR_PROMPTS = ("a {colour} {shape}", "the {shape} is {colour}")


def check_texts(model: MiniCLIP, vocab, texts: list[str]) -> None:
    """A one-line ValueError naming the words the vocabulary does not know (they would all read as <unk>), and for
    an empty caption or one too long to fit (it would be cut)."""
    unknown = sorted({w for t in texts for w in tokenize(t) if w not in vocab.index})
    if unknown:
        raise ValueError(f"not in the vocabulary: {', '.join(unknown)} (use words of data/captions.py's grammar, "
                         f"e.g. 'a red circle in a photo')")
    longest = max((len(tokenize(t)) for t in texts), default=0)
    if any(not tokenize(t) for t in texts) or longest > model.hparams["length"] - 2:
        raise ValueError(f"a caption needs 1 to {model.hparams['length'] - 2} words, got "
                         f"{min(len(tokenize(t)) for t in texts) if longest else 0} to {longest}")


def encode_texts(model: MiniCLIP, vocab, texts: list[str], batch_size: int = 512) -> torch.Tensor:
    """Normalised text embeddings of sentences (N, dim), in eval mode, after :func:`check_texts`."""
    check_texts(model, vocab, texts)
    return encode_ids(model, vocab.encode(texts, model.hparams["length"]), batch_size)


@torch.no_grad()
def encode_ids(model: MiniCLIP, ids: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Normalised text embeddings (N, dim) of captions already turned into word ids, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.encode_text(ids[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(ids), batch_size)])


@torch.no_grad()
def encode_images(model: MiniCLIP, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Normalised image embeddings (N, dim), in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.encode_image(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


def zero_shot_classifier(model: MiniCLIP, vocab, prompts: dict[str, list[str]]) -> torch.Tensor:
    """One weight vector per class (n_classes, dim): the normalised mean of its prompts' text embeddings (CLIP's
    prompt ensembling). ``prompts`` maps each class name to its sentences."""
    weights = [F.normalize(encode_texts(model, vocab, list(sentences)).mean(0), dim=0)
               for sentences in prompts.values()]
    return torch.stack(weights)


def class_prompts(attribute: str = "shape") -> dict[str, list[str]]:
    """The prompts of each shape (``attribute="shape"``) or colour class, filled in from the captions' grammar:
    a shape's prompts name it in ``SHAPE_PROMPTS`` with every colour; a colour's name it in ``COLOUR_PROMPTS``
    with every shape (first synonyms only)."""
    from ..data.captions import COLOUR_WORDS, SHAPE_WORDS, articles

    shapes = {name: words[0] for name, words in SHAPE_WORDS.items()}
    colours = {name: words[0] for name, words in COLOUR_WORDS.items()}
    if attribute == "shape":
        return {s: sorted({articles(p.format(shape=w, colour=c)) for p in SHAPE_PROMPTS for c in colours.values()})
                for s, w in shapes.items()}
    if attribute == "colour":
        return {c: sorted({articles(p.format(shape=s, colour=w)) for p in COLOUR_PROMPTS for s in shapes.values()})
                for c, w in colours.items()}
    raise ValueError(f"unknown attribute {attribute!r}: use 'shape' or 'colour'")


def retrieval_recall(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Recall@k (%) of matching rows, both ways: for each caption, is its own image among the k most similar images
    (text -> image), and for each image its own caption (image -> text)?"""
    if image_embeddings.shape != text_embeddings.shape:
        raise ValueError(f"image and text embeddings must be paired rows, got {tuple(image_embeddings.shape)} and "
                         f"{tuple(text_embeddings.shape)}")
    sim = image_embeddings @ text_embeddings.T
    own = torch.arange(len(sim))
    k = min(k, len(sim))
    t2i = (sim.T.topk(k, dim=1).indices == own[:, None]).any(1).float().mean().item()
    i2t = (sim.topk(k, dim=1).indices == own[:, None]).any(1).float().mean().item()
    return {"text -> image": 100 * t2i, "image -> text": 100 * i2t}
