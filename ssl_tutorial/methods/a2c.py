"""The student of the CLUTR notebook: a batched gridworld, rollouts, and advantage actor-critic (A2C).

Mnih et al., "Asynchronous Methods for Deep Reinforcement Learning" (ICML 2016), synchronous form. Taught in
notebooks/10_theory/06_clutr.ipynb, where :mod:`ssl_tutorial.methods.clutr`'s teacher proposes the tasks.

A task (:class:`ssl_tutorial.data.gridworld.Task`) is seen fully: three planes of walls, agent and goal
(:func:`task_planes`). :class:`GridEnv` steps many tasks at once; reaching the goal after t moves pays
``1 - 0.9 t / max_steps`` (MiniGrid's reward). :func:`rollout` runs any policy (observations -> action logits),
:func:`a2c_loss` is one batch of episodes' loss, :func:`train_student` the training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.gridworld import Task

MOVES = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]])  # up, down, left, right, as in gridworld.MOVES


def task_planes(tasks: Sequence[Task]) -> torch.Tensor:
    """(N, 3, size, size) float planes of each task: walls, start, goal (the student's view; the data 'images')."""
    if not tasks:
        raise ValueError("no tasks given")
    size = tasks[0].size
    if any(t.size != size for t in tasks):
        raise ValueError("all tasks must have the same grid size")
    planes = np.zeros((len(tasks), 3, size, size), np.float32)
    for i, t in enumerate(tasks):
        for cell in t.walls:
            planes[i, 0][cell] = 1
        planes[i, 1][t.start] = planes[i, 2][t.goal] = 1
    return torch.from_numpy(planes)


class GridEnv:
    """Many gridworld tasks stepped at once on ``device``. Observation: (N, 3, size, size) planes of the walls,
    the agent and the goal (fully observed). Reaching the goal after t moves pays ``1 - 0.9 t / max_steps`` and
    ends the episode; bumping into a wall or the border leaves the agent where it is."""

    def __init__(self, tasks: Sequence[Task], max_steps: int = 64, device="cpu"):
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        planes = task_planes(tasks).to(device)
        self.walls = planes[:, 0].bool()
        self.size, self.max_steps, self.device = tasks[0].size, max_steps, device
        self.goal = torch.tensor([t.goal for t in tasks], device=device)
        self.start = torch.tensor([t.start for t in tasks], device=device)
        self.reset()

    def reset(self) -> torch.Tensor:
        """Every agent back on its start; an episode that starts on its goal (an invalid task) is over at once,
        with nothing earned."""
        self.pos = self.start.clone()
        self.t = 0
        self.done = (self.pos == self.goal).all(1)
        return self.observe()

    def observe(self) -> torch.Tensor:
        n, s = len(self.pos), self.size
        obs = torch.zeros(n, 3, s, s, device=self.device)
        rows = torch.arange(n, device=self.device)
        obs[:, 0] = self.walls.float()
        obs[rows, 1, self.pos[:, 0], self.pos[:, 1]] = 1
        obs[rows, 2, self.goal[:, 0], self.goal[:, 1]] = 1
        return obs

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move every unfinished agent; (observation, reward, done), done also at ``max_steps``."""
        nxt = self.pos + MOVES.to(self.device)[actions]
        inside = ((nxt >= 0) & (nxt < self.size)).all(1)
        nxt_c = nxt.clamp(0, self.size - 1)
        free = inside & ~self.walls[torch.arange(len(nxt), device=self.device), nxt_c[:, 0], nxt_c[:, 1]]
        move = free & ~self.done
        self.pos = torch.where(move[:, None], nxt_c, self.pos)
        self.t += 1
        arrived = (self.pos == self.goal).all(1) & ~self.done
        reward = arrived.float() * (1 - 0.9 * self.t / self.max_steps)
        self.done = self.done | arrived | (self.t >= self.max_steps)
        return self.observe(), reward, self.done.clone()


def beeline_policy(obs: torch.Tensor) -> torch.Tensor:
    """A student that walks straight at the goal: logits (N, 4) that favour the free moves bringing it closer
    (Manhattan distance), then any free move; it never plans round a wall, so walls across its way trap it."""
    n, _, s, _ = obs.shape
    rows = torch.arange(n)
    flat = obs[:, 1].flatten(1).argmax(1), obs[:, 2].flatten(1).argmax(1)
    pos = torch.stack([flat[0] // s, flat[0] % s], 1)
    goal = torch.stack([flat[1] // s, flat[1] % s], 1)
    nxt = pos[:, None] + MOVES.to(pos.device)[None]  # (N, 4, 2)
    inside = ((nxt >= 0) & (nxt < s)).all(2)
    nxt_c = nxt.clamp(0, s - 1)
    free = inside & (obs[rows[:, None], 0, nxt_c[..., 0], nxt_c[..., 1]] == 0)
    closer = (goal[:, None] - nxt).abs().sum(2) < (goal - pos).abs().sum(1)[:, None]
    return torch.where(free & closer, 4.0, torch.where(free, 0.0, -20.0))


@torch.no_grad()
def rollout(policy: Callable[[torch.Tensor], torch.Tensor], tasks: Sequence[Task], max_steps: int = 64,
            greedy: bool = False, generator: torch.Generator | None = None, device="cpu") -> dict[str, np.ndarray]:
    """Run ``policy`` (observations -> action logits; an :class:`ActorCritic` or :func:`beeline_policy`) once on
    every task; per task: ``success`` (bool), ``steps`` and ``return``."""
    env = GridEnv(tasks, max_steps, device)
    obs, total = env.reset(), torch.zeros(len(tasks), device=device)
    steps = torch.full((len(tasks),), max_steps, device=device)
    while not env.done.all():
        live = torch.nonzero(~env.done)[:, 0]
        logits = policy(obs[live])
        logits = logits[0] if isinstance(logits, tuple) else logits
        actions = torch.zeros(len(tasks), dtype=torch.long, device=device)
        if greedy:
            actions[live] = logits.argmax(1)
        else:
            actions[live] = torch.multinomial(F.softmax(logits.float(), 1).cpu(), 1, generator=generator)[:, 0].to(device)
        was_done = env.done.clone()
        obs, reward, _ = env.step(actions)
        steps = torch.where((reward > 0) & ~was_done, torch.full_like(steps, env.t), steps)
        total += reward
    return {"success": (total > 0).cpu().numpy(), "steps": steps.cpu().numpy(), "return": total.cpu().numpy()}


class ActorCritic(nn.Module):
    """The student: an MLP over the flattened (3, size, size) observation, two hidden layers, then the action
    logits (4) and the value. ``forward`` returns (logits, value). (A two-layer ConvNet of 16 channels took twice
    as long per update on 7 x 7 inputs on a CPU.)"""

    def __init__(self, size: int = 7, hidden: int = 256):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU())
        self.pi, self.v = nn.Linear(hidden, 4), nn.Linear(hidden, 1)
        self.hparams = {"size": size, "hidden": hidden}

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(obs)
        return self.pi(h), self.v(h)[:, 0]


def a2c_loss(policy: ActorCritic, tasks: Sequence[Task], max_steps: int = 64, gamma: float = 0.99,
             entropy: float = 0.01, generator: torch.Generator | None = None, device="cpu"):
    """One batch of episodes, one A2C loss (Mnih et al. 2016):

        L = - mean_t A_t log pi(a_t | s_t)  +  0.5 mean_t (G_t - V(s_t))^2  -  entropy * mean_t H(pi(. | s_t)),

    G_t the discounted return from step t, A_t = G_t - V(s_t) (V detached), means over the steps taken before
    each episode ended (finished episodes are not run further). Returns (loss, success rate)."""
    if any(t.start == t.goal for t in tasks):
        raise ValueError("a2c_loss needs valid tasks, and one starts on its goal; filter with gridworld.is_valid")
    env = GridEnv(tasks, max_steps, device)
    obs, n = env.reset(), len(tasks)
    logps, values, entropies, rewards, alive = [], [], [], [], []
    while not env.done.all():
        live = torch.nonzero(~env.done)[:, 0]
        logits, value = policy(obs[live])
        logp_all = F.log_softmax(logits, 1)
        actions = torch.zeros(n, dtype=torch.long, device=device)
        actions[live] = torch.multinomial(logp_all.detach().exp().cpu(), 1, generator=generator)[:, 0].to(device)
        alive.append(~env.done)
        zeros = torch.zeros(n, device=device)
        logps.append(zeros.index_put((live,), logp_all.gather(1, actions[live, None])[:, 0]))
        entropies.append(zeros.index_put((live,), -(logp_all.exp() * logp_all).sum(1)))
        values.append(zeros.index_put((live,), value))
        obs, reward, _ = env.step(actions)
        rewards.append(reward)
    returns, g = [], torch.zeros(n, device=device)
    for r in reversed(rewards):
        g = r + gamma * g
        returns.append(g)
    G, V = torch.stack(returns[::-1]), torch.stack(values)
    mask, logp, H = torch.stack(alive).float(), torch.stack(logps), torch.stack(entropies)
    advantage = (G - V).detach()
    loss = (-(advantage * logp * mask).sum() + 0.5 * ((G - V) ** 2 * mask).sum() - entropy * (H * mask).sum())
    return loss / mask.sum(), float((torch.stack(rewards).sum(0) > 0).float().mean())


def train_student(policy: ActorCritic, curriculum: Callable[[int, ActorCritic], list[Task]], updates: int,
                  max_steps: int = 64, lr: float = 1e-3, seed: int = 0, device="cpu", progress: bool = True,
                  desc: str = "student") -> list[float]:
    """Train the student by A2C for ``updates`` batches of episodes; ``curriculum(update, policy)`` gives each
    batch's tasks (domain randomisation: fresh random tasks; CLUTR: :func:`propose_tasks`). Returns the training
    success rate per update. Seeded: the same seed, curriculum and thread count give the same student."""
    torch.manual_seed(seed)
    for m in policy.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
    policy.to(device).train()
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    g, curve = torch.Generator().manual_seed(seed), []
    bar = tqdm(range(updates), desc=desc, disable=not progress, mininterval=1.0, leave=False)
    for u in bar:
        tasks = curriculum(u, policy)
        loss, success = a2c_loss(policy, tasks, max_steps, generator=g, device=device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        curve.append(success)
        if u % 10 == 0:
            bar.set_postfix(success=f"{np.mean(curve[-10:]):.2f}", refresh=False)
    policy.eval()
    return curve
