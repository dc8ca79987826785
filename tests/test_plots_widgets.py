import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ssl_tutorial import plots, widgets  # noqa: E402
from ssl_tutorial.data.shapes import ShapesWorld  # noqa: E402


@pytest.fixture
def data():
    return ShapesWorld(size=16).sample(60, seed=0)


def test_static_figures(data):
    fig = plots.image_grid(data.images[:10], nrow=4, titles=list(range(10)), title="t")
    assert len(fig.axes) == 12
    fig = plots.probe_curves({"a": pd.DataFrame({"block": [1, 2], "accuracy": [0.2, 0.4]})})
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [20.0, 40.0]
    assert len(plots.bars({"x": 0.5, "y": 0.25}, highlight="x").axes[0].patches) == 2
    plt.close("all")


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_and_scatter(data, method):
    pts = plots.embedding_2d(data.images.flatten(1), method)
    assert pts.shape == (60, 2)
    fig = plots.scatter_2d(pts, data.factors, "colour_name")
    assert sum(len(t.x) for t in fig.data) == 60
    with pytest.raises(ValueError, match="shape_name"):
        plots.scatter_2d(pts, data.factors, "weight")
    with pytest.raises(ValueError, match="pca, umap, tsne"):
        plots.embedding_2d(data.images.flatten(1), "mds")


def test_factor_explorer_callback_redraws(data, monkeypatch):
    pts = plots.embedding_2d(data.images.flatten(1), "pca")
    drawn = []
    original = plots.scatter_2d

    def spy(points, factors, color_by, title=""):
        drawn.append(color_by)
        return original(points, factors, color_by, title)

    monkeypatch.setattr(plots, "scatter_2d", spy)
    fig, box = widgets.factor_explorer(pts, data.factors, value="shape_name")
    control, _ = box.children
    assert fig.layout.title.text == "coloured by shape_name"
    control.value = "domain_name"  # what a reader does: the callback redraws, and must not raise
    assert drawn == ["shape_name", "domain_name"]


def test_jitter_explorer(data):
    table = pd.DataFrame({"jitter": [25, 180], "rotation_acc": [0.9, 0.3], "probe_gain": [0.1, 0.0]})
    examples = {25: data.images[:4], 180: data.images[4:8]}
    fig, box = widgets.jitter_explorer(table, examples, value=25)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [90.0, 30.0]
    box.children[0].value = 180
    with pytest.raises(ValueError, match="not trained"):
        plots.jitter_curve(table, 45)
    plt.close("all")


def test_show_source():
    assert plots.show_source(plots.image_grid).data.startswith("def image_grid")


def test_penalty_curve_and_explorer():
    sims = [-0.5, 0.0, 0.5, 0.9]
    fig, box = widgets.penalty_explorer(sims, temperatures=(0.1, 1.0), value=1.0)
    weights = fig.axes[0].collections[0].get_offsets()[:, 1]
    assert weights.sum() == pytest.approx(1.0) and list(weights) == sorted(weights), "harder negatives weigh more"
    box.children[0].value = 0.1  # the reader's move redraws without error
    cold = plots.penalty_curve(sims, 0.1).axes[0].collections[0].get_offsets()[:, 1]
    assert cold[-1] > weights[-1], "a colder loss concentrates the penalty on the hardest negative"
    plt.close("all")


def test_temperature_figures():
    table = pd.DataFrame({"tau": [0.1, 1.0], "uniformity": [-3.0, -2.0], "tolerance": [0.4, 0.7], "knn": [0.9, 0.8]})
    variant = table.iloc[[1]].assign(label="top-K")
    fig = plots.temperature_curves(table, variant)
    assert fig.axes[1].get_lines()[0].get_ydata().tolist() == [0.4, 0.7]
    sims = {0.1: {"positive": [0.9, 0.8], "negative": [0.0, -0.2]}, 1.0: {"positive": [0.5], "negative": [0.1]}}
    assert len(plots.similarity_histograms(sims).axes) == 2
    plt.close("all")


def test_sphere_slider_switches_models():
    import numpy as np

    rng = np.random.default_rng(0)
    points = {0.1: rng.normal(size=(20, 3)), 1.0: rng.normal(size=(20, 3))}
    labels = np.arange(20) % 4
    fig = plots.sphere(points, labels)
    assert len(fig.data) == 8 and [t.visible for t in fig.data] == [True] * 4 + [False] * 4
    radius = np.sqrt(np.asarray(fig.data[0].x) ** 2 + np.asarray(fig.data[0].y) ** 2 + np.asarray(fig.data[0].z) ** 2)
    assert np.allclose(radius, 1.0)
    second = fig.layout.sliders[0].steps[1].args[0]["visible"]
    assert second == [False] * 4 + [True] * 4
    with pytest.raises(ValueError, match="shape"):
        plots.sphere({0.1: rng.normal(size=(20, 2))}, labels)


def test_gate_pair_explorer(monkeypatch):
    import torch

    gates = torch.rand(3, 3, 5)
    names = ["a", "b", "c"]
    drawn = []
    original = plots.gate_pair

    def spy(g, classes, first, second):
        drawn.append((first, second))
        return original(g, classes, first, second)

    monkeypatch.setattr(plots, "gate_pair", spy)
    fig, box = widgets.gate_pair_explorer(gates, names, "a", "b")
    assert sorted(fig.axes[0].patches[k].get_height() for k in range(5)) == sorted(gates[0, 1].tolist())
    box.children[0].children[1].value = "c"  # the reader picks another second class
    assert drawn == [("a", "b"), ("a", "c")]
    with pytest.raises(ValueError, match="unknown class"):
        plots.gate_pair(gates, names, "a", "z")
    plt.close("all")


def test_sinkhorn_steps_and_explorer(monkeypatch):
    import torch

    scores = torch.rand(12, 4) * 2 - 1
    scores[:, 0] += 2.0  # every sample prefers prototype 0
    fig = plots.sinkhorn_steps(scores, 0.05, 0)
    shares = [p.get_height() for p in fig.axes[2].patches]
    assert shares[0] > 0.9  # a plain softmax puts (almost) the whole batch on prototype 0
    fig = plots.sinkhorn_steps(scores, 0.05, 50)
    assert [p.get_height() for p in fig.axes[2].patches] == pytest.approx([0.25] * 4, abs=1e-3)
    assert [p.get_width() for p in fig.axes[1].patches] == pytest.approx([1.0] * 12, abs=1e-3)
    with pytest.raises(ValueError, match="n_iters"):
        plots.sinkhorn_steps(scores, 0.05, -1)
    drawn = []
    original = plots.sinkhorn_steps

    def spy(s, epsilon, n_iters):
        drawn.append((epsilon, n_iters))
        return original(s, epsilon, n_iters)

    monkeypatch.setattr(plots, "sinkhorn_steps", spy)
    fig, box = widgets.sinkhorn_explorer(scores, 0.05, 0)
    box.children[0].children[0].value = 3  # the reader moves the iteration slider
    box.children[0].children[1].value = 0.3  # then epsilon
    assert drawn == [(0.05, 0), (0.05, 3), (0.3, 3)]
    plt.close("all")


def test_cluster_gallery_and_collapse_curves():
    import torch

    from ssl_tutorial.train import History

    images = torch.rand(20, 3, 8, 8)
    assignments = torch.tensor([0] * 10 + [1] * 6 + [2] * 4)
    fig = plots.cluster_gallery(images, assignments, per_cluster=5)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["#0 (10)", "#1 (6)", "#2 (4)"]
    canvas = fig.axes[0].images[0].get_array()
    assert np.allclose(canvas[1:9, 1:9], images[0].permute(1, 2, 0).numpy()), "row 1 starts with image 0"
    with pytest.raises(ValueError, match="assignments"):
        plots.cluster_gallery(images, assignments[:5])
    history = History(loss=[3.0, 2.0, 1.0], logs={"prototypes_used": [8, 4, 1]})
    fig = plots.collapse_curves({"softmax": history}, n_prototypes=8)
    assert len(fig.axes) == 2
    plt.close("all")


def test_word_patches_bow_prediction_and_explorer(monkeypatch):
    import torch

    patches = torch.rand(10, 3, 6, 6)
    codes = torch.softmax(torch.randn(10, 4), 1)
    codes[3] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # location 3 is the clearest example of word 2
    fig = plots.word_patches(patches, codes, 2, n=4, nrow=4)
    assert np.allclose(fig.axes[0].images[0].get_array(), patches[3].permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="word"):
        plots.word_patches(patches, codes, 4)
    fig = plots.bow_prediction(torch.tensor([0.1, 0.6, 0.3]), torch.tensor([0.2, 0.5, 0.3]), top=2)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2"]
    drawn = []
    original = plots.word_patches

    def spy(p, c, word, **kw):
        drawn.append(word)
        return original(p, c, word, **kw)

    monkeypatch.setattr(plots, "word_patches", spy)
    fig, box = widgets.word_explorer(patches, codes, 1)
    box.children[0].value = 3
    assert drawn == [1, 3]
    plt.close("all")


def test_coreset_budget_and_explorer(monkeypatch):
    import torch

    from ssl_tutorial.methods.simcore import coreset, round_distances

    rng = np.random.default_rng(0)
    points = rng.normal(size=(30, 2))
    groups = np.array(["shape"] * 20 + ["target class"] * 10)
    order = coreset(torch.tensor(points[20:]), torch.tensor(points), 10, n_centroids=3)
    curve = round_distances(torch.tensor(points[20:]), torch.tensor(points), order, n_centroids=3)
    assert len(curve) == 4 and (curve[1:] >= curve[:-1]).all(), "later rounds take farther samples"
    fig = plots.coreset_budget(points, groups, points[20:], order, curve, 4)
    heights = [p.get_height() for p in fig.axes[2].patches]
    share = 100 * float(np.mean(groups[order[:4].numpy()] == "target class"))
    assert heights == pytest.approx([100 * 20 / 30, 100 * 10 / 30, 100 - share, share]), "open set, then the coreset"
    with pytest.raises(ValueError, match="budget"):
        plots.coreset_budget(points, groups, points[20:], order, curve, 11)
    drawn = []
    original = plots.coreset_budget

    def spy(p, g, t, o, c, budget):
        drawn.append(budget)
        return original(p, g, t, o, c, budget)

    monkeypatch.setattr(plots, "coreset_budget", spy)
    fig, box = widgets.budget_explorer(points, groups, points[20:], order, curve, 4)
    box.children[0].value = 8
    assert drawn == [4, 8]
    plt.close("all")


def test_latent_figures_and_direction_sliders(monkeypatch):
    import pandas as pd
    import torch

    from ssl_tutorial import latent_plots
    from ssl_tutorial.methods.householder import LatentVAE

    fig = latent_plots.direction_strengths({"a": np.array([2.0, 1.0, 0.2]), "b": np.ones(6)}, meaningful=0.25)
    bars = [p.get_height() for p in fig.axes[0].patches]
    assert bars == pytest.approx([1.0, 0.5, 0.1]), "each generator divided by its strongest direction"
    effects = pd.DataFrame({"shape": [1.0, 0.1], "hue": [0.0, 0.9]}, index=["d1", "d2"])
    fig = latent_plots.factor_effects({"x": effects, "y": effects})
    assert [p.get_height() for p in fig.axes[0].patches] == [1.0, 0.1, 0.0, 0.9], "factor by factor, direction by direction"
    drawn = []
    original = latent_plots.generated_side_by_side

    def spy(images, nrow=4):
        drawn.append({k: v.clone() for k, v in images.items()})
        return original(images, nrow=nrow)

    monkeypatch.setattr(latent_plots, "generated_side_by_side", spy)
    vae = LatentVAE(latent_dim=8, size=16, first="householder", rank=2, width=16, widths=(8, 8))
    z = torch.randn(4, 8)
    directions = vae.directions()[0]
    fig, box = widgets.direction_sliders({"H": (vae, directions, z), "H too": (vae, directions, z)})
    columns = box.children[0].children
    assert len(columns) == 2 and len(columns[0].children) == 2, "one column of sliders per generator"
    columns[0].children[0].value = 2.5  # the reader drags the first direction of the first generator
    assert len(drawn) == 2, "the figure for the sliders at 0, then one redraw"
    assert not torch.allclose(drawn[1]["H"], drawn[0]["H"], atol=1e-4), "the dragged generator's images change"
    assert torch.allclose(drawn[1]["H too"], drawn[0]["H too"]), "the other generator's do not"
    plt.close("all")


def test_diffusion_figures_and_feature_explorer(monkeypatch):
    import torch

    from ssl_tutorial import diffusion_plots
    from ssl_tutorial.methods.diffusion import DDPM

    model = DDPM(channels=8, T=100)
    images, labels = torch.rand(12, 3, 8, 8), np.arange(12) % 3
    fig = diffusion_plots.noising_strip(model, images[:2], (0, 50, 100))
    assert len(fig.axes) == 6
    tables = {"a": pd.DataFrame({"enc1": [90.0, 40.0], "mid": [80.0, 60.0]}, index=[0, 50]),
              "b": pd.DataFrame({"enc1": [85.0, 20.0], "mid": [70.0, 30.0]}, index=[0, 50])}
    fig = diffusion_plots.probe_heatmaps(tables)
    assert [t.get_text() for t in fig.axes[0].texts] == ["90", "80", "40", "60"], "one number per (t, block)"
    fig = diffusion_plots.best_block_curves(tables)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [90.0, 60.0], "the best block at each t"
    drawn = []
    original = diffusion_plots.feature_view

    def spy(model_, images_, labels_, t, block, accuracy=None, **kw):
        drawn.append((t, block, accuracy))
        return original(model_, images_, labels_, t, block, accuracy, **kw)

    monkeypatch.setattr(diffusion_plots, "feature_view", spy)
    fig, box = widgets.feature_explorer(model, images, labels, tables["a"], t=0, block="mid")
    pick_t, pick_block = box.children[0].children
    pick_t.value = 50
    pick_block.value = "enc1"
    assert drawn == [(0, "mid", 80.0), (50, "mid", 60.0), (50, "enc1", 40.0)], "each choice redraws, with its accuracy"
    plt.close("all")


def test_guidance_figures_and_choice_explorer():
    import torch

    from ssl_tutorial import diffusion_plots

    fig = diffusion_plots.accuracy_vs_t((0, 100), {"clean": [0.9, 0.2], "experts": [0.9, 0.6]}, chance=0.1)
    assert fig.axes[0].get_lines()[1].get_ydata().tolist() == [90.0, 60.0]
    fig = diffusion_plots.guided_samples({"a": torch.rand(5, 3, 8, 8), "b": torch.rand(5, 3, 8, 8)},
                                         {"a": "judge 10 %", "b": "judge 90 %"}, n=4)
    assert len(fig.axes) == 8 and "judge 90 %" in fig.axes[4].texts[0].get_text()
    table = pd.DataFrame({"variant": ["x", "x", "y"], "scale": [1.0, 3.0, 1.0], "accuracy": [0.2, 0.4, 0.3],
                          "diversity": [0.8, 0.6, 0.7]})
    fig = diffusion_plots.guidance_tradeoff(table)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [20.0, 40.0], "one line per variant, through its scales"
    calls = []
    fig, box = widgets.choice_explorer(lambda s: calls.append(s) or plt.figure(), (1, 3, 10), value=3)
    box.children[0].value = 10
    assert calls == [3, 10], "the figure for the default scale, then one redraw per move"
    plt.close("all")


def test_readers_at_t():
    import torch

    from ssl_tutorial import diffusion_plots

    fig = diffusion_plots.readers_at_t((0, 100), {"clean": [0.9, 0.2], "experts": [0.9, 0.6]}, 100, torch.rand(3, 3, 8, 8),
                                       [0, 1, 2], {"clean": [0, 0, 0], "experts": [0, 1, 2]}, chance=0.1)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [90.0, 20.0] and len(fig.axes) == 4
    assert fig.axes[3].get_xlabel() == "a0 b2" and fig.axes[3].get_title() == "is 2"
    plt.close("all")


def test_vision_language_figures_and_text_explorer(data):
    import torch

    from ssl_tutorial import vl_plots

    images = data.images[:4]
    fig = vl_plots.similarity_matrix(torch.eye(4), images, ["a red circle", "b", "c", "d"])
    assert len(fig.axes) == 5 and fig.axes[-1].get_images()[0].get_array().shape == (4, 4)
    scores = torch.tensor([0.1, 0.9, 0.5, 0.3])
    fig = vl_plots.ranked_images(images, scores, k=3, title="q")
    assert [ax.get_title() for ax in fig.axes] == ["0.90", "0.50", "0.30"]
    assert "zebra" in vl_plots.message("not in the vocabulary: zebra").axes[0].texts[0].get_text()
    asked = []

    def draw(text):
        asked.append(text)
        return vl_plots.message(text)

    fig, box = widgets.text_explorer(draw, "a red circle")
    box.children[0].value = "a blue star"  # the reader types another caption
    assert asked == ["a red circle", "a blue star"]
    plt.close("all")
