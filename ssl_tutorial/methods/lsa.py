"""Training on web-noisy labels: the small-loss and linear-separation detectors, PLS weights, and LSA.

Albert, Valmadre, Arazo, Krishna, O'Connor & McGuinness, "An accurate detection is not all you need to combat
label noise in web-noisy datasets", ECCV 2024 (LSA). Taught in notebooks/04_discovery/03_web_noise.ipynb.

Web-noisy data mixes clean samples, in-distribution (ID) samples with a wrong label, and out-of-distribution (OOD)
images that belong to no class at all. Each training epoch ends by flagging samples as noisy, with one of two
detectors:

* **small loss** (``small_loss_noisy``): fit a 2-component Gaussian mixture to the per-sample cross-entropy
  against the given labels, min-max normalised; a sample is noisy when the posterior of the high-loss component is
  above a threshold (0.95 in the official code). Noisy labels are hard to fit, so they keep a high loss for long.
* **linear separation** (``linear_separation_noisy``): a logistic regression (no penalty, balanced classes) on the
  network's own L2-normalised, standardised features of an early layer, trained to reproduce the small-loss flags,
  then used to predict them. It finds the hyperplane that separates noisy from clean in feature space, which is
  near-perfect for OOD images. The paper finds that it also throws away clean samples that small loss keeps, and
  that its decisions correlate weakly with small loss's, so LSA **alternates** the two, one per epoch.

Every flagged sample then gets a guessed label, the network's own prediction sharpened, p^gamma / sum p^gamma with
gamma = 2 (``sharpen``), and a weight (``pls_weights``): a second 2-component mixture on the flagged samples'
cross-entropy against their guessed labels, and the posterior of its low-loss component. So an OOD image, whose
guess stays unsure, ends with a weight near 0, and an ID-noisy image whose guess is confident keeps a weight near 1.

``train_noisy`` is the epoch loop: before each epoch (after a warm-up), the detector of that epoch flags samples,
and the epoch trains on the weighted soft cross-entropy

    L = sum_i w_i * CE(q_i, softmax(f(x_i))) / sum_i w_i,   q_i = one-hot(given label)     if i is not flagged,
                                                            q_i = sharpen(p_i), w_i = PLS  if i is flagged.

``METHODS`` names the runs the notebook compares: plain cross-entropy, small loss every epoch, linear separation
every epoch, and LSA's alternation. The official code adds mixup and a supervised contrastive term, and starts from a
SimCLR network; the notebook leaves all three out (it says so).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm.auto import tqdm


def _as_vector(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) < 2 or not np.isfinite(values).all():
        raise ValueError(f"{name} must be a 1-D array of at least 2 finite numbers, got shape {values.shape}")
    return values


def _high_component_posterior(values: np.ndarray, seed: int) -> np.ndarray:
    """The posterior of the component with the larger mean, of a 2-component mixture fitted to min-max normalised
    values (the official code's settings: 10 EM iterations, tolerance 1e-2, covariance floor 5e-4)."""
    span = values.max() - values.min()
    scaled = (values - values.min()) / (span if span > 0 else 1.0)
    mixture = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed).fit(scaled[:, None])
    return mixture.predict_proba(scaled[:, None])[:, int(np.argmax(mixture.means_.ravel()))]


def small_loss_noisy(losses, threshold: float = 0.95, seed: int = 0) -> np.ndarray:
    """True where a sample's loss belongs to the high-loss component with posterior above ``threshold``."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold is a posterior probability in (0, 1), got {threshold}")
    return _high_component_posterior(_as_vector(losses, "losses"), seed) > threshold


def linear_separation_scores(features, noisy_seeds, seed: int = 0, C: float = np.inf) -> np.ndarray:
    """Each sample's score under a hyperplane, w . x + b (> 0: noisy side; proportional to the signed distance):
    a logistic regression on standardised, L2-normalised ``features`` (n, d), trained to reproduce ``noisy_seeds``
    (n,) booleans, the small-loss flags in the official code. ``C`` is the inverse L2 penalty: the official code has none
    (``np.inf``); with few samples and seeds that cannot all be separated, a penalty keeps the hyperplane on the
    direction that does separate."""
    features = np.asarray(features, dtype=float)
    noisy_seeds = np.asarray(noisy_seeds, dtype=bool)
    if features.ndim != 2 or len(features) != len(noisy_seeds):
        raise ValueError(f"features must be (n, d) with one seed flag per row; got {features.shape} and "
                         f"{noisy_seeds.shape}")
    if noisy_seeds.all() or not noisy_seeds.any():
        raise ValueError("the seeds must flag some samples as noisy and some as clean, or there is nothing to separate")
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    unit = StandardScaler().fit_transform(unit)
    separator = LogisticRegression(C=C, class_weight="balanced", max_iter=1000, random_state=seed)
    return separator.fit(unit, noisy_seeds).decision_function(unit)


def linear_separation_noisy(features, noisy_seeds, seed: int = 0, C: float = np.inf) -> np.ndarray:
    """The noisy flags predicted by the hyperplane of :func:`linear_separation_scores`."""
    return linear_separation_scores(features, noisy_seeds, seed, C) > 0


def sharpen(probabilities, gamma: float = 2.0) -> np.ndarray:
    """p^gamma / sum p^gamma per row: a guessed label, more confident than the prediction it comes from."""
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or (p < 0).any():
        raise ValueError(f"probabilities must be a non-negative (n, classes) array, got shape {p.shape}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    powered = p ** gamma
    return powered / np.maximum(powered.sum(1, keepdims=True), 1e-12)


def pls_weights(probabilities, guessed, seed: int = 0) -> np.ndarray:
    """The weight of each flagged sample: the posterior of the low-loss component of a 2-component mixture on the
    cross-entropy between its prediction ``probabilities`` (n, classes) and its guessed label ``guessed``
    (n, classes). Unsure guesses (OOD images) get weights near 0."""
    p, q = np.asarray(probabilities, dtype=float), np.asarray(guessed, dtype=float)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"probabilities and guessed labels must both be (n, classes), got {p.shape} and {q.shape}")
    pseudo_loss = -(q * np.log(np.clip(p, 1e-12, None))).sum(1)
    return 1.0 - _high_component_posterior(_as_vector(pseudo_loss, "the pseudo-loss"), seed)


# -- training on web-noisy labels ---------------------------------------------------------------------------------
METHODS = {  # run name -> the detector of each epoch after the warm-up (cycled)
    "cross-entropy": (),
    "small loss": ("small loss",),
    "linear separation": ("linear",),
    "LSA (alternating)": ("linear", "small loss"),
}


class NoisyClassifier(nn.Module):
    """A backbone (a ConvNet: ``features(x)`` gives every block's map) with a linear classifier on top."""

    def __init__(self, backbone: nn.Module, n_classes: int, layer: int = 1):
        super().__init__()
        self.backbone, self.head, self.layer = backbone, nn.Linear(backbone.out_dim, n_classes), layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @torch.no_grad()
    def inspect(self, images: torch.Tensor, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """The class probabilities (n, classes) and the early-layer features (n, channels: block ``layer``,
        average-pooled) of ``images``, from one forward pass in eval mode."""
        was_training = self.training
        self.eval()
        probs, feats = [], []
        device = next(self.parameters()).device
        for chunk in images.split(batch_size):
            maps = self.backbone.features(chunk.to(device))
            probs.append(self.head(maps[-1].mean(dim=(2, 3))).softmax(1).cpu())
            feats.append(maps[self.layer].mean(dim=(2, 3)).cpu())
        self.train(was_training)
        return torch.cat(probs).double().numpy(), torch.cat(feats).double().numpy()


def given_label_losses(probabilities: np.ndarray, labels) -> np.ndarray:
    """The cross-entropy of each sample against its given label."""
    labels = np.asarray(labels)
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))


def detect(detector: str, probabilities: np.ndarray, features: np.ndarray, labels, seed: int = 0) -> np.ndarray:
    """The noisy flags of one epoch: ``"small loss"`` on the given-label losses, or ``"linear"`` (a hyperplane in
    feature space trained on the small-loss flags)."""
    flags = small_loss_noisy(given_label_losses(probabilities, labels), seed=seed)
    if detector == "small loss":
        return flags
    if detector != "linear":
        raise ValueError(f"unknown detector {detector!r}; choose 'small loss' or 'linear'")
    if flags.all() or not flags.any():  # nothing to separate: keep the small-loss answer
        return flags
    return linear_separation_noisy(features, flags, seed)


def relabel(probabilities: np.ndarray, labels, flags: np.ndarray, gamma: float = 2.0,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The soft targets q (n, classes) and weights w (n,) of an epoch: one-hot given labels with weight 1, and for
    the flagged samples the sharpened prediction with its PLS weight. A single flagged sample has no mixture to
    weigh it, and gets weight 0 (the official code then leaves every weight at 1)."""
    labels = np.asarray(labels)
    targets = np.eye(probabilities.shape[1])[labels]
    weights = np.ones(len(labels))
    if flags.sum() >= 2:
        guessed = sharpen(probabilities[flags], gamma)
        targets[flags] = guessed
        weights[flags] = pls_weights(probabilities[flags], guessed, seed)
    elif flags.any():
        weights[flags] = 0.0
    return torch.from_numpy(targets).float(), torch.from_numpy(weights).float()


def train_noisy(net: NoisyClassifier, images: torch.Tensor, labels, *, method: str, epochs: int, warmup: int = 0,
                batch_size: int = 64, lr: float = 2e-3, seed: int = 0, evaluate=None,
                progress: bool = True) -> dict:
    """Train ``net`` in place for ``epochs`` epochs on ``images`` with the given (noisy) ``labels``.

    The first ``warmup`` epochs are plain cross-entropy; after them every epoch starts with the detector of
    ``METHODS[method]`` (cycled), then trains on the weighted soft cross-entropy of :func:`relabel`. Returns the
    history: per epoch, the detector used, the flags (a boolean array, or None) and ``evaluate(net)`` (a dict).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    device = next(net.parameters()).device
    optimizer = torch.optim.Adam(net.parameters(), lr)
    generator = torch.Generator().manual_seed(seed)
    history = {"epoch": [], "detector": [], "flags": [], "evals": []}
    cycle = METHODS[method]
    targets = F.one_hot(torch.from_numpy(labels).long(), net.head.out_features).float()  # no detector yet
    weights = torch.ones(len(labels))
    for epoch in tqdm(range(epochs), desc=method, disable=not progress, leave=False):
        detector, flags = None, None
        if cycle and epoch >= warmup:
            detector = cycle[(epoch - warmup) % len(cycle)]
            probabilities, features = net.inspect(images)
            flags = detect(detector, probabilities, features, labels, seed)
            targets, weights = relabel(probabilities, labels, flags, seed=seed)
        net.train()
        for index in torch.randperm(len(labels), generator=generator).split(batch_size):
            log_p = F.log_softmax(net(images[index].to(device)), 1)
            w = weights[index].to(device)
            loss = (-(targets[index].to(device) * log_p).sum(1) * w).sum() / w.sum().clamp_min(1e-6)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        net.eval()
        history["epoch"].append(epoch + 1)
        history["detector"].append(detector)
        history["flags"].append(flags)
        history["evals"].append(evaluate(net) if evaluate is not None else {})
    return history


def branch(net: nn.Module) -> nn.Module:
    """An independent copy of ``net``: every method continues from the same warmed-up network."""
    return copy.deepcopy(net)
