"""The figures of chapter 4 (discovery): what each draws, read back from the figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ssl_tutorial import discovery_plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_prior_heatmaps_draws_one_axes_per_panel_and_a_colorbar():
    rng = np.random.default_rng(0)
    panels = {"true": rng.dirichlet(np.ones(4), 3), "estimated": rng.dirichlet(np.ones(4), 3)}
    fig = discovery_plots.prior_heatmaps(panels, ["a", "b", "c", "d"], title="priors")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(panels) + 1  # the colorbar
    for ax, (name, matrix) in zip(fig.axes, panels.items()):
        assert ax.get_title() == name
        np.testing.assert_allclose(ax.images[0].get_array(), matrix)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["d0", "d1", "d2"]
    assert fig._suptitle.get_text() == "priors"
    single = discovery_plots.prior_heatmaps({"only": np.eye(2)}, ["x", "y"])
    assert len(single.axes) == 2


def test_prior_heatmaps_rejects_no_panels():
    with pytest.raises(ValueError, match="at least one"):
        discovery_plots.prior_heatmaps({}, ["a"])


def test_contingency_row_normalises():
    rows = np.array([0, 0, 0, 1, 2, 2])
    columns = np.array([0, 1, 1, 2, 0, 2])
    fig = discovery_plots.contingency(rows, columns, ["r0", "r1", "r2", "empty"], ["c0", "c1", "c2"], title="t")
    assert isinstance(fig, Figure)
    table = np.asarray(fig.axes[0].images[0].get_array())
    assert table.shape == (4, 3)
    np.testing.assert_allclose(table[:3].sum(1), 1)
    np.testing.assert_array_equal(table[3], 0)  # an empty row stays empty, no division by zero
    np.testing.assert_allclose(table[:3], [[1 / 3, 2 / 3, 0], [0, 0, 1], [0.5, 0, 0.5]])
    assert fig.axes[0].get_title() == "t"


def test_contingency_draws_on_a_given_axes():
    fig, ax = plt.subplots()
    assert discovery_plots.contingency([0, 1], [1, 0], ["a", "b"], ["x", "y"], ax=ax) is fig
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), [[0, 1], [1, 0]])


def test_scatter_by_class_draws_one_group_per_class():
    rng = np.random.default_rng(0)
    points, labels = rng.standard_normal((30, 2)), np.repeat([0, 1, 2], 10)
    fig = discovery_plots.scatter_by_class(points, labels, ["a", "b", "c"], title="latent")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    for k, collection in enumerate(ax.collections):
        np.testing.assert_allclose(collection.get_offsets(), points[labels == k])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]


def test_silhouette_curve_marks_the_best_k():
    scores = pd.Series({2: 0.3, 3: 0.5, 4: 0.8, 5: 0.6}, name="silhouette")
    fig = discovery_plots.silhouette_curve(scores, truth=5, title="k")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    curve, best, truth = ax.get_lines()
    np.testing.assert_array_equal(curve.get_xdata(), [2, 3, 4, 5])
    np.testing.assert_allclose(curve.get_ydata(), [0.3, 0.5, 0.8, 0.6])
    assert list(best.get_xdata()) == [4, 4] and list(truth.get_xdata()) == [5, 5]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["best k = 4", "true k = 5"]
    without = discovery_plots.silhouette_curve(scores).axes[0]
    assert len(without.get_lines()) == 2


def test_cv_folds_colours_labelled_hidden_and_novel():
    hidden = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    fig = discovery_plots.cv_folds(hidden, known=np.arange(6), novel=[6, 7])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    table = np.asarray(ax.images[0].get_array())
    expected = np.array([[1, 1, 0, 0, 0, 0, 2, 2],
                         [0, 0, 1, 1, 0, 0, 2, 2],
                         [0, 0, 0, 0, 1, 1, 2, 2]])
    np.testing.assert_array_equal(table, expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"c{c}" for c in range(8)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fold 0", "fold 1", "fold 2"]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["labelled", "hidden: clustered", "novel: unlabelled, never scored"]
    image = ax.images[0]
    for value, patch in enumerate(legend.get_patches()):  # the legend's colours are those of the cells
        np.testing.assert_allclose(image.to_rgba(float(value)), patch.get_facecolor())


def test_robust_loss_view_draws_the_ramp_and_the_tent():
    fig = discovery_plots.robust_loss_view(gammas=(0.5, 2.0))
    left, right = fig.axes
    assert len(left.lines) == 3 and len(right.lines) == 3  # the 0-1 reference and one line per gamma
    rho, ramp = left.lines[1].get_data()
    np.testing.assert_allclose(ramp, np.clip(1 - 0.5 * np.asarray(rho), 0, 1), atol=1e-6)
    rho, tent = right.lines[2].get_data()
    np.testing.assert_allclose(tent, np.clip(1 - 2.0 * np.abs(np.asarray(rho)), 0, 1), atol=1e-6)
    assert not np.asarray(right.lines[0].get_data()[1]).any()  # the 0-1 loss on its own pseudo-label: always 0


def test_error_curves_draws_each_method_mean_and_the_references():
    table = pd.DataFrame({"n": [10, 10, 100, 100] * 2, "method": ["ERM"] * 4 + ["RSS"] * 4,
                          "draw": [0, 1] * 4, "error": [40, 42, 40, 42, 44, 46, 20, 30]})
    limit = pd.Series([25.0, 22.0], index=[10, 100])
    fig = discovery_plots.error_curves(table, "n", {"Bayes": 15.9, "limit": limit}, log=True)
    ax = fig.axes[0]
    by_label = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(by_label["RSS"].get_ydata(), [45, 25])
    np.testing.assert_allclose(by_label["ERM"].get_ydata(), [41, 41])
    np.testing.assert_allclose(by_label["Bayes"].get_ydata(), [15.9, 15.9])
    np.testing.assert_allclose(by_label["limit"].get_ydata(), [25, 22])
    assert ax.get_xscale() == "log"


def test_boundaries_2d_draws_each_boundary_orthogonal_to_its_theta():
    from ssl_tutorial.data.mixtures import make_shifted_mixture

    world = make_shifted_mixture(dim=2, norm=1.5, shift=1.0, seed=3)
    x_l, y_l = world.labelled(6, seed=3)
    x_u = world.unlabelled(50, seed=3)
    theta = world.mu_1  # a boundary orthogonal to the shifted mean
    fig = discovery_plots.boundaries_2d(world, x_l, y_l, x_u, {"RSS": theta})
    ax = fig.axes[0]
    lines = {line.get_label().split(" (")[0]: line for line in ax.lines}
    assert set(lines) == {"Bayes", "shifted domain's optimum", "RSS"}
    assert lines["RSS"].get_label().endswith(f"({world.error(theta):.1f} %)")
    u = world.mu_0 / np.linalg.norm(world.mu_0)
    v = np.array([-u[1], u[0]]) * np.sign((world.mu_1 - world.mu_0) @ np.array([-u[1], u[0]]))
    for name, t in (("Bayes", world.mu_0), ("RSS", theta)):
        xs, ys = lines[name].get_data()
        along = np.array([xs[1] - xs[0], ys[1] - ys[0]])
        assert abs(along @ (np.stack([u, v]) @ t)) < 1e-9  # drawn in the (mu_0, shift) basis, orthogonal to theta
    # the Bayes boundary is vertical in that basis: the labelled classes sit left and right of it
    assert np.allclose(lines["Bayes"].get_xdata(), 0)


def test_score_strips_draws_one_strip_and_one_mean_per_group():
    rng = np.random.default_rng(0)
    scores = {"inliers": rng.uniform(0.5, 1, 20), "virtual outliers": rng.uniform(-0.5, 0.5, 15),
              "anomalies": list(rng.uniform(-1, 0, 10))}
    fig = discovery_plots.score_strips(scores, title="scores")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.collections) == len(scores) and len(ax.lines) == len(scores)
    for k, (collection, line, values) in enumerate(zip(ax.collections, ax.lines, scores.values())):
        offsets = np.asarray(collection.get_offsets())
        np.testing.assert_allclose(offsets[:, 0], values)
        assert np.abs(offsets[:, 1] - k).max() < 0.75  # jittered around the group's row
        np.testing.assert_allclose(line.get_xdata(), [np.mean(values)] * 2)
        assert min(line.get_ydata()) < k < max(line.get_ydata())
        assert matplotlib.colors.to_hex(line.get_color()) == "#000000"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(scores)
    np.testing.assert_allclose(ax.get_yticks(), range(len(scores)))
    assert ax.get_title() == "scores"
    assert ax.yaxis_inverted(), "the first group on top"
    fig2, own = plt.subplots()
    assert discovery_plots.score_strips({"a": [0.1, 0.2]}, ax=own) is fig2 and len(own.collections) == 1


def test_auroc_bars_draws_one_bar_group_per_detector_and_chance():
    table = pd.DataFrame({"CSI-like": [60.0, 70.0, 55.0], "UniCon": [80.0, 90.0, 65.0]},
                         index=["cat", "dog", "ship"])
    fig = discovery_plots.auroc_bars(table, title="AUROC")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.containers) == len(table.columns)
    for container, column in zip(ax.containers, table.columns):
        np.testing.assert_allclose([bar.get_height() for bar in container], table[column])
        assert container.get_label() == column
    centres = np.array([[bar.get_x() + bar.get_width() / 2 for bar in c] for c in ax.containers])
    np.testing.assert_allclose(centres.mean(0), range(len(table)))  # each row's bars around its tick
    assert (np.diff(centres, axis=0) > 0).all(), "the detectors side by side, in column order"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(table.index)
    chance = [line for line in ax.lines if line.get_label() == "chance"]
    assert len(chance) == 1 and np.allclose(chance[0].get_ydata(), 50)
    assert ax.get_ylim() == (0, 100) and ax.get_title() == "AUROC"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) == {"CSI-like", "UniCon", "chance"}


def test_group_histograms_overlays_one_density_per_group_on_shared_bins():
    rng = np.random.default_rng(0)
    values = np.r_[rng.gamma(2.0, 0.1, 60), 2 + rng.standard_normal(20), 3 + rng.standard_normal(10)]
    groups = {"clean": np.arange(90) < 60, "ID-noisy": (60 <= np.arange(90)) & (np.arange(90) < 80),
              "other": np.arange(90) >= 80}
    fig = discovery_plots.group_histograms(values, groups, "loss", title="small loss", threshold=0.5)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.containers) == len(groups)
    edges = None
    for container, (name, mask) in zip(ax.containers, groups.items()):
        assert container.patches[0].get_label() == name  # hist labels its first bar, for the legend
        lefts = np.array([bar.get_x() for bar in container])
        widths = np.array([bar.get_width() for bar in container])
        heights = np.array([bar.get_height() for bar in container])
        assert len(container) == 39  # 40 edges from the smallest to the largest value, for every group
        np.testing.assert_allclose([lefts[0], lefts[-1] + widths[-1]], [values.min(), values.max()])
        edges = lefts if edges is None else edges
        np.testing.assert_allclose(lefts, edges)
        np.testing.assert_allclose((heights * widths).sum(), 1)  # a density: groups of any size compare
        counts, _ = np.histogram(values[mask], bins=np.linspace(values.min(), values.max(), 40))
        np.testing.assert_allclose(heights, counts / counts.sum() / widths)
    colours = [matplotlib.colors.to_hex(c[0].get_facecolor(), keep_alpha=False) for c in ax.containers]
    assert colours == [matplotlib.colors.to_hex(c) for c in ("tab:green", "tab:orange", "C2")]
    (line,) = ax.lines
    np.testing.assert_allclose(line.get_xdata(), [0.5, 0.5])
    assert line.get_linestyle() == "--"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("loss", "density", "small loss")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(groups)


def test_group_histograms_draws_no_threshold_unless_given_and_on_a_given_axes():
    values = np.linspace(-1, 1, 30)
    fig, ax = plt.subplots()
    masks = {"clean": values < 0, "OOD": values >= 0}
    assert discovery_plots.group_histograms(values, masks, "distance", ax=ax) is fig
    assert len(ax.containers) == 2 and not ax.lines
    assert matplotlib.colors.to_hex(ax.containers[1][0].get_facecolor(), keep_alpha=False) == \
        matplotlib.colors.to_hex("tab:red")


def test_flag_composition_draws_one_panel_per_method_and_one_line_per_group():
    rows = []
    for m, method in enumerate(["small loss", "LSA (alternating)"]):
        for epoch in (2, 3, 4):
            for g, group in enumerate(["OOD", "clean", "ID-noisy"]):
                rows.append({"method": method, "epoch": epoch, "group": group, "flagged": 10.0 * m + epoch + 20 * g})
    table = pd.DataFrame(rows)
    fig = discovery_plots.flag_composition(table, title="flags")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["small loss", "LSA (alternating)"]  # in order of appearance
    for ax, method in zip(fig.axes, ["small loss", "LSA (alternating)"]):
        assert [line.get_label() for line in ax.lines] == ["OOD", "clean", "ID-noisy"]  # not sorted
        for line, group in zip(ax.lines, ["OOD", "clean", "ID-noisy"]):
            part = table[(table["method"] == method) & (table["group"] == group)]
            np.testing.assert_array_equal(line.get_xdata(), part["epoch"])
            np.testing.assert_allclose(line.get_ydata(), part["flagged"])
        colours = [matplotlib.colors.to_hex(line.get_color()) for line in ax.lines]
        assert colours == [matplotlib.colors.to_hex(c) for c in ("tab:red", "tab:green", "tab:orange")]
        assert ax.get_xlabel() == "epoch" and ax.get_ylim() == (-3, 103)
    first, last = fig.axes
    assert first.get_ylabel() == "flagged noisy (%)" and last.get_ylabel() == ""
    assert first.get_legend() is None
    assert [t.get_text() for t in last.get_legend().get_texts()] == ["OOD", "clean", "ID-noisy"]
    assert fig._suptitle.get_text() == "flags"


def test_flag_composition_with_one_method_has_one_panel():
    table = pd.DataFrame({"method": ["small loss"] * 2, "epoch": [1, 2], "group": ["noise"] * 2,
                          "flagged": [40.0, 60.0]})
    fig = discovery_plots.flag_composition(table)
    (ax,) = fig.axes
    (line,) = ax.lines
    assert matplotlib.colors.to_hex(line.get_color()) == matplotlib.colors.to_hex("C0")
    assert ax.get_legend() is not None
