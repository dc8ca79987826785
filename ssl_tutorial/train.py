"""``fit()``: the one training loop, with a progress bar and a checkpoint cache.

Taught in notebooks/00_start/01_shapes_world.ipynb.

Any method is an ``nn.Module`` with ``loss(batch) -> (loss, logs)``, where ``batch`` is
``(images, labels)``; self-supervised methods read only the images. ``fit`` samples batches
(reshuffling every epoch), runs AdamW with a cosine learning-rate decay, and caches the trained
weights in ``data/cache/`` under a hash of everything that changes the result: the method's
class, architecture, hyper-parameters and initial weights, the data, the optimiser settings, the seed, and the
source code of the method's file and of ``nets.py``. A re-run with the same key loads in a
fraction of a second; a corrupt cache file is deleted with a warning and the model retrained.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import nets
from .data import Dataset


def cache_dir() -> Path:
    """``$SSL_TUTORIAL_CACHE`` or ``data/cache`` beside the package (created on first use)."""
    path = Path(os.environ.get("SSL_TUTORIAL_CACHE") or Path(__file__).resolve().parents[1] / "data" / "cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class History:
    """What happened during training: the loss and every logged value per step, and the evaluations."""

    loss: list[float] = field(default_factory=list)
    logs: dict[str, list[float]] = field(default_factory=dict)
    evals: list[dict] = field(default_factory=list)  # [{"step": s, ...metrics}]
    from_cache: bool = False
    path: str = ""


def data_fingerprint(data: Dataset) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(data.images.detach().cpu().contiguous().numpy().tobytes())
    h.update(data.labels.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.blake2b(digest_size=16)
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _source_hash(model: torch.nn.Module) -> str:
    h = hashlib.blake2b(digest_size=16)
    for obj in (type(model), nets):
        try:
            h.update(Path(inspect.getsourcefile(obj)).read_bytes())
        except (TypeError, OSError):
            h.update(type(model).__qualname__.encode())
    return h.hexdigest()


def cache_key(model: torch.nn.Module, data: Dataset, settings: dict) -> str:
    """A hash of everything that changes the trained weights."""
    spec = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "architecture": repr(model),
        "hparams": getattr(model, "hparams", {}),
        "data": data_fingerprint(data),
        "init": _weights_hash(model),
        "code": _source_hash(model),
        **settings,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def load_cached(model: torch.nn.Module, data: Dataset, settings: dict, cfg, name: str, cache: bool = True,
                progress: bool = True) -> tuple[Path, History | None]:
    """The checkpoint path for this configuration, and its History if a readable checkpoint is there (the weights
    then loaded into ``model``, which is left on ``cfg.device`` in eval mode). Shared by ``fit`` and
    ``continual.continual_fit``."""
    path = cache_dir() / f"{name}-{cache_key(model, data, settings)[:20]}.pt"
    history = _load(path, model) if cache else None
    if history is not None:
        model.to(cfg.device).eval()
        if progress:
            print(f"{name}: loaded from cache ({path.name})")
    return path, history


def _load(path: Path, model: torch.nn.Module) -> History | None:
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["state_dict"])
        h = ckpt["history"]
        return History(loss=list(h["loss"]), logs=dict(h["logs"]), evals=list(h["evals"]), from_cache=True,
                       path=str(path))
    except Exception as e:  # any unreadable file: never crash, retrain
        warnings.warn(f"cached checkpoint {path.name} is unreadable ({type(e).__name__}: {e}); "
                      "deleting it and training again", stacklevel=3)
        path.unlink(missing_ok=True)
        return None


def _save(path: Path, model: torch.nn.Module, history: History) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {"state_dict": state,
            "history": {"loss": history.loss, "logs": history.logs, "evals": history.evals}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: a reader sees the old file or the new one, never half of one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fit(model: torch.nn.Module, data: Dataset, cfg, *, steps: int | None = None, batch_size: int | None = None,
        lr: float | None = None, weight_decay: float = 5e-4, name: str | None = None, cache: bool = True,
        evaluate=None, eval_every: int = 0, progress: bool = True, init: bool = True, **key_extra) -> History:
    """Train ``model`` on ``data`` with ``model.loss((images, labels))``; return its :class:`History`.

    ``steps``, ``batch_size`` and ``lr`` default to the scale preset ``cfg``. ``evaluate(model)``
    (returning a dict of numbers) runs every ``eval_every`` steps and at the end; its results are
    cached with the weights. Extra keyword arguments only enter the cache key (to tell apart
    runs that differ in something ``fit`` cannot see). The model is left in eval mode on
    ``cfg.device``.

    With ``init=True`` (the default) every layer is first initialised from ``cfg.seed``, so the
    result depends on the configuration alone, and the backbone starts exactly where
    ``nets.make_backbone(cfg)`` does (the "random init" baseline); then ``model.after_init()`` runs
    if the model has one (a teacher copies its student, prototypes are normalised). ``init=False`` trains from the
    weights the model has (fine-tuning a pretrained backbone).
    """
    if not hasattr(model, "loss"):
        raise ValueError(f"{type(model).__name__} has no loss(batch) method, so fit() cannot train it")
    if len(data) == 0:
        raise ValueError("cannot train on an empty dataset")
    steps = cfg.steps if steps is None else steps
    batch_size = min(batch_size or cfg.batch_size, len(data))
    lr = cfg.lr if lr is None else lr
    name = name or type(model).__name__.lower()
    settings = {"steps": steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                "config": cfg.key(), "eval_every": eval_every, "extra": key_extra}
    model.cpu()
    if init:
        nets.seeded_init(model, cfg.seed)
        if hasattr(model, "after_init"):  # e.g. a teacher that must start as a copy of the student
            model.after_init()
    path, history = load_cached(model, data, settings, cfg, name, cache, progress)
    if history is not None:
        return history

    history = History(path=str(path))
    model.to(cfg.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.05)
    images, labels = data.images, data.labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        order = torch.randperm(len(data))
        pos = 0
        bar = tqdm(range(steps), desc=name, disable=not progress, mininterval=1.0, leave=False)
        for step in bar:
            if pos + batch_size > len(order):
                order, pos = torch.randperm(len(data)), 0
            idx = order[pos:pos + batch_size]
            pos += batch_size
            batch = (images[idx.to(images.device)].to(cfg.device), labels[idx.to(labels.device)].to(cfg.device))
            loss, logs = model.loss(batch)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{name}: the loss became {loss.item()} at step {step}; try a smaller lr "
                                   f"(now {lr}) -- nothing was cached")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if hasattr(model, "after_step"):
                model.after_step(step, steps)
            history.loss.append(loss.item())
            for k, v in logs.items():
                history.logs.setdefault(k, []).append(float(v))
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False, **{k: f"{float(v):.3f}" for k, v in logs.items()})
            if evaluate is not None and eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
                history.evals.append(_evaluate(model, evaluate, step + 1))
        if evaluate is not None:
            history.evals.append(_evaluate(model, evaluate, steps))
        bar.close()
    model.eval()
    if cache:
        _save(path, model, history)
    return history


def _evaluate(model, evaluate, step: int) -> dict:
    model.eval()
    with torch.no_grad():
        out = {"step": step, **{k: float(v) for k, v in evaluate(model).items()}}
    model.train()
    return out
