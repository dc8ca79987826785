"""Throughput of view generation: the batched pipeline of ``ssl_tutorial.views`` against a per-image
torchvision pipeline on PIL images that produces the same kind of views (SimCLR's recipe).

    python benchmarks/views.py [--n 2048] [--size 32] [--repeats 3] [--device cpu]

Prints images per second for both and their ratio. Not part of the test run.
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision import transforms as T
from torchvision.transforms.functional import to_pil_image

from ssl_tutorial.data.shapes import ShapesWorld
from ssl_tutorial.views import Views


def per_image_pipeline(size: int):
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.2, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.5),
        T.ToTensor(),
    ])


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    images = ShapesWorld(size=args.size).sample(args.n, seed=0).images
    pil = [to_pil_image(img) for img in images]  # the PIL pipeline's input, converted once, not timed
    batched = Views(blur=0.5)
    per_image = per_image_pipeline(args.size)
    on_device = images.to(args.device)

    batched(on_device[:64])  # warm-up
    t_batched = best_of(lambda: batched(on_device), args.repeats)
    t_pil = best_of(lambda: torch.stack([per_image(p) for p in pil]), args.repeats)
    print(f"{args.n} images of {args.size}x{args.size}, best of {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"  batched views on {args.device:<5} {args.n / t_batched:>10,.0f} images/s")
    print(f"  per-image PIL pipeline    {args.n / t_pil:>10,.0f} images/s")
    print(f"  ratio (batched / PIL)     {t_pil / t_batched:>10.1f}x")


if __name__ == "__main__":
    main()
