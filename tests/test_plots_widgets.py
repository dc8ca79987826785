import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
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
