"""Few-shot class-incremental learning (FSCIL) and a bag of tricks for it.

"A Bag of Tricks for Few-Shot Class-Incremental Learning" (2024): eight tricks in three groups, stability,
adaptability and training. Taught in ``notebooks/03_few_shot/04_fscil_tricks.ipynb``.

FSCIL: a *base session* with many labelled pictures of the base classes, then sessions t = 1..T that each bring a
few new classes with K shots each (here 4 sessions of 2 novel shapes, 5 shots each). After every session the model
must classify the test pictures of *every class seen so far*; the base data is gone. Two failures pull against each
other: forgetting the old classes (stability) and not learning the new ones (adaptability).

* **Fine-tuning** (the baseline): after each session, train the whole network with cross-entropy over the classes
  seen so far, on the session's shots alone,

      L_t = -(1/|S_t|) sum_{(x, y) in S_t} log softmax_{c in C_{<=t}}( W f(x) )_y .

  Ten pictures of two new classes pull every weight towards them: the base classes are forgotten.
The paper's baseline is the frozen backbone with prototypes below; here we start one step earlier, from fine-tuning,
and add three pieces in turn.

* **Stability: a frozen backbone and a prototype classifier.** f is trained in the base session and never again.
  Each class keeps a prototype, the mean of its normalised features (all base pictures for a base class, the K shots
  for a new one), stored once; a picture goes to the nearest prototype in cosine,

      m_c = mean_{x in S_c} f(x) / ||f(x)||,       y_hat = argmax_{c in C_{<=t}} cos(f(x), m_c).

  Nothing the base session learned can be overwritten; a new class costs one vector. (Base accuracy still drops as
  classes are added, by confusion with the new prototypes.)
* **Training trick: pseudo-classes from rotations** (the paper's pseudo-class stability trick and its rotation
  training trick, merged). With a frozen backbone, FSCIL accuracy is the *transfer* of the base session's features.
  The base session trains on each picture's four 90-degree rotations, each rotation of each class its own class
  (4 x 8 = 32 pseudo-classes, as in SLA, chapter 1),

      L_0 = -(1/4N) sum_i sum_{r=0..3} log softmax( W' f(rot_r(x_i)) )_{4 y_i + r} ,

  so the features must keep *how* a shape is oriented as well as which it is: more of what the new classes need.
* **Adaptability: incremental sub-network tuning.** In each new session, fine-tune only the last block of f, at a
  small learning rate, with a cosine classifier over the stored prototypes (scale s),

      L_t = -(1/|S_t|) sum_{(x, y) in S_t} log softmax_{c in C_{<=t}}( s cos(f(x), m_c) )_y ,

  then recompute the new classes' prototypes. (The paper selects and tunes a sub-network; here the sub-network is
  the last block, as the curriculum simplifies.)

The paper's other tricks (supervised contrastive loss and pre-assigned prototypes in the base session, SSL
pre-training, a bigger encoder) are not built here.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import BASE_SHAPES, NOVEL_SHAPES
from ..data.shapes import SHAPES
from ..evaluate import embed
from ..views import all_rotations

# per scale: shots per new class, how many draws of the shots to average, the fine-tuning baseline's learning rates
# (the best is kept) and steps, and the sub-network tuning of each new session
PRESETS = {
    "smoke": dict(shots=5, per_session=2, n_novel_pool=400, n_draws=2, finetune_steps=30,
                  finetune_lrs=(1e-5, 1e-4, 1e-3), tune_steps=20, tune_lr=1e-4, tune_scale=16.0),
    "cpu": dict(shots=5, per_session=2, n_novel_pool=800, n_draws=3, finetune_steps=30,
                finetune_lrs=(1e-5, 1e-4, 1e-3), tune_steps=20, tune_lr=1e-3, tune_scale=32.0),
}
PRESETS["gpu"] = PRESETS["cpu"]


def session_classes(base=BASE_SHAPES, novel=NOVEL_SHAPES, per_session: int = 2) -> list[list[int]]:
    """The class schedule, as shape indices: session 0 holds the base classes, then ``per_session`` novel classes
    per session, in the order given."""
    bad = [s for s in (*base, *novel) if s not in SHAPES]
    if bad:
        raise ValueError(f"unknown shapes {bad}; valid: {', '.join(SHAPES)}")
    if set(base) & set(novel):
        raise ValueError(f"base and novel classes overlap: {sorted(set(base) & set(novel))}")
    if per_session < 1 or len(novel) % per_session:
        raise ValueError(f"per_session must divide the {len(novel)} novel classes, got {per_session}")
    novel_k = [SHAPES.index(s) for s in novel]
    return [[SHAPES.index(s) for s in base]] + [novel_k[i:i + per_session] for i in range(0, len(novel_k), per_session)]


def draw_shots(labels, classes, shots: int, seed: int) -> dict[int, np.ndarray]:
    """Seeded: ``shots`` distinct indices of each class in ``classes`` (the few labelled pictures of its session)."""
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    rng = np.random.default_rng([seed, 34])
    out = {}
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) < shots:
            raise ValueError(f"class {c} has {len(members)} pictures, fewer than shots={shots}")
        out[int(c)] = rng.choice(members, shots, replace=False)
    return out


class PseudoClasses(nn.Module):
    """The base session with rotation pseudo-classes: every rotation of every class is a class of its own
    (labels 4 y + r), over all four rotations of each picture."""

    num_rotations = 4

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, self.num_rotations * num_classes)
        self.hparams = {"num_classes": num_classes, "num_rotations": self.num_rotations}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def loss(self, batch):
        images, labels = batch
        views, r = all_rotations(images)  # [all rot0, all rot90, ...]
        targets = self.num_rotations * labels.repeat(self.num_rotations) + r
        logits = self(views)
        return F.cross_entropy(logits, targets), {"acc": (logits.argmax(1) == targets).float().mean()}


def _accuracies(pred: np.ndarray, truth: np.ndarray, base: list[int]) -> dict[str, float]:
    is_base = np.isin(truth, base)
    right = pred == truth
    return {"accuracy (%)": 100 * right.mean(), "base (%)": 100 * right[is_base].mean(),
            "novel (%)": 100 * right[~is_base].mean() if (~is_base).any() else float("nan")}


def _table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows).set_index("session")


def _features(backbone, images: torch.Tensor) -> torch.Tensor:
    """L2-normalised features (``embed`` runs without gradients, in eval mode)."""
    return F.normalize(embed(backbone, images), dim=1)


def prototype_sessions(backbone: nn.Module, base, shots_data, shots: dict[int, np.ndarray], test,
                       sessions: list[list[int]], tune_steps: int = 0, tune_lr: float = 1e-4,
                       tune_scale: float = 16.0) -> pd.DataFrame:
    """Stability: a frozen ``backbone`` and a cosine prototype classifier, session by session. Base prototypes
    come from the ``base`` pictures, a new class's from its ``shots`` (indices into ``shots_data``). With
    ``tune_steps`` > 0, each new session first tunes the last block (adaptability, on a copy). Returns one row per
    session: accuracy on the test pictures of every class seen so far, and on its base and novel part."""
    backbone = copy.deepcopy(backbone).eval()
    base_features = _features(backbone, base.images)
    prototypes = {c: base_features[base.labels.cpu() == c].mean(0) for c in sessions[0]}
    truth_all = test.labels.cpu().numpy()
    test_features = _features(backbone, test.images)  # again only after the backbone is tuned
    seen, rows = [], []
    for t, new in enumerate(sessions):
        seen += new
        if t > 0:
            for c in new:
                prototypes[c] = _features(backbone, shots_data.images[shots[c]]).mean(0)
            if tune_steps:
                _tune_last_block(backbone, shots_data, [shots[c] for c in new], seen, prototypes, tune_steps, tune_lr,
                                 tune_scale)
                for c in new:
                    prototypes[c] = _features(backbone, shots_data.images[shots[c]]).mean(0)
                test_features = _features(backbone, test.images)
        keep = np.isin(truth_all, seen)
        features = test_features[torch.as_tensor(keep)]
        weights = torch.stack([prototypes[c] for c in seen])
        pred = np.asarray(seen)[(features @ F.normalize(weights, dim=1).T).argmax(1).numpy()]
        rows.append({"session": t, "classes": len(seen), **_accuracies(pred, truth_all[keep], sessions[0])})
    return _table(rows)


def _tune_last_block(backbone, shots_data, picks, seen, prototypes, steps, lr, scale) -> None:
    """Adaptability: ``steps`` SGD steps on the last block alone (batch norm statistics frozen), cosine
    classifier over the stored prototypes of every class seen so far."""
    idx = np.concatenate(picks)
    device = next(backbone.parameters()).device
    images = shots_data.images[idx].to(device)
    targets = _positions(shots_data.labels[idx], seen).to(device)
    weights = F.normalize(torch.stack([prototypes[c] for c in seen]), dim=1).to(device)
    last = backbone.blocks[-1]
    flags = [p.requires_grad for p in backbone.parameters()]
    for p in backbone.parameters():
        p.requires_grad_(False)
    for p in last.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(last.parameters(), lr=lr, momentum=0.9)
    backbone.eval()  # batch norm keeps the base session's statistics
    with torch.enable_grad():
        for _ in range(steps):
            logits = scale * F.normalize(backbone(images), dim=1) @ weights.T
            loss = F.cross_entropy(logits, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for p, flag in zip(backbone.parameters(), flags):
        p.requires_grad_(flag)


def finetune_sessions(model: nn.Module, shots_data, shots: dict[int, np.ndarray], test, sessions: list[list[int]],
                      steps: int = 30, lr: float = 1e-4) -> pd.DataFrame:
    """The baseline: a copy of ``model`` (a backbone with a linear ``head`` over every class) is fine-tuned whole,
    after each new session, with cross-entropy over the classes seen so far on that session's shots (Adam,
    ``steps`` full-batch steps, so no randomness). Batch norm keeps the base session's statistics: ten pictures
    would otherwise replace them, and the base classes would be forgotten for that reason alone. Same rows as
    :func:`prototype_sessions`; prediction is the arg-max over the seen classes' logits."""
    model = copy.deepcopy(model).eval()  # eval mode throughout: batch norm statistics stay as stored
    device = next(model.parameters()).device
    truth_all = test.labels.cpu().numpy()
    seen, rows = [], []
    for t, new in enumerate(sessions):
        seen += new
        seen_t = torch.as_tensor(seen, device=device)
        if t > 0:
            idx = np.concatenate([shots[c] for c in new])
            images = shots_data.images[idx].to(device)
            targets = _positions(shots_data.labels[idx], seen).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            with torch.enable_grad():
                for _ in range(steps):
                    loss = F.cross_entropy(model(images)[:, seen_t], targets)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        keep = np.isin(truth_all, seen)
        logits = embed(model, test.images[torch.as_tensor(keep)])[:, seen_t.cpu()]
        pred = np.asarray(seen)[logits.argmax(1).cpu().numpy()]
        rows.append({"session": t, "classes": len(seen), **_accuracies(pred, truth_all[keep], sessions[0])})
    return _table(rows)


def _positions(labels, seen: list[int]) -> torch.Tensor:
    """Each label's position in ``seen`` (the classifier's column); a label outside ``seen`` is an error."""
    labels = torch.as_tensor(labels).cpu()
    seen_t = torch.as_tensor(seen)
    match = labels[:, None] == seen_t[None]
    if not match.any(1).all():
        raise ValueError(f"labels {sorted(set(labels[~match.any(1)].tolist()))} are not among the seen classes {seen}")
    return match.float().argmax(1)


def forgetting(table: pd.DataFrame) -> float:
    """Base-class forgetting (pts): base accuracy after the base session minus after the last session."""
    return float(table["base (%)"].iloc[0] - table["base (%)"].iloc[-1])
