"""Chapter 3's shared pieces: episodes, the base/novel split, the attribute table, and the transductive clustering of
methods/transductive.py."""

import numpy as np
import pytest
import torch

from ssl_tutorial.data.episodes import (
    ATTRIBUTES,
    BASE_SHAPES,
    NOVEL_SHAPES,
    class_attributes,
    mean_ci,
    sample_episodes,
)
from ssl_tutorial.data.shapes import SHAPES, SUPERCLASSES
from ssl_tutorial.methods.transductive import (
    episode_accuracy,
    knn_affinity,
    preprocess,
    prototypes,
    transductive_assign,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_split_is_a_partition_with_two_classes_of_each_superclass_per_side():
    assert set(BASE_SHAPES) | set(NOVEL_SHAPES) == set(SHAPES) and not set(BASE_SHAPES) & set(NOVEL_SHAPES)
    for side in (BASE_SHAPES, NOVEL_SHAPES):
        assert sorted(SHAPES.index(s) // 4 for s in side) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_episodes_are_disjoint_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 30)
    eps = sample_episodes(labels, range(5, 10), n_way=3, k_shot=2, n_query=4, n_episodes=20, seed=1)
    assert len(eps) == 20
    for e in eps:
        assert len(set(e.classes)) == 3 and set(e.classes) <= set(range(5, 10))
        assert len(e.support) == 6 and len(e.query) == 12
        assert not set(e.support) & set(e.query) and len(set(e.query)) == 12
        assert (labels[e.support] == e.classes[e.support_y]).all()
        assert (labels[e.query] == e.classes[e.query_y]).all()
        assert np.bincount(e.query_y).tolist() == [4, 4, 4]
    again = sample_episodes(torch.as_tensor(labels), range(5, 10), 3, 2, 4, 20, seed=1)
    assert all((a.support == b.support).all() and (a.query == b.query).all() for a, b in zip(eps, again))
    other = sample_episodes(labels, range(5, 10), 3, 2, 4, 20, seed=2)
    assert any((a.query != b.query).any() for a, b in zip(eps, other))


def test_episodes_reject_bad_requests():
    labels = np.repeat(np.arange(4), 5)
    with pytest.raises(ValueError, match="n_way"):
        sample_episodes(labels, range(4), n_way=5)
    with pytest.raises(ValueError, match="fewer than"):
        sample_episodes(labels, range(4), n_way=2, k_shot=1, n_query=5)
    with pytest.raises(ValueError, match=">= 1"):
        sample_episodes(labels, range(4), n_way=2, k_shot=0)


def test_mean_ci():
    mean, half = mean_ci([50.0, 60.0, 70.0, 80.0])
    assert mean == 65.0 and half == pytest.approx(1.96 * np.std([50, 60, 70, 80], ddof=1) / 2)
    assert np.isnan(mean_ci([3.0])[1])
    with pytest.raises(ValueError):
        mean_ci([])


def test_attribute_table():
    assert list(ATTRIBUTES.index) == list(SHAPES)
    assert set(ATTRIBUTES["superclass"]) == set(SUPERCLASSES)
    assert not ATTRIBUTES.drop(columns="superclass").duplicated().any()  # every class has its own signature
    table = class_attributes()
    assert table.loc[list(NOVEL_SHAPES), "novel"].all() and not table.loc[list(BASE_SHAPES), "novel"].any()
    assert (table.loc[list(BASE_SHAPES), "name"] == list(BASE_SHAPES)).all()
    assert not set(table.loc[list(NOVEL_SHAPES), "name"]) & set(SHAPES)
    with pytest.raises(ValueError, match="unknown shapes"):
        class_attributes(novel=("dodecagon",))


def _clusters(n_way=3, per=10, d=4, spread=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(n_way, d, generator=g)
    y = torch.arange(n_way).repeat_interleave(per)
    return centres[y] + spread * torch.randn(len(y), d, generator=g), y


def test_prototypes_and_affinity():
    x, y = _clusters()
    m = prototypes(x, y, 3)
    assert torch.allclose(m[1], x[y == 1].mean(0))
    w = knn_affinity(x, k=2)
    assert (w.sum(1) == 2).all() and (w.diagonal() == 0).all()
    assert (y[w.nonzero()[:, 0]] == y[w.nonzero()[:, 1]]).all()  # tight clusters: neighbours share the class
    assert torch.allclose(preprocess(x, x.mean(0)).norm(dim=1), torch.ones(len(x)))


def test_transductive_assign_is_a_distribution_and_fixes_a_shifted_prototype():
    x, y = _clusters(per=20, spread=0.5, seed=1)
    support = torch.cat([x[y == k][:1] for k in range(3)])
    query = torch.cat([x[y == k][1:] for k in range(3)])
    query_y = torch.cat([y[y == k][1:] for k in range(3)])
    z, history = transductive_assign(support, torch.arange(3), query, 3, lam=0.5, n_iter=5, return_history=True)
    assert z.shape == (len(query), 3) and torch.allclose(z.sum(1), torch.ones(len(query)))
    assert len(history) == 6
    for method in ("protonet", "kmeans", "laplacian"):
        assert episode_accuracy(support, torch.arange(3), query, query_y, 3, method) > 90
    with pytest.raises(ValueError, match="unknown method"):
        episode_accuracy(support, torch.arange(3), query, query_y, 3, "svm")
    with pytest.raises(ValueError, match="temperature"):
        transductive_assign(support, torch.arange(3), query, 3, temperature=0)


def test_transduction_helps_when_the_support_point_is_atypical():
    # one class's only support point sits at the edge of its cluster, towards another class
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    query_y = torch.arange(2).repeat_interleave(30)
    query = centres[query_y] + 0.6 * torch.randn(60, 2, generator=g)
    support = torch.tensor([[2.8, 0.0], [4.5, 0.0]])  # class 0's shot is atypical: closer to class 1's mass
    inductive = episode_accuracy(support, torch.arange(2), query, query_y, 2, "protonet")
    transductive = episode_accuracy(support, torch.arange(2), query, query_y, 2, "kmeans", temperature=0.5)
    assert transductive > inductive + 5


def test_soft_kmeans_never_increases_its_energy():
    x, y = _clusters(n_way=4, per=12, d=5, spread=1.5, seed=4)
    support, support_y = torch.cat([x[y == k][:2] for k in range(4)]), torch.arange(4).repeat_interleave(2)
    query = torch.cat([x[y == k][2:] for k in range(4)])
    T = 0.5
    _, history = transductive_assign(support, support_y, query, 4, lam=0.0, temperature=T, n_iter=8,
                                     return_history=True)
    one_hot = torch.nn.functional.one_hot(support_y, 4).float()

    def energy(m, z):
        return ((one_hot * torch.cdist(support, m) ** 2).sum() + (z * torch.cdist(query, m) ** 2).sum()) / T \
            + (z * z.clamp_min(1e-30).log()).sum()

    energies = [energy(m, z).item() for m, z in history]
    assert all(b <= a + 1e-5 * abs(a) for a, b in zip(energies, energies[1:])), energies  # float32 rounding
    assert energies[-1] < energies[0]


def test_episode_accuracy_takes_options_for_every_method():
    x, y = _clusters(per=6, seed=5)
    support, query = torch.cat([x[y == k][:1] for k in range(3)]), torch.cat([x[y == k][1:] for k in range(3)])
    query_y = torch.arange(3).repeat_interleave(5)
    for method in ("protonet", "kmeans", "laplacian"):
        acc = episode_accuracy(support, torch.arange(3, dtype=torch.int32), query, query_y, 3, method, lam=1.0, k=3)
        assert 0 <= acc <= 100


def test_episode_figure_draws_every_iteration():
    import matplotlib.pyplot as plt

    from ssl_tutorial.fewshot_plots import episode_iterations

    x, y = _clusters(n_way=4, per=8, d=6, spread=0.8, seed=2)
    support = torch.cat([x[y == k][:1] for k in range(4)])
    _, history = transductive_assign(support, torch.arange(4), x, 4, lam=0.5, n_iter=3, return_history=True)
    for t in range(4):
        fig = episode_iterations(support, np.arange(4), x, y.numpy(), history, t)
        assert "queries right" in fig.axes[0].get_title()
        plt.close(fig)
    with pytest.raises(ValueError, match="iteration"):
        episode_iterations(support, np.arange(4), x, y.numpy(), history, 4)


def test_base_backbone_never_sees_a_novel_class():
    from ssl_tutorial import artifacts, setup

    cfg = setup("smoke", seed=3, verbose=False)
    preset, base, test = artifacts.few_shot_data(cfg)
    assert set(base.factors["shape_name"]) == set(BASE_SHAPES)
    assert set(test.factors["shape_name"]) == set(SHAPES)
    assert base.images.shape[-1] == preset["pixels"] and len(base) == preset["n_train"]
