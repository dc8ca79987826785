"""ssl-tutorial: self-supervised and unsupervised representation learning, one notebook per idea.

The short public API; everything else lives in its own small module (see the design notes in
README.md): ``setup`` (scale, seed, device), the datasets, ``fit`` (the one training loop) and
the evaluation protocols.
"""

from .data import DATASETS, Dataset, load_dataset, load_splits
from .evaluate import clustering_scores, embed, knn_accuracy, linear_probe, probe_layers
from .runtime import Config, setup
from .train import fit

__all__ = ["DATASETS", "Config", "Dataset", "clustering_scores", "embed", "fit", "knn_accuracy",
           "linear_probe", "load_dataset", "load_splits", "probe_layers", "setup"]
__version__ = "0.1.0"
