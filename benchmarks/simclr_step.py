"""Throughput of one SimCLR training step (two batched views + forward + InfoNCE + backward + update),
at the sizes of the smoke and cpu presets (or the one you name).

    python benchmarks/simclr_step.py [--scale smoke cpu] [--batch 128] [--steps 20] [--device cpu]

Prints images per second (an image counts once, although it is seen in two views) and the share of
the step spent making the views. Not part of the test run.
"""

from __future__ import annotations

import argparse
import time

import torch

from ssl_tutorial import setup
from ssl_tutorial.data.shapes import ShapesWorld
from ssl_tutorial.methods.simclr import SimCLR
from ssl_tutorial.nets import make_backbone


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(scale: str, batch: int, steps: int, device: str) -> dict:
    cfg = setup(scale=scale, seed=0, device=device, verbose=False)
    model = SimCLR(make_backbone(cfg)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    images = ShapesWorld(size=cfg.image_size).sample(batch, seed=0).images.to(device)

    def step():
        loss, _ = model.loss((images, None))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    t_step = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    for _ in range(steps):
        model.views(images), model.views(images)
    sync(device)
    t_views = (time.perf_counter() - start) / steps
    return {"scale": scale, "size": cfg.image_size, "batch": batch, "images/s": batch / t_step,
            "ms/step": 1000 * t_step, "views share": t_views / t_step}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", nargs="+", default=["smoke", "cpu"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    print(f"device {args.device}, {torch.get_num_threads()} threads")
    for scale in args.scale:
        r = measure(scale, args.batch, args.steps, args.device)
        print(f"{r['scale']:>5} ({r['size']} px, batch {r['batch']}): {r['images/s']:8.0f} images/s, "
              f"{r['ms/step']:6.1f} ms/step, views {r['views share']:.0%} of the step")


if __name__ == "__main__":
    main()
