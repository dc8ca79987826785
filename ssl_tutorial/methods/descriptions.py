"""Adapting a vision-language model with class descriptions, for classes whose names mean nothing to it.

Saha, Van Horn and Maji, "Improved Zero-Shot Classification by Adapting VLMs with Text Descriptions", CVPR 2024.
Taught in ``notebooks/06_vision_language/05_descriptions.ipynb`` on mini-CLIP (artifact A2, ``methods/clip.py``).

Zero-shot classification names each class in a prompt ("a picture of a hexagon"). A class whose name the model never
learned (a rare species; here a made-up word) gets no signal from its name. Its *descriptions* may still help: what
it looks like ("it has six straight sides") and where it lives ("it is usually seen in a painting").

Each class c has a bag B(c) of descriptions, which speak of "it", never of the class's name. Two ways to use them:

* **averaging, at test only**: the class's weight is the normalised mean of its descriptions' text embeddings g(d),
      w_c = normalise( (1/|B(c)|) sum_{d in B(c)} g(d) ),   predict argmax_c cos(f(x), w_c);
* **adapting** (the paper's bag-level supervision): pictures x_i of the *seen* classes, each paired with a description
  d_i drawn from its own class's bag, fine-tune the model with the image-text contrastive loss. A description is a
  positive for every picture whose class's bag holds it, whichever picture it was drawn for:
      L = 1/2 [ - (1/N) sum_i (1/|P_i|) sum_{j in P_i} log softmax_j( s cos(f(x_i), g(d_j)) )
                - (1/N) sum_j (1/|Q_j|) sum_{i in Q_j} log softmax_i( s cos(f(x_i), g(d_j)) ) ],
      P_i = {j : d_j in B(c_i)},   Q_j = {i : d_j in B(c_i)}.
  Then the *novel* classes, never trained on, are classified by averaging their own descriptions.

The paper's finding, which the notebook measures: descriptions used only at test time help little, since the model
never learned what "six straight sides" looks like (unless their words are grounded already: here the habitat
phrases, which mini-CLIP's captions taught it); training with them teaches it, and carries over to classes never
trained on. A simplification: the image encoder stays frozen (its features are computed once), the text encoder and
both projections train, and the logit scale s stays at mini-CLIP's value. The paper fine-tunes the whole model. The
positive mask extends the paper's (same class = positive): a sentence shared by two classes is a positive for both.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.captions import APPEARANCE, DOMAIN_PHRASES, HABITATS, SUPERCLASS_PHRASES, articles, with_habitats
from ..data.shapes import SHAPES, SUPERCLASSES
from .clip import check_texts

KINDS = ("appearance", "habitat")
# One novel class per superclass; the other twelve shapes are the seen classes. `strength`: the habitat prior.
PRESETS = {
    "smoke": dict(novel=("hexagon", "ring", "star6", "T"), strength=0.6, n_train=4000, n_test=4000, steps=500,
                  lr=1e-2, batch_size=128),
    "cpu": dict(novel=("hexagon", "ring", "star6", "T"), strength=0.6, n_train=8000, n_test=4000, steps=800,
                lr=1e-2, batch_size=128),
}
PRESETS["gpu"] = PRESETS["cpu"]


def description_bags(kinds=KINDS) -> dict[str, list[str]]:
    """Per shape, its descriptions of the given ``kinds``: "appearance" (its superclass and its look) and
    "habitat" (the background it is usually seen on). They speak of "it", so no class name takes part."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds}")
    bags = {}
    for k, shape in enumerate(SHAPES):
        sentences = []
        if "appearance" in kinds:
            sentences += [f"it is {SUPERCLASS_PHRASES[SUPERCLASSES[k // 4]]}", APPEARANCE[shape]]
        if "habitat" in kinds:
            sentences.append(f"it is usually seen {DOMAIN_PHRASES[HABITATS[shape]][0]}")
        bags[shape] = [articles(s) for s in sentences]
    return bags


def habitat_pictures(world, n: int, strength: float, seed: int):
    """``n`` pictures of shapes drawn uniformly, each on its class's habitat with probability ``strength`` (the
    prior that habitat descriptions speak of). Returns (images, shape index per picture, factor table)."""
    factors = with_habitats(world.sample_factors(n, seed=seed), strength, seed=seed)
    return world.render(factors), factors["shape"].to_numpy(), factors


@torch.no_grad()
def class_weights(model, vocab, bags: dict[str, list[str]], classes, check: bool = True) -> torch.Tensor:
    """(len(classes), dim): each class's normalised mean description embedding (averaging). With ``check``, a word
    outside the vocabulary is a one-line error; ``check=False`` lets it read as ``<unk>``."""
    model.eval()
    device = next(model.parameters()).device
    weights = []
    for c in classes:
        if check:
            check_texts(model, vocab, bags[c])
        ids = vocab.encode(bags[c], model.hparams["length"]).to(device)
        weights.append(F.normalize(model.encode_text(ids).mean(0), dim=0).cpu())
    return torch.stack(weights)


def bag_loss(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, positive: torch.Tensor,
             logit_scale: torch.Tensor | float) -> torch.Tensor:
    """The bag-level contrastive loss: (N, d) normalised pictures, (N, d) normalised descriptions, and the (N, N)
    mask ``positive[i, j]``: description j is in the bag of picture i's class. Mean of the two directions."""
    if image_embeddings.shape != text_embeddings.shape or positive.shape != (len(image_embeddings),) * 2:
        raise ValueError(f"pictures {tuple(image_embeddings.shape)} and descriptions {tuple(text_embeddings.shape)} "
                         f"must be matching rows, and the positive mask (N, N), got {tuple(positive.shape)}")
    if not float(logit_scale) > 0:
        raise ValueError(f"logit_scale is s = exp(t) and must be > 0, got {float(logit_scale)}")
    if not positive.diagonal().all():
        raise ValueError("each picture's own description must be a positive (the mask's diagonal)")
    logits = logit_scale * image_embeddings @ text_embeddings.T
    positive = positive.float()
    to_text = -(positive * logits.log_softmax(1)).sum(1) / positive.sum(1)
    to_image = -(positive * logits.log_softmax(0)).sum(0) / positive.sum(0)
    return (to_text.mean() + to_image.mean()) / 2


def adapt(model, vocab, features: torch.Tensor, labels, bags: dict[str, list[str]], steps: int = 500,
          lr: float = 1e-2, batch_size: int = 128, seed: int = 0, progress: bool = True):
    """A copy of mini-CLIP fine-tuned with :func:`bag_loss` on frozen image ``features`` (N, width: the image
    encoder's output) of classes ``labels`` (shape indices: the seen classes), each paired at each step with a
    random description from its class's bag. Returns (adapted model, loss per step); ``model`` is unchanged."""
    labels = torch.as_tensor(np.asarray(labels))
    if len(features) != len(labels) or len(labels) == 0:
        raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) must be matching, non-empty rows")
    adapted = copy.deepcopy(model).cpu().eval().requires_grad_(False)
    trained = [*adapted.text_encoder.parameters(), *adapted.text_projection.parameters(),
               *adapted.image_projection.parameters()]
    for p in trained:
        p.requires_grad_(True)
    shapes = sorted(set(labels.tolist()))
    sentences = sorted({s for k in shapes for s in bags[SHAPES[k]]})  # each distinct description once
    in_bag = torch.tensor([[s in bags.get(SHAPES[k], ()) for s in sentences] for k in range(len(SHAPES))])
    size = in_bag.sum(1)  # descriptions per class; each class's own, by index, in the rows of `own`
    own = torch.stack([F.pad(row.nonzero()[:, 0], (0, len(sentences) - int(n))) for row, n in zip(in_bag, size)])
    ids = vocab.encode(sentences, adapted.hparams["length"])
    optimiser = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc="adapt", disable=not progress, mininterval=1.0, leave=False):
        rows = torch.randint(len(labels), (min(batch_size, len(labels)),), generator=generator)
        y = labels[rows]
        draw = own[y, (torch.rand(len(y), generator=generator) * size[y]).long()]  # one of its class's bag
        text = adapted.encode_text(ids)[draw]  # every distinct description once, then each picture's draw
        image = F.normalize(adapted.image_projection(features[rows]), dim=1)
        loss = bag_loss(image, text, in_bag[y][:, draw], adapted.logit_scale().detach())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return adapted.eval().requires_grad_(False), losses


@torch.no_grad()
def accuracy(model, features: torch.Tensor, labels, weights: torch.Tensor, classes) -> float:
    """Accuracy (%) of classifying frozen image ``features`` among ``classes`` (shape indices) by ``weights``."""
    model.eval()
    device = next(model.parameters()).device
    image = F.normalize(model.image_projection(features.to(device)), dim=1).cpu()
    predicted = torch.as_tensor(list(classes))[(image @ weights.T).argmax(1)]
    return 100 * (predicted == torch.as_tensor(np.asarray(labels))).float().mean().item()
