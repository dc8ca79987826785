"""CLUTR: a task manifold learned without rewards, then a regret-driven curriculum over it.

Azad, Gur, Emhoff, Alexis, Faust, Abbeel & Stoica, "CLUTR: Curriculum Learning via Unsupervised Task
Representation Learning", ICML 2023. Taught in notebooks/10_theory/06_clutr.ipynb.

**Stage 1, the task manifold.** A VAE (:class:`TaskVAE`) reads a task tau (its parameter vector: wall segments,
start and goal, ``gridworld.param_sizes``) and is trained on randomly generated tasks alone, with no agent and no reward:

    L_VAE = - E_{q(z|tau)} log p(tau | z)  +  beta * KL( q(z|tau) || N(0, I) )

It is trained once and then frozen, so the space the teacher searches no longer moves while the student learns:
the paper's fix for the non-stationarity of PAIRED, whose teacher learns the task space and the curriculum at once.

**Stage 2, the curriculum.** A teacher proposes latent codes z, the decoder turns them into tasks tau(z), and the
teacher is rewarded by the student's **regret** on them (PAIRED: antagonist return minus protagonist return).
Here the antagonist is the exact optimum, so the regret is

    REGRET(tau) = R_opt(tau) - R_student(tau),   R = 1 - 0.9 * steps / max_steps on reaching the goal, else 0

with R_opt from the breadth-first-search shortest path (:func:`ssl_tutorial.data.gridworld.optimal_return`).
The paper's teacher is an RL agent that outputs a latent code in one step; this one is the simplification the
curriculum allows, a search over z: the cross-entropy method (:func:`cem_search`) or best-of-M prior samples
(:func:`propose_tasks`). The student, the batched environment and :func:`rollout` are in
:mod:`ssl_tutorial.methods.a2c`: a small MLP policy trained by advantage actor-critic on fully observed grids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset
from ..data.gridworld import Task, is_valid, param_sizes, params_task, shortest_paths
from .a2c import rollout, task_planes


# ----------------------------------------------------------------------------- the tasks as data
def task_dataset(params, size: int = 7, segments: int = 5) -> Dataset:
    """Parameter vectors as a :class:`Dataset` that ``fit`` can train the VAE on: images = the tasks'
    :func:`task_planes` (to look at), labels = the (N, n_params) parameters (what the VAE reads)."""
    params = np.asarray(params)
    tasks = [params_task(p, size, segments) for p in params]
    return Dataset(task_planes(tasks), torch.from_numpy(params).long(), ["task"], name="segment-world tasks")


# ----------------------------------------------------------------------------- stage 1: the task VAE
class TaskVAE(nn.Module):
    """A VAE over task parameter vectors (:func:`gridworld.param_sizes`): each parameter is one categorical.

        encoder: one-hot parameters -> MLP -> (mu, log sigma^2);   decoder: z -> MLP -> logits of every parameter
        -log p(tau | z) = sum_j CE(logits_j, tau_j),   the fields of segments that are off left out

    The paper's VAE is recurrent, an LSTM over the task's parameter sequence; an MLP is enough for our fixed-length
    vector (19 parameters with 3 segments) and trains within the smoke budget. (A GRU VAE over the random-cell
    world's wall tokens, ``gridworld.encode``, reached 0.80 held-out cell accuracy after 1 500 steps, below the
    0.88 of an empty grid: independent random cells leave nothing to compress.)
    """

    def __init__(self, size: int = 7, segments: int = 5, latent_dim: int = 16, hidden: int = 256,
                 beta: float = 0.1):
        super().__init__()
        if latent_dim < 1 or hidden < 1:
            raise ValueError(f"latent_dim and hidden must be positive, got {latent_dim} and {hidden}")
        self.size, self.segments, self.latent_dim, self.beta = size, segments, latent_dim, beta
        self.sizes = param_sizes(size, segments)
        width = sum(self.sizes)
        self.encoder = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, width))
        self.hparams = {"size": size, "segments": segments, "latent_dim": latent_dim, "hidden": hidden,
                        "beta": beta}
        # every parameter's logits gathered into one (n_params, largest k) block, padded by a -inf column
        offsets = np.cumsum([0] + self.sizes[:-1])
        k_max = max(self.sizes)
        index = [[o + v if v < k else width for v in range(k_max)] for o, k in zip(offsets, self.sizes)]
        self.register_buffer("offsets", torch.tensor(offsets), persistent=False)
        self.register_buffer("index", torch.tensor(index), persistent=False)

    def _check(self, params: torch.Tensor) -> None:
        if params.ndim != 2 or params.shape[1] != len(self.sizes):
            raise ValueError(f"task parameters must have shape (N, {len(self.sizes)}), got {tuple(params.shape)}")
        if (params < 0).any() or (params >= torch.tensor(self.sizes, device=params.device)).any():
            raise ValueError(f"a task parameter is out of range; the ranges are {self.sizes} (gridworld.param_sizes)")

    def one_hot(self, params: torch.Tensor) -> torch.Tensor:
        """The parameters' one-hot codes, concatenated: (N, sum of param_sizes)."""
        x = torch.zeros(len(params), sum(self.sizes), device=params.device)
        return x.scatter_(1, params.long() + self.offsets, 1.0)

    def encode(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, (N, latent_dim) each."""
        self._check(params)
        mu, logvar = self.encoder(self.one_hot(params)).chunk(2, dim=1)
        return mu, logvar.clamp(-8, 8)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of every parameter's values, (N, n_params, largest k); -inf beyond a parameter's own k."""
        flat = self.decoder(z)
        return torch.cat([flat, torch.full_like(flat[:, :1], float("-inf"))], 1)[:, self.index]

    def loss(self, batch):
        params = batch[1]
        mu, logvar = self.encode(params)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        ce = F.cross_entropy(self.logits(z).transpose(1, 2), params.long(), reduction="none")  # (N, n_params)
        on = params[:, 0:5 * self.segments:5].repeat_interleave(5, 1).float()
        on[:, 0::5] = 1  # the on flag itself always counts
        mask = torch.cat([on, torch.ones_like(ce[:, -4:])], 1)
        recon = (ce * mask).sum(1).mean()
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
        return recon + self.beta * kl, {"kl": kl.detach(), "recon": recon.detach()}

    @torch.no_grad()
    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """The most likely value of every parameter, (N, n_params) int64."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latent codes must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        self.eval()
        return self.logits(z.to(next(self.parameters()).device, torch.float32)).argmax(2).cpu()

    def decode_tasks(self, z: torch.Tensor) -> list[Task]:
        """The tasks the codes decode to (they may be unsolvable: see ``is_valid``)."""
        return [params_task(p.numpy(), self.size, self.segments) for p in self.decode_params(z)]

    @torch.no_grad()
    def encode_params(self, params) -> torch.Tensor:
        """Posterior means of parameter vectors (N, n_params), (N, latent_dim)."""
        self.eval()
        return self.encode(torch.as_tensor(np.asarray(params)).to(next(self.parameters()).device))[0].cpu()


def reconstruction(vae: TaskVAE, params) -> dict[str, float]:
    """How well held-out tasks survive encode -> posterior mean -> decode (most likely parameters).

    ``cell_accuracy``: share of grid cells (free / wall / start / goal) decoded right; ``empty_grid``: the same for
    a decoder that draws no walls but the right start and goal (what a VAE that learnt nothing about the walls
    reaches); ``exact``: the whole layout right; ``valid``: decoded tasks that are solvable."""
    tasks = [params_task(p, vae.size, vae.segments) for p in np.asarray(params)]
    decoded = vae.decode_tasks(vae.encode_params(params))
    truth = np.stack([t.grid() for t in tasks])
    got = np.stack([t.grid() for t in decoded])
    empty = np.where(truth == 1, 0, truth)
    return {"cell_accuracy": float((got == truth).mean()), "empty_grid": float((empty == truth).mean()),
            "exact": float(np.mean([a == b for a, b in zip(tasks, decoded)])),
            "valid": float(np.mean([is_valid(t) for t in decoded]))}


def interpolate(vae: TaskVAE, a, b, n: int = 7) -> list[Task]:
    """The tasks decoded along the straight line between the posterior means of parameter vectors a and b,
    ``n`` points, ends included."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    za, zb = vae.encode_params(np.stack([a, b]))
    w = torch.linspace(0, 1, n)[:, None]
    return vae.decode_tasks((1 - w) * za + w * zb)

def optimal_returns(tasks: Sequence[Task], max_steps: int = 64) -> np.ndarray:
    """R_opt of every task, batched: :func:`gridworld.optimal_return` with the rollout horizon ``max_steps``
    (64 here; ``optimal_return`` defaults to 4 * size**2), and 0 for tasks that are not valid."""
    steps = shortest_paths(tasks)
    same = np.array([t.start == t.goal for t in tasks])
    ok = (steps >= 0) & (steps <= max_steps) & ~same
    return np.where(ok, 1.0 - 0.9 * steps / max_steps, 0.0)


def regret(policy, tasks: Sequence[Task], max_steps: int = 64, episodes: int = 1, seed: int = 0,
           device="cpu") -> np.ndarray:
    """REGRET(tau) = R_opt(tau) - R_student(tau), the student's return averaged over ``episodes`` sampled rollouts;
    an unsolvable task has R_opt = 0 and so no positive regret (the teacher gains nothing from proposing it)."""
    if not tasks:
        return np.zeros(0)
    g = torch.Generator().manual_seed(seed)
    student = np.mean([rollout(policy, tasks, max_steps, generator=g, device=device)["return"]
                       for _ in range(episodes)], 0)
    return optimal_returns(tasks, max_steps) - student


# ----------------------------------------------------------------------------- the teacher: search in z
def cem_search(score: Callable[[torch.Tensor], np.ndarray], latent_dim: int, iterations: int = 5,
               population: int = 128, elite: float = 0.125, seed: int = 0) -> list[dict]:
    """The cross-entropy method in z-space: sample a population from N(mu, sigma^2), keep the ``elite`` share with
    the highest ``score(z)`` (here the regret), refit mu and sigma to them, repeat. mu starts at 0 and sigma at 1
    (the prior). Returns one dict per iteration: ``z``, ``score``, ``mu``, ``sigma``."""
    if not 0 < elite <= 1:
        raise ValueError(f"elite must be a share in (0, 1], got {elite}")
    if population < 2 or iterations < 1:
        raise ValueError(f"cem_search needs population >= 2 and iterations >= 1, got {population} and {iterations}")
    g = torch.Generator().manual_seed(seed)
    mu, sigma = torch.zeros(latent_dim), torch.ones(latent_dim)
    n_elite, history = max(2, int(round(elite * population))), []
    for _ in range(iterations):
        z = mu + sigma * torch.randn(population, latent_dim, generator=g)
        s = np.asarray(score(z), dtype=np.float64)
        if s.shape != (population,):
            raise ValueError(f"score(z) must return one number per code, shape ({population},), got {s.shape}")
        history.append({"z": z, "score": s, "mu": mu.clone(), "sigma": sigma.clone()})
        best = z[torch.from_numpy(np.argsort(-s, kind="stable")[:n_elite].copy())]
        mu, sigma = best.mean(0), best.std(0).clamp_min(0.05)
    return history


def propose_tasks(vae: TaskVAE, policy, n: int, candidates: int, max_steps: int = 64, seed: int = 0,
                  device="cpu") -> tuple[list[Task], np.ndarray]:
    """The teacher of the training loop: decode ``candidates`` prior samples, keep the ``n`` valid tasks of
    highest regret under the current student (ties broken by order). Returns the tasks and their regrets."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    g = torch.Generator().manual_seed(seed)
    tasks = vae.decode_tasks(torch.randn(candidates, vae.latent_dim, generator=g))
    tasks = [t for t, best in zip(tasks, optimal_returns(tasks, max_steps)) if best > 0]
    if len(tasks) < n:
        raise RuntimeError(f"only {len(tasks)} of {candidates} decoded tasks are valid; ask for more candidates")
    r = regret(policy, tasks, max_steps, seed=seed, device=device)
    keep = np.argsort(-r, kind="stable")[:n]
    return [tasks[i] for i in keep], r[keep]
