"""Unsupervised pretraining, then empirical risk minimisation: the two-stage learner of the theory.

Ge, Tang, Fan & Jin, "On the Provable Advantage of Unsupervised Pretraining", ICLR 2024.
Taught in notebooks/10_theory/01_provable_pretraining.ipynb.

Stage 1, maximum likelihood on m unlabelled points, of a latent-variable model
p_phi(x) = sum_z p_phi(x | z) p(z):

    phi_hat = argmax_phi  sum_{i=1..m} log p_phi(x_i)            (here: a Gaussian mixture, fitted by EM)

Stage 2, ERM on n labelled points, of a predictor psi on the representation phi_hat(x) = p_phi_hat(z | x):

    psi_hat = argmin_psi  sum_{j=1..n} loss(psi(phi_hat(x_j)), y_j)   (here: logistic regression on the posteriors)

The paper's bound: the excess risk of the two stages is O~(sqrt(C_Phi / m) + sqrt(C_Psi / n)), against
O~(sqrt(C_{Phi o Psi} / n)) for supervised learning from the n labels alone. When m >> n and the predictor class
Psi is small (here: K posteriors -> classes), pretraining needs far fewer labels. The bound needs the model to
be *informative*: matching p(x) must pin down the representation up to what Psi can absorb. When the label
lives inside the components, p(x) carries nothing about it and no amount of unlabelled data helps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.neural_network import MLPClassifier

LEARNERS = ("pretrain + ERM", "supervised logistic", "supervised MLP")


class _Constant:
    """What ERM returns when the labelled sample has a single class: that class."""

    def __init__(self, label: int):
        self.label = label

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.label)


def _classifier(model, x: np.ndarray, y: np.ndarray):
    return _Constant(int(y[0])) if len(np.unique(y)) < 2 else model.fit(x, y)


class PretrainThenERM:
    """Stage 1 (``pretrain``): a Gaussian mixture by EM on unlabelled x. Stage 2 (``fit``): logistic regression
    on its posteriors p(z | x). ``C`` is the inverse regularisation of stage 2."""

    def __init__(self, n_components: int, seed: int = 0, C: float = 10.0, covariance_type: str = "spherical"):
        self.n_components, self.seed, self.C, self.covariance_type = n_components, seed, C, covariance_type
        self.mixture = None
        self.head = None

    def pretrain(self, x_unlabelled: np.ndarray) -> PretrainThenERM:
        if len(x_unlabelled) < self.n_components:
            raise ValueError(f"stage 1 needs at least as many unlabelled points as components ({self.n_components}), "
                             f"got {len(x_unlabelled)}")
        self.mixture = GaussianMixture(self.n_components, covariance_type=self.covariance_type, n_init=3,
                                       random_state=self.seed).fit(x_unlabelled)
        return self

    def represent(self, x: np.ndarray) -> np.ndarray:
        """phi_hat(x) = p_phi_hat(z | x), one column per component."""
        if self.mixture is None:
            raise ValueError("call pretrain(x_unlabelled) before using the representation")
        return self.mixture.predict_proba(x)

    def fit(self, x: np.ndarray, y: np.ndarray) -> PretrainThenERM:
        self.head = _classifier(LogisticRegression(C=self.C, max_iter=1000), self.represent(x), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.head is None:
            raise ValueError("call fit(x, y) on labelled data before predicting")
        return self.head.predict(self.represent(x))


def supervised(x: np.ndarray, y: np.ndarray, kind: str = "logistic", seed: int = 0):
    """A learner that sees only the n labelled points: logistic regression or a one-hidden-layer MLP on raw x."""
    if kind == "logistic":
        return _classifier(LogisticRegression(C=1.0, max_iter=1000), x, y)
    if kind == "mlp":
        return _classifier(MLPClassifier((64,), alpha=1e-3, solver="lbfgs", max_iter=1000, random_state=seed), x, y)
    raise ValueError(f"unknown supervised learner {kind!r}; choose 'logistic' or 'mlp'")


def error_rate(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x) != y).mean())


def _seed(*keys: int) -> int:
    """One seed per purpose: distinct keys never share a random stream (unlike seed + 1, seed + 2, ...)."""
    return int(np.random.SeedSequence([abs(int(k)) for k in keys]).generate_state(1)[0])


def risk_curves(mixture, ns, m: int, draws: int = 5, test: int = 5000, seed: int = 0,
                learners=LEARNERS) -> pd.DataFrame:
    """Test error and excess risk (error - Bayes error, in points) of each learner at each number of labels n.

    One mixture, one pretraining on m fresh unlabelled points, then ``draws`` independent labelled samples per n.
    Columns: n, learner, draw, error (%), excess (pts).
    """
    unknown = [name for name in learners if name not in LEARNERS]
    if unknown:
        raise ValueError(f"unknown learners {unknown}; choose from: {', '.join(LEARNERS)}")
    x_test, _, y_test = mixture.sample(test, seed=_seed(seed, 1))
    bayes = 100 * float((mixture.bayes_predict(x_test) != y_test).mean())
    pretrained = None
    if "pretrain + ERM" in learners:
        pretrained = PretrainThenERM(mixture.n_components, seed=seed).pretrain(mixture.sample(m, seed=_seed(seed, 2, m))[0])
    rows = []
    for n in ns:
        for draw in range(draws):
            x, _, y = mixture.sample(n, seed=_seed(seed, 3, n, draw))
            for name in learners:
                if name == "pretrain + ERM":
                    model = pretrained.fit(x, y)
                else:
                    model = supervised(x, y, kind=name.split()[-1].lower(), seed=_seed(seed, 4, n, draw))
                error = 100 * error_rate(model, x_test, y_test)
                rows.append({"n": n, "learner": name, "draw": draw, "error": error, "excess": error - bayes})
    table = pd.DataFrame(rows)
    table.attrs["bayes"] = bayes
    return table
