"""Continual pre-training: one model, one optimiser, a stream of data chunks, any learning-rate schedule.

Taught in notebooks/10_theory/04_infinite_lr.ipynb (the schedules themselves are in ``schedules.py``).

``fit()`` trains on one dataset with its own one-cycle schedule. Here the data arrives in chunks, the
model sees chunk k during steps [k L, (k + 1) L), and the learning rate at every step is whatever
``lr(step)`` says: the point of the notebook is what the schedule does at the chunk boundaries. The
optimiser (AdamW) keeps its state across boundaries, as a run that simply continues would.

Two callbacks watch the run: ``watch(model)`` every ``watch_every`` steps (cheap: a loss on fixed held-out
batches) and ``at_chunk_end(model)`` after every chunk (a probe, say). Both return dicts of numbers; the
run, its watches and the weights are cached by the full configuration, as ``fit()`` caches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import nets
from .data import Dataset
from .train import History, _save, load_cached


def held_out_loss(model, images: torch.Tensor, seed: int = 1234) -> float:
    """``model.loss`` on ``images`` with the random views fixed by ``seed``: the same views at every call, so
    that a curve of it over training moves only because the model does."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images = images.to(device)  # the held-out images may live on the CPU while the model is on a GPU
    with torch.no_grad(), torch.random.fork_rng(devices=[] if device.type != "cuda" else [device]):
        torch.manual_seed(seed)
        value = float(model.loss((images, torch.zeros(len(images), dtype=torch.long, device=device)))[0])
    model.train(was_training)
    return value


def continual_fit(model: torch.nn.Module, chunks: Sequence[Dataset], cfg, lr: Callable[[int], float],
                  steps_per_chunk: int, batch_size: int = 64, weight_decay: float = 5e-4,
                  watch: Callable | None = None, watch_every: int = 10, at_chunk_end: Callable | None = None,
                  name: str = "continual", schedule: str = "", cache: bool = True, progress: bool = True,
                  **key_extra) -> History:
    """Train ``model`` (initialised from ``cfg.seed``) on ``chunks`` in order, ``steps_per_chunk`` steps each, at
    learning rate ``lr(step)``. ``schedule`` names the schedule for the cache key (a lambda has no readable
    identity): give every schedule its own name. Returns a :class:`History` whose ``evals`` hold one row per
    watch (``{"step", "lr", "chunk", ...}``) and, with ``"chunk_end": 1``, one per chunk end. The watches and
    chunk-end results are cached with the weights: pass what they depend on (a probe's size, say) as extra
    keyword arguments, which only enter the cache key, as in ``fit()``."""
    if not chunks or any(len(c) == 0 for c in chunks):
        raise ValueError("continual_fit needs a non-empty list of non-empty chunks")
    if steps_per_chunk < 1 or watch_every < 1:
        raise ValueError(f"steps_per_chunk and watch_every must be >= 1, got {steps_per_chunk} and {watch_every}")
    if not schedule:
        raise ValueError("name the learning-rate schedule (schedule='repeated cosine', ...): it enters the cache key")
    total = steps_per_chunk * len(chunks)
    rates = [float(lr(t)) for t in range(total)]
    if any(not r >= 0 for r in rates):
        raise ValueError("lr(step) must be a number >= 0 at every step")
    nets.seeded_init(model.cpu(), cfg.seed)
    stream = Dataset(torch.cat([c.images for c in chunks]), torch.cat([c.labels for c in chunks]), chunks[0].class_names)
    settings = {"steps_per_chunk": steps_per_chunk, "chunks": len(chunks), "batch_size": batch_size,
                "weight_decay": weight_decay, "rates": rates, "schedule": schedule, "config": cfg.key(),
                "watch_every": watch_every, "extra": key_extra,
                "loop": hashlib.blake2b(Path(__file__).read_bytes(), digest_size=8).hexdigest()}  # this file's code
    path, history = load_cached(model, stream, settings, cfg, name, cache, progress)
    if history is not None:
        return history

    history = History(path=str(path))
    model.to(cfg.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=rates[0], weight_decay=weight_decay)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        bar = tqdm(range(total), desc=name, disable=not progress, mininterval=1.0, leave=False)
        for step in bar:
            k = step // steps_per_chunk
            chunk = chunks[k]
            idx = torch.randint(0, len(chunk), (min(batch_size, len(chunk)),))
            batch = (chunk.images[idx.to(chunk.images.device)].to(cfg.device),
                     chunk.labels[idx.to(chunk.labels.device)].to(cfg.device))
            if watch is not None and step % watch_every == 0:
                history.evals.append({"step": step, "lr": rates[step], "chunk": k, **watch(model)})
            for group in opt.param_groups:
                group["lr"] = rates[step]
            loss, logs = model.loss(batch)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{name}: the loss became {loss.item()} at step {step}; lower the learning rate "
                                   f"(now {rates[step]:.2g}) -- nothing was cached")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.loss.append(loss.item())
            for key, v in logs.items():
                history.logs.setdefault(key, []).append(float(v))
            if at_chunk_end is not None and (step + 1) % steps_per_chunk == 0:
                model.eval()
                with torch.no_grad():
                    history.evals.append({"step": step + 1, "lr": rates[step], "chunk": k, "chunk_end": 1,
                                          **at_chunk_end(model)})
                model.train()
        if watch is not None:
            history.evals.append({"step": total, "lr": rates[-1], "chunk": len(chunks) - 1, **watch(model)})
        bar.close()
    model.eval()
    if cache:
        _save(path, model, history)
    return history
