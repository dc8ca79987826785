"""The translated-glyphs world (data/glyphs.py) and the figures of the untrainable notebook."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ssl_tutorial import theory_plots  # noqa: E402
from ssl_tutorial.data.glyphs import glyph_set, translated_glyphs  # noqa: E402


def test_glyph_set_is_seeded_distinct_and_binary():
    g = glyph_set(10, 5, seed=3)
    assert g.shape == (10, 5, 5) and set(np.unique(g)) <= {0.0, 1.0}
    assert len({p.tobytes() for p in g}) == 10 and g.reshape(10, -1).sum(1).min() > 0
    assert np.array_equal(g, glyph_set(10, 5, seed=3)) and not np.array_equal(g, glyph_set(10, 5, seed=4))


def test_translated_glyphs_places_each_glyph_at_its_corner():
    g = glyph_set(4, 3, seed=0)
    data = translated_glyphs(5, g, canvas=9, noise=0.0, seed=1)
    assert data.images.shape == (20, 3, 9, 9) and data.labels.tolist() == sorted(data.labels.tolist())
    assert isinstance(data.factors, pd.DataFrame) and list(data.factors.columns) == ["row", "col"]
    for image, label, (r, c) in zip(data.images, data.labels, data.factors[["row", "col"]].to_numpy()):
        assert torch.equal(image[0, r:r + 3, c:c + 3], torch.from_numpy(g[label]))
        assert float(image[0].sum()) == float(g[label].sum())  # nothing outside the glyph
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])  # grey
    noisy = translated_glyphs(5, g, canvas=9, noise=0.1, seed=1)
    assert torch.equal(noisy.images, translated_glyphs(5, g, canvas=9, noise=0.1, seed=1).images)
    assert 0.05 < float((noisy.images - data.images).std()) < 0.15


@pytest.mark.parametrize("call", [lambda: glyph_set(1), lambda: glyph_set(4, 1),
                                  lambda: translated_glyphs(2, glyph_set(4, 5), canvas=4),
                                  lambda: translated_glyphs(-1, glyph_set(4, 5)),
                                  lambda: translated_glyphs(2, glyph_set(4, 5), noise=-0.1)])
def test_bad_arguments_are_one_line_errors(call):
    with pytest.raises(ValueError) as e:
        call()
    assert "\n" not in str(e.value)


def test_guidance_figures():
    table = pd.DataFrame({"train": [100.0, 100.0], "test": [20.0, 30.0]}, index=["alone", "guided"])
    assert theory_plots.guidance_bars(table) is not None
    evals = [{"step": s, "train": 50.0 + s, "test": 10.0 + s / 10} for s in (10, 20, 30)]
    fig = theory_plots.guidance_curves({"alone": evals, "guided": evals})
    assert len(fig.axes[0].lines) == 4
    fig = theory_plots.cka_heatmaps({"a": np.eye(3)[:, :2], "b": np.ones((3, 2))}, ["1", "2", "3"], ["x", "y"])
    assert len(fig.axes) == 3  # two heatmaps and the colour bar
