"""Chapter 1's methods side by side on the same shapes world: linear probe, kNN and k-means NMI of the
shape class from each backbone's global features, per seed.

    python benchmarks/compare_methods.py [--scale cpu] [--seeds 0 1 2] [--methods rotnet simclr swav obow] [--save]

``--save`` stores the per-seed table in ``results/<scale>.json`` (``benchmarks/compare_methods``), from
which ``ssl-tutorial report`` writes the README's table.

Each method is trained with its notebook's recipe (steps, batch, views, hyper-parameters; keep them in
sync) and the notebook's cache name, so a model a notebook already trained at that scale and seed is
loaded from the cache instead of retrained. Not part of the test run: at cpu scale one seed takes about
15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses

import pandas as pd
import torch
from sklearn.cluster import KMeans

from ssl_tutorial import fit, load_splits, setup
from ssl_tutorial.data.shapes import ShapesWorld
from ssl_tutorial.evaluate import clustering_scores, embed, knn_accuracy, linear_probe
from ssl_tutorial.methods.obow import OBoW
from ssl_tutorial.methods.rotnet import RotNet
from ssl_tutorial.methods.simclr import SimCLR
from ssl_tutorial.methods.swav import SwAV
from ssl_tutorial.nets import make_backbone
from ssl_tutorial.views import Views, grayscale

METHODS = ("rotnet", "simclr", "swav", "obow")
K_MEANS = 32  # clusters, as in the SwAV notebook (32 prototypes)


def train_method(method: str, cfg, train, test):
    """The backbone trained as in the method's notebook (loaded from the cache if the notebook ran)."""
    by_scale = {"smoke": 0, "cpu": 1, "gpu": 2}[cfg.scale]
    if method == "rotnet":  # 01_rotnet
        model = RotNet(make_backbone(cfg))
        fit(model, train, cfg, name="rotnet")
    elif method == "simclr":  # 03_simclr
        steps, batch_size = (150, 600, cfg.steps)[by_scale], (128, 128, 256)[by_scale]
        model = SimCLR(make_backbone(cfg), temperature=0.5, views=Views(crop_scale=(0.5, 1.0), jitter_strength=1.0,
                                                                          gray=0.5))

        def knn_shape(m):  # the notebook's evaluation during training; part of what it caches
            return {"knn": knn_accuracy(embed(m, train.images), train.labels, embed(m, test.images), test.labels)}

        fit(model, train, cfg, steps=steps, batch_size=batch_size, name="simclr", evaluate=knn_shape,
            eval_every=steps // 3)
    elif method == "swav":  # 06_swav
        steps, batch_size = (160, 750, 2500)[by_scale], (64, 128, 256)[by_scale]
        model = SwAV(make_backbone(cfg), n_prototypes=32, temperature=0.1, epsilon=0.05, n_small=0,
                     freeze_prototypes_steps=steps // 10, large_scale=(0.5, 1.0), small_scale=(0.2, 0.5),
                     jitter_strength=1.0, gray=0.5)
        fit(model, train, cfg, steps=steps, batch_size=batch_size, name="swav")
    elif method == "obow":  # 07_obow: the teacher sees each image's object alone, in grayscale
        steps, batch_size = (200, 600, 2000)[by_scale], (64, 128, 256)[by_scale]
        objects = grayscale(ShapesWorld(size=cfg.image_size).objects_alone(train.factors))
        model = OBoW(make_backbone(cfg), n_words=64, inv_delta=15.0, kappa=5.0, momentum=0.99, n_large=1, n_small=2,
                     teacher_images=objects, large_scale=(0.5, 1.0), small_scale=(0.2, 0.5), jitter_strength=1.0,
                     gray=0.5)
        pairs = dataclasses.replace(train, labels=torch.arange(len(train)))  # labels = rows, for the look-up
        fit(model, pairs, cfg, steps=steps, batch_size=batch_size, name="obow")
    else:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return model.backbone


def scores(backbone, train, test, seed: int) -> dict:
    tr, te = embed(backbone, train.images), embed(backbone, test.images)
    clusters = KMeans(K_MEANS, n_init=3, random_state=seed).fit_predict(te.cpu().numpy())
    return {"linear probe (%)": 100 * linear_probe(tr, train.labels, te, test.labels),
            "kNN (%)": 100 * knn_accuracy(tr, train.labels, te, test.labels),
            f"NMI, k-means K={K_MEANS}": clustering_scores(test.labels.numpy(), clusters)["nmi"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--save", action="store_true", help="store the table in results/<scale>.json")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        cfg = setup(scale=args.scale, seed=seed)
        train, test = load_splits(cfg, dataset="shapes")
        rows.append({"seed": seed, "method": "random init", **scores(make_backbone(cfg), train, test, seed)})
        for method in args.methods:  # fit() seeds each run from cfg.seed
            rows.append({"seed": seed, "method": method, **scores(train_method(method, cfg, train, test), train, test,
                                                                 seed)})
            print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False, header=len(rows) == 2), flush=True)
    table = pd.DataFrame(rows)
    print(f"\nshape class, {args.scale} scale, seeds {' / '.join(map(str, args.seeds))}:")
    per_seed = table.groupby("method", sort=False).agg(lambda v: " / ".join(f"{x:.3g}" for x in v))
    print(per_seed.drop(columns="seed").to_string())
    if args.save:
        save(per_seed.drop(columns="seed"), args.scale, args.seeds)


NAMES = {"random init": "random init", "rotnet": "RotNet", "simclr": "SimCLR", "swav": "SwAV",
         "obow": "OBoW (the teacher sees the object alone)"}
COLUMNS = {"kNN (%)": "kNN, k = 20 (%)", f"NMI, k-means K={K_MEANS}": f"NMI of k-means, K = {K_MEANS}"}


def save(per_seed: pd.DataFrame, scale: str, seeds) -> None:
    """Store the table in ``results/<scale>.json`` for the README (``ssl-tutorial report``)."""
    import datetime

    from ssl_tutorial import results

    data = results.load(scale)
    data["tables"]["benchmarks/compare_methods"] = {
        "source": "`python benchmarks/compare_methods.py --scale " + scale + " --save`: each method trained with its "
                  "notebook's recipe on the same shapes world, the shape class read from its backbone's global features",
        "seeds": list(seeds), "date": datetime.date.today().isoformat(), "index_name": "backbone",
        "columns": [COLUMNS.get(c, c) for c in per_seed.columns],
        "index": [NAMES.get(m, m) for m in per_seed.index], "data": per_seed.to_numpy().tolist()}
    print(f"wrote {results.save(data)}")


if __name__ == "__main__":
    main()
