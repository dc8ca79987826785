"""FILIP: fine-grained interactive language-image pretraining, by token-wise late interaction.

Yao et al., "FILIP: Fine-grained Interactive Language-Image Pre-Training", ICLR 2022. Taught in
``notebooks/06_vision_language/02_filip.ipynb``, against mini-CLIP (``methods/clip.py``) with the same encoders.

CLIP compares one vector per image with one vector per caption. FILIP keeps the tokens: the n1 patch tokens
x_1..x_n1 of image i and the n2 word tokens y_1..y_n2 of caption j, projected to the shared space and normalised.
Each token looks for its best partner on the other side, and the scores are averaged:

    image -> text:  s^I_ij = (1/n1) sum_k  max_r  x_k^T y_r        (each patch: its best word)
    text -> image:  s^T_ij = (1/n2) sum_r  max_k  x_k^T y_r        (each word: its best patch)

Padding is left out of the max and the mean (here also ``<bos>``, which under the causal mask is the same token in
every caption). The two scores replace the global cosine in CLIP's two cross-entropies:

    L = ( CE(s * S^I, diag) + CE(s * (S^T)^T, diag) ) / 2,  s = exp(t), learned as in CLIP

Nothing is fused: each modality's tokens are still computed alone (retrieval stays pre-computable), and the
interaction is one max per token. Since every word must find its own patch, words and patches align, which the
word-patch map shows (``word_patch_similarity``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.captions import scene_captions, swap_caption_colours
from ..data.scenes import Scenes, distinct_pairs, swap_colours
from ..data.shapes import ShapesWorld
from .clip import MiniCLIP, encode_ids, encode_images

PAD, BOS = 0, 2  # the Vocabulary's ids (data/captions.py)


def word_mask(ids: torch.Tensor) -> torch.Tensor:
    """(N, L) True at the tokens that take part: the words and ``<eos>``, not ``<pad>`` or ``<bos>``."""
    return (ids != PAD) & (ids != BOS)


def late_interaction(image_tokens: torch.Tensor, text_tokens: torch.Tensor,
                     text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FILIP's similarities of every image with every caption: ``image_tokens`` (N, n1, d) and ``text_tokens``
    (M, n2, d), both normalised, and the (M, n2) mask of real words. Returns s^I (N, M), the mean over patches of
    their best word, and s^T (N, M), the mean over words of their best patch."""
    if image_tokens.ndim != 3 or text_tokens.ndim != 3 or image_tokens.shape[2] != text_tokens.shape[2]:
        raise ValueError(f"tokens must be (N, n1, d) and (M, n2, d), got {tuple(image_tokens.shape)} and "
                         f"{tuple(text_tokens.shape)}")
    if text_mask.shape != text_tokens.shape[:2] or not bool(text_mask.any(1).all()):
        raise ValueError("the text mask must be (M, n2) with at least one real word per caption")
    sim = torch.einsum("npd,mld->nmpl", image_tokens, text_tokens)  # (N, M, n1, n2)
    s_image = sim.masked_fill(~text_mask[None, :, None, :], float("-inf")).amax(3).mean(2)
    s_text = (sim.amax(2) * text_mask[None]).sum(2) / text_mask.sum(1)[None]
    return s_image, s_text


def filip_loss(s_image: torch.Tensor, s_text: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric cross-entropy on FILIP's scores: rows of s^I pick the caption, columns of s^T the image."""
    if s_image.ndim != 2 or s_image.shape[0] != s_image.shape[1] or s_image.shape != s_text.shape:
        raise ValueError(f"scores must be two (N, N) matrices of matching pairs, got {tuple(s_image.shape)} and "
                         f"{tuple(s_text.shape)}")
    if not bool(torch.as_tensor(logit_scale) > 0):
        raise ValueError(f"logit_scale is s = exp(t) and must be > 0, got {float(logit_scale)}")
    target = torch.arange(len(s_image), device=s_image.device)
    return (F.cross_entropy(logit_scale * s_image, target) + F.cross_entropy(logit_scale * s_text.T, target)) / 2


class FILIP(MiniCLIP):
    """Mini-CLIP's encoders and projections, trained with the token-wise loss instead of the global one."""

    def loss(self, batch):
        images, ids = batch
        ids = ids[:, :int((ids != PAD).sum(1).max())]  # drop the columns of padding alone: less to compare
        s_image, s_text = late_interaction(self.image_tokens(images), self.text_tokens(ids), word_mask(ids))
        scale = self.logit_scale()
        with torch.no_grad():  # as mini-CLIP logs it: does each picture find its caption in the batch?
            top1 = (s_image.argmax(1) == torch.arange(len(ids), device=ids.device)).float().mean()
        return filip_loss(s_image, s_text, scale), {"logit_scale": scale.detach(), "top1": top1}


# -- evaluation: retrieval scores and word-patch maps, for CLIP and FILIP alike -------------------------------

@torch.no_grad()
def text_image_scores(model: MiniCLIP, images: torch.Tensor, ids: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """(M captions, N images) retrieval scores: FILIP's s^T for a ``FILIP``, the global cosine for a ``MiniCLIP``."""
    model.eval()
    device = next(model.parameters()).device
    if not isinstance(model, FILIP):
        return encode_ids(model, ids) @ encode_images(model, images).T
    x = torch.cat([model.image_tokens(images[i:i + 512].to(device)) for i in range(0, len(images), 512)])
    out = []
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk].to(device)
        out.append(late_interaction(x, model.text_tokens(part), word_mask(part))[1].T.cpu())
    return torch.cat(out)


def _grid(tokens: torch.Tensor) -> int:
    return int(round(tokens.shape[1] ** 0.5))


@torch.no_grad()
def word_patch_similarity(model: MiniCLIP, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(N, L, h, w): the cosine of each word token of caption i with each patch token of image i, on the feature
    map's grid. For FILIP this is what the loss trains; for CLIP only the ``<eos>`` token is ever trained."""
    model.eval()
    device = next(model.parameters()).device
    x, y = model.image_tokens(images.to(device)), model.text_tokens(ids.to(device))
    side = _grid(x)
    return torch.einsum("npd,nld->nlp", x, y).reshape(len(ids), ids.shape[1], side, side).cpu()


@torch.no_grad()
def phrase_patch_similarity(model: MiniCLIP, images: torch.Tensor, phrase_ids: torch.Tensor) -> torch.Tensor:
    """(N, h, w): the cosine of a phrase's global text embedding ("a red circle", as its own caption) with each
    patch token of image i: how a CLIP trained on whole captions can point at a part of the picture at all."""
    model.eval()
    device = next(model.parameters()).device
    x = model.image_tokens(images.to(device))
    y = model.encode_text(phrase_ids.to(device))
    side = _grid(x)
    return torch.einsum("npd,nd->np", x, y).reshape(len(images), side, side).cpu()


# -- the experiment: two-object scenes, their colour-swapped twins, and where each noun points --------------------

# the scenes and the training of both models (CLIP and FILIP alike) at each scale
PRESETS = {
    "smoke": dict(pixels=24, shapes=8, n_train=4000, n_test=250, widths=(8, 24, 64), steps=400, batch_size=64,
                  lr=3e-3),
    "cpu": dict(pixels=32, shapes=16, n_train=6000, n_test=500, widths=(16, 32, 64), steps=1200, batch_size=128,
                lr=2e-3),
    "gpu": dict(pixels=32, shapes=16, n_train=20000, n_test=1000, widths=(32, 64, 128), steps=5000, batch_size=256,
                lr=1e-3),  # not run on a GPU yet
}
# the smoke world's 8 shapes: two of each superclass
SMOKE_SHAPES = ("triangle", "square", "circle", "ring", "star5", "cross", "heart", "arrow")


def scene_generator(preset: dict) -> Scenes:
    """Two-object scenes of the preset's size and shapes, in three colourful domains (no sketch, no night, where
    colours fade) and four textures: the colour of each object must be readable for the binding test."""
    shapes = SMOKE_SHAPES if preset["shapes"] == len(SMOKE_SHAPES) else ShapesWorld().shapes
    world = ShapesWorld(size=preset["pixels"], scale=(0.25, 0.38), shapes=shapes[:preset["shapes"]],
                        domains=("photo", "cartoon", "painting"), textures=("solid", "stripes", "dots", "gradient"))
    return Scenes(world)


def compositional_scenes(scenes: Scenes, n: int, seed: int = 0, twins: bool = True):
    """``n`` two-object scenes that differ in shape and colour, their captions ("a red circle left of a blue
    star"), the rows of ``objects`` each caption names, and the twins: the same scenes with the two colours
    exchanged, and their captions. Returns (batch, captions, named, twin_batch, twin_captions); the last two are
    None with ``twins=False``."""
    layout, objects = distinct_pairs(scenes, n, seed)
    batch = scenes.render(layout, objects)
    captions, named = scene_captions(batch.objects, seed=seed, return_objects=True)
    if not twins:
        return batch, captions, named, None, None
    twin = scenes.render(layout, swap_colours(objects))
    return batch, captions, named, twin, [swap_caption_colours(text) for text in captions]


def localisation(maps: torch.Tensor, batch, named: np.ndarray) -> dict[str, float]:
    """How often each object's best patch lies on that object: ``maps`` (n, 2, h, w) holds, for each scene, a map
    over the patch grid for its first and its second named object (a word's or a phrase's similarities). A hit is
    an argmax cell that holds more of the named object's pixels than of the other's. ``chance`` is the same rate
    for a cell drawn uniformly. Percentages."""
    n, _, h, w = maps.shape
    S = batch.instance.shape[-1]
    if S % h or S % w:
        raise ValueError(f"the {S}-pixel canvas does not split into the {h} x {w} grid of the maps")
    depth = batch.objects["depth"].to_numpy()
    hits, chance = [], []
    for k in range(2):
        own = (batch.instance == torch.as_tensor(depth[named[:, k]]).view(-1, 1, 1)).float()[:, None]
        other = (batch.instance == torch.as_tensor(depth[named[:, 1 - k]]).view(-1, 1, 1)).float()[:, None]
        share = F.avg_pool2d(own, (S // h, S // w)).flatten(1)  # (n, h * w): the cell's fraction of this object
        on_own = (share > 0) & (share > F.avg_pool2d(other, (S // h, S // w)).flatten(1))
        hits.append(on_own[torch.arange(n), maps[:, k].flatten(1).argmax(1)].float())
        chance.append(on_own.float().mean(1))
    return {"hit": 100 * torch.cat(hits).mean().item(), "chance": 100 * torch.cat(chance).mean().item()}


def binding_accuracy(scores: torch.Tensor, scores_twin: torch.Tensor) -> float:
    """How often (%) a caption scores its own scene above the scene's colour-swapped twin: (n,) each; chance 50."""
    return 100 * (scores > scores_twin).float().mean().item()
