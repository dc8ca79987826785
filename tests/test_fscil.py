"""Few-shot class-incremental learning (methods/fscil.py): the session schedule, the shots, the pseudo-class labels,
and the session loops of the prototype classifier and the fine-tuning baseline."""

import numpy as np
import pandas as pd
import pytest
import torch

from ssl_tutorial.data.episodes import BASE_SHAPES, NOVEL_SHAPES
from ssl_tutorial.data.shapes import SHAPES, ShapesWorld
from ssl_tutorial.methods import fscil
from ssl_tutorial.methods.supervised import Supervised
from ssl_tutorial.nets import ConvNet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_session_schedule_starts_with_the_base_classes_then_novel_pairs():
    sessions = fscil.session_classes()
    assert sessions[0] == [SHAPES.index(s) for s in BASE_SHAPES]
    assert [len(s) for s in sessions] == [8, 2, 2, 2, 2]
    assert [c for s in sessions[1:] for c in s] == [SHAPES.index(s) for s in NOVEL_SHAPES]
    flat = [c for s in sessions for c in s]
    assert len(flat) == len(set(flat)) == 16
    assert [len(s) for s in fscil.session_classes(per_session=4)] == [8, 4, 4]


@pytest.mark.parametrize("kwargs, match", [
    (dict(novel=("pentagon", "blob")), "unknown shapes"),
    (dict(base=("triangle", "pentagon"), novel=("pentagon", "hexagon")), "overlap"),
    (dict(per_session=3), "per_session"),
    (dict(per_session=0), "per_session"),
])
def test_session_schedule_rejects_bad_splits(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fscil.session_classes(**kwargs)


def test_shots_are_distinct_of_their_class_and_seeded():
    labels = np.repeat(np.arange(4), 10)
    shots = fscil.draw_shots(labels, [1, 3], shots=5, seed=0)
    assert sorted(shots) == [1, 3]
    for c, idx in shots.items():
        assert len(set(idx)) == 5 and (labels[idx] == c).all()
    again = fscil.draw_shots(torch.as_tensor(labels), [1, 3], 5, seed=0)
    assert all((again[c] == shots[c]).all() for c in shots)
    other = fscil.draw_shots(labels, [1, 3], 5, seed=1)
    assert any((other[c] != shots[c]).any() for c in shots)
    with pytest.raises(ValueError, match="fewer than shots"):
        fscil.draw_shots(labels, [1], shots=11, seed=0)


def test_pseudo_class_targets_are_four_y_plus_the_rotation():
    model = fscil.PseudoClasses(ConvNet((4, 8)), num_classes=6)
    labels = torch.tensor([2, 5, 0])
    images = torch.rand(3, 3, 8, 8)
    expected = torch.tensor([4 * y + r for r in range(4) for y in labels.tolist()])  # views are rotation-major
    model.forward = lambda x: 50.0 * torch.nn.functional.one_hot(expected, 24).float()
    loss, logs = model.loss((images, labels))
    assert loss.item() < 1e-6 and logs["acc"].item() == 1.0
    real = fscil.PseudoClasses(ConvNet((4, 8)), num_classes=6)
    assert real(images).shape == (3, 24) and torch.isfinite(real.loss((images, labels))[0])


@pytest.fixture(scope="module")
def world_data():
    world = ShapesWorld(size=16)
    base = world.with_(shapes=BASE_SHAPES).sample(160, seed=0)
    pool = world.with_(shapes=NOVEL_SHAPES).sample(120, seed=1)
    test = world.sample(240, seed=2)
    sessions = fscil.session_classes()
    shots = fscil.draw_shots(pool.labels, [c for s in sessions[1:] for c in s], 3, seed=0)
    return base, pool, test, sessions, shots


def _check_table(table, sessions):
    assert isinstance(table, pd.DataFrame) and list(table.index) == list(range(len(sessions)))
    assert list(table["classes"]) == list(np.cumsum([len(s) for s in sessions]))
    assert table[["accuracy (%)", "base (%)"]].apply(lambda c: c.between(0, 100)).all().all()
    assert np.isnan(table["novel (%)"].iloc[0]) and table["novel (%)"].iloc[1:].between(0, 100).all()


def test_prototype_sessions_leave_the_backbone_untouched_even_when_tuning(world_data):
    base, pool, test, sessions, shots = world_data
    torch.manual_seed(0)
    backbone = ConvNet((4, 8)).eval()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    frozen = fscil.prototype_sessions(backbone, base, pool, shots, test, sessions)
    tuned = fscil.prototype_sessions(backbone, base, pool, shots, test, sessions, tune_steps=3, tune_lr=1e-2)
    for table in (frozen, tuned):
        _check_table(table, sessions)
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())
    assert frozen["base (%)"].iloc[0] == frozen["accuracy (%)"].iloc[0]  # session 0 has base classes only
    pd.testing.assert_series_equal(tuned.iloc[0], frozen.iloc[0])  # nothing is tuned before the first new session


def test_tuning_moves_the_last_block_only_and_restores_the_flags(world_data):
    _, pool, _, sessions, shots = world_data
    torch.manual_seed(0)
    backbone = ConvNet((4, 8)).eval()
    first = next(backbone.blocks[0].parameters())
    first.requires_grad_(False)  # a flag the caller set must survive
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    seen = sessions[0] + sessions[1]
    prototypes = {c: torch.nn.functional.normalize(torch.randn(8), dim=0) for c in seen}
    fscil._tune_last_block(backbone, pool, [shots[c] for c in sessions[1]], seen, prototypes, steps=3, lr=1e-2,
                           scale=16.0)
    after = backbone.state_dict()
    moved = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert moved and all(k.startswith("blocks.1.") for k in moved)
    assert not any("running" in k for k in moved)  # batch norm statistics stay as stored
    assert not first.requires_grad and all(p.requires_grad for p in backbone.blocks[1].parameters())


def test_finetuning_sessions_copy_the_model_and_are_deterministic(world_data):
    _, pool, test, sessions, shots = world_data
    torch.manual_seed(0)
    model = Supervised(ConvNet((4, 8)), 16).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = fscil.finetune_sessions(model, pool, shots, test, sessions, steps=3, lr=1e-2)
    _check_table(table, sessions)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    again = fscil.finetune_sessions(model, pool, shots, test, sessions, steps=3, lr=1e-2)
    pd.testing.assert_frame_equal(table, again)
    still = fscil.finetune_sessions(model, pool, shots, test, sessions, steps=0, lr=1e-2)
    assert still["base (%)"].iloc[0] == table["base (%)"].iloc[0]  # session 0 is before any fine-tuning


def test_labels_outside_the_seen_classes_are_an_error():
    assert fscil._positions(torch.tensor([5, 2]), [2, 7, 5]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="not among the seen classes"):
        fscil._positions(torch.tensor([3]), [2, 7])


def test_forgetting_is_the_drop_of_base_accuracy():
    table = pd.DataFrame({"base (%)": [90.0, 80.0, 70.0]}, index=pd.Index([0, 1, 2], name="session"))
    assert fscil.forgetting(table) == 20.0


def test_session_figures_draw_one_line_or_point_per_strategy():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssl_tutorial import fewshot_plots

    table = pd.DataFrame({"accuracy (%)": [80.0, 60.0], "base (%)": [80.0, 70.0], "novel (%)": [np.nan, 30.0]},
                         index=pd.Index([0, 1], name="session"))
    fig = fewshot_plots.session_curves({"a": table, "b": table - 5}, highlight="a")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["a", "b"]
    plt.close(fig)
    fig = fewshot_plots.stability_adaptability({"a": (70.0, 30.0), "b": (50.0, 45.0)})
    assert len(fig.axes[0].collections) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]
    plt.close(fig)
