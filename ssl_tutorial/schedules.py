"""Learning-rate schedules for continual pre-training: repeated cosine versus the infinite schedule.

Singh et al., "Beyond Cosine Decay: On the effectiveness of Infinite Learning Rate Schedule for
Continual Pre-training" (2025). Taught in notebooks/10_theory/04_infinite_lr.ipynb.

Data arrives in chunks k = 0, 1, ... of L_k steps, chunk k covering steps [s_k, s_{k+1}).

Repeated cosine re-warms at every chunk boundary, then decays to η_min by the chunk's end:

    η(t) = η_min + (η_max − η_min)·(t − s_k)/W                          s_k ≤ t < s_k + W
    η(t) = η_min + (η_max − η_min)·½(1 + cos(π·(t − s_k − W)/(L_k − W)))  s_k + W ≤ t < s_{k+1}

The infinite schedule warms up once, cools down to a constant that lasts as long as data arrives,
and anneals only once, at the end (or on a branch taken when a checkpoint is wanted):

    η(t) = η_max·t/W                                   warm-up     0 ≤ t < W
    η(t) = η_const + (η_max − η_const)·½(1 + cos(π u))  cool-down   u = (t − W)/C
    η(t) = η_const                                     constant    until the annealing start a
    η(t) = η_const·(η_min/η_const)^u                   annealing   u = (t − a)/A   (or linear:
                                                                    η_const + (η_min − η_const)·u)

with W = ``warmup``, C = ``cooldown``, A = ``anneal`` steps, and η_min after the annealing phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_step_and_rates(step: int, **rates: float) -> None:
    _check(step >= 0, f"step = {step} is negative; schedules start at step 0")
    for name, value in rates.items():
        _check(value >= 0, f"{name} = {value} is negative; learning rates must be >= 0")


def repeated_cosine(step: int, chunk_steps: Sequence[int], eta_max: float, eta_min: float = 0.0,
                    warmup: int = 0) -> float:
    """Cosine schedule restarted on every data chunk (``chunk_steps`` = [L_0, L_1, ...]).

    Inside chunk k: linear warm-up η_min → η_max over ``warmup`` steps, then
    η = η_min + (η_max − η_min)·½(1 + cos(π·(t − s_k − warmup)/(L_k − warmup))). η_min past the last chunk.
    """
    _check_step_and_rates(step, eta_max=eta_max, eta_min=eta_min)
    _check(eta_min <= eta_max, f"eta_min = {eta_min} > eta_max = {eta_max}; lower eta_min or raise eta_max")
    _check(len(chunk_steps) > 0, "chunk_steps is empty; pass the chunk lengths, e.g. [300, 300, 300]")
    _check(warmup >= 0, f"warmup = {warmup} is negative; use warmup >= 0")
    for k, length in enumerate(chunk_steps):
        _check(warmup < length,
               f"warmup = {warmup} >= chunk {k}'s length {length}; shorten warmup or lengthen the chunk")
    start = 0
    for length in chunk_steps:
        if step < start + length:
            t = step - start
            if t < warmup:
                return eta_min + (eta_max - eta_min) * t / warmup
            u = (t - warmup) / (length - warmup)
            return eta_min + (eta_max - eta_min) * 0.5 * (1 + math.cos(math.pi * u))
        start += length
    return eta_min


def infinite_lr(step: int, total_steps: int, eta_max: float, eta_const: float, eta_min: float = 0.0,
                warmup: int = 0, cooldown: int = 0, anneal: int = 0, anneal_shape: str = "exp",
                anneal_at: int | None = None) -> float:
    """The infinite schedule: warm-up, cool-down, constant η_const, then one annealing phase.

    Warm-up η = η_max·t/warmup; cool-down η = η_const + (η_max − η_const)·½(1 + cos(π u)), u = (t − warmup)/cooldown;
    constant η_const; annealing over [a, a + anneal), u = (t − a)/anneal, η = η_const·(η_min/η_const)^u
    (``anneal_shape="exp"``) or η_const + (η_min − η_const)·u (``"linear"``); η_min afterwards.
    ``anneal_at=None`` puts a = total_steps − anneal (the run's final steps); an int ``anneal_at`` is the
    step of a checkpoint from which an annealed branch is taken (warmup + cooldown ≤ anneal_at ≤ total_steps).
    """
    _check_step_and_rates(step, eta_max=eta_max, eta_const=eta_const, eta_min=eta_min)
    _check(eta_const <= eta_max, f"eta_const = {eta_const} > eta_max = {eta_max}; lower eta_const or raise eta_max")
    _check(eta_min <= eta_const, f"eta_min = {eta_min} > eta_const = {eta_const}; lower eta_min or raise eta_const")
    for name, value in (("total_steps", total_steps), ("warmup", warmup), ("cooldown", cooldown), ("anneal", anneal)):
        _check(value >= 0, f"{name} = {value} is negative; use {name} >= 0")
    _check(anneal_shape in ("exp", "linear"), f"anneal_shape = {anneal_shape!r} is unknown; use 'exp' or 'linear'")
    _check(anneal_shape != "exp" or anneal == 0 or eta_min > 0,
           "exp annealing needs eta_min > 0 (it decays geometrically); set eta_min > 0 or anneal_shape='linear'")
    if anneal_at is None:
        _check(warmup + cooldown + anneal <= total_steps, f"warmup + cooldown + anneal = {warmup + cooldown + anneal} "
               f"exceeds total_steps = {total_steps}; shorten a phase or raise total_steps")
        anneal_at = total_steps - anneal
    else:
        _check(warmup + cooldown <= anneal_at <= total_steps, f"anneal_at = {anneal_at} is outside [warmup + cooldown, "
               f"total_steps] = [{warmup + cooldown}, {total_steps}]; branch from the constant phase")
    if step < warmup:
        return eta_max * step / warmup
    if step < warmup + cooldown:
        u = (step - warmup) / cooldown
        return eta_const + (eta_max - eta_const) * 0.5 * (1 + math.cos(math.pi * u))
    if step < anneal_at:
        return eta_const
    if step < anneal_at + anneal:
        u = (step - anneal_at) / anneal
        if anneal_shape == "exp":
            return eta_const * (eta_min / eta_const) ** u
        return eta_const + (eta_min - eta_const) * u
    return eta_min


def schedule_curve(fn: Callable[..., float], steps: int, **kwargs) -> np.ndarray:
    """[fn(0), fn(1), ..., fn(steps − 1)] with ``kwargs`` passed to every call, for plotting."""
    _check(steps >= 0, f"steps = {steps} is negative; use steps >= 0")
    return np.array([fn(t, **kwargs) for t in range(steps)], dtype=float)


def as_lambda(fn: Callable[..., float], eta_max: float, **kwargs) -> Callable[[int], float]:
    """step ↦ fn(step, eta_max=eta_max, **kwargs)/η_max, for ``torch.optim.lr_scheduler.LambdaLR``.

    LambdaLR multiplies the optimizer's initial lr by this factor, so create the optimizer with lr = η_max.
    The arguments are checked once here, so that a bad schedule fails before training starts.
    """
    _check(eta_max > 0, f"eta_max = {eta_max} must be > 0 to be the LambdaLR base lr; pass the peak learning rate")
    fn(0, eta_max=eta_max, **kwargs)
    return lambda step: fn(step, eta_max=eta_max, **kwargs) / eta_max
