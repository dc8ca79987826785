"""Interactive explorers (ipywidgets) over the figures in ``plots.py``.

ipywidgets swallows exceptions raised in callbacks, so a broken explorer would pass CI. Each
explorer here is therefore a thin wire between a control and a plain function of ``plots.py``
that is unit-tested, and each returns that function's figure for its default value too: a
notebook displays that figure (what CI executes), then the widget (what a reader moves).
"""

from __future__ import annotations

import matplotlib.pyplot as plt


def _interactive(control, draw):
    """A control and an output area that shows ``draw(value)`` each time the control changes."""
    import ipywidgets as w
    from IPython.display import display

    out = w.Output()

    def update(change=None):  # a reader's change; the first figure is drawn by the caller
        with out:
            out.clear_output(wait=True)
            fig = draw(control.value)
            if hasattr(fig, "to_dict"):  # plotly
                fig.show()
            else:
                display(fig)
                plt.close(fig)

    control.observe(update, names="value")
    return w.VBox([control, out])


def _two_controls(a, b, draw):
    """Two controls side by side and an output area that shows ``draw(a.value, b.value)`` on change."""
    import ipywidgets as w

    return _many_controls([a, b], lambda: draw(a.value, b.value), layout=w.HBox([a, b]))


def _many_controls(controls, draw, layout=None):
    """Several controls, shown in ``layout`` (a box holding them; a column by default), and an output area
    that shows ``draw()`` whenever any of them changes."""
    import ipywidgets as w

    every = w.Text(value="", layout=w.Layout(display="none"))  # one value that changes with any control

    def sync(change=None):
        every.value = "|".join(repr(c.value) for c in controls)

    for c in controls:
        c.observe(sync, names="value")
    return w.VBox([layout or w.VBox(list(controls)), _interactive(every, lambda v: draw())])


def factor_explorer(points, factors, options=("shape_name", "superclass_name", "colour_name", "texture_name",
                                              "domain_name", "scale", "rotation"), value: str = "shape_name"):
    """A dropdown that recolours a 2-D embedding by any factor of the shapes world.

    Returns ``(figure for value, widget)``; the figure comes from :func:`plots.scatter_2d`.
    """
    import ipywidgets as w

    from .plots import scatter_2d

    options = [o for o in options if o in factors]
    fig = scatter_2d(points, factors, value)
    control = w.Dropdown(options=options, value=value, description="colour by")
    return fig, _interactive(control, lambda v: scatter_2d(points, factors, v))


def jitter_explorer(table, examples: dict, value: float):
    """A slider over the rotation jitter of the training world (the values that were trained).

    Returns ``(figure for value, widget)``; the figure comes from :func:`plots.jitter_curve`.
    """
    import ipywidgets as w

    from .plots import jitter_curve

    fig = jitter_curve(table, value, examples[value])
    control = w.SelectionSlider(options=list(table["jitter"]), value=value, description="jitter")
    return fig, _interactive(control, lambda v: jitter_curve(table, v, examples[v]))


def penalty_explorer(similarities, temperatures=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), value: float = 0.5):
    """A slider over the temperature: how InfoNCE spreads its penalty over one anchor's negatives.

    Returns ``(figure for value, widget)``; the figure comes from :func:`plots.penalty_curve`.
    """
    import ipywidgets as w

    from .plots import penalty_curve

    fig = penalty_curve(similarities, value)
    control = w.SelectionSlider(options=list(temperatures), value=value, description="tau")
    return fig, _interactive(control, lambda v: penalty_curve(similarities, v))


def gate_pair_explorer(gates, class_names, first: str, second: str):
    """Two dropdowns that pick a pair of classes; shows the pair's gate (Hydra).

    Returns ``(figure for the pair, widget)``; the figure comes from :func:`plots.gate_pair`.
    """
    import ipywidgets as w

    from .plots import gate_pair

    fig = gate_pair(gates, class_names, first, second)
    a = w.Dropdown(options=list(class_names), value=first, description="class i")
    b = w.Dropdown(options=list(class_names), value=second, description="class j")
    return fig, _two_controls(a, b, lambda i, j: gate_pair(gates, class_names, i, j))


def sinkhorn_explorer(scores, epsilon: float = 0.05, n_iters: int = 0,
                      epsilons=(0.01, 0.02, 0.05, 0.1, 0.3, 1.0), max_iters: int = 10):
    """Sliders over the Sinkhorn iterations and epsilon on a batch's score matrix (SwAV).

    Returns ``(figure for the values, widget)``; the figure comes from :func:`plots.sinkhorn_steps`.
    """
    import ipywidgets as w

    from .plots import sinkhorn_steps

    fig = sinkhorn_steps(scores, epsilon, n_iters)
    iters = w.IntSlider(value=n_iters, min=0, max=max_iters, description="iterations")
    eps = w.SelectionSlider(options=list(epsilons), value=epsilon, description="epsilon")
    return fig, _two_controls(iters, eps, lambda n, e: sinkhorn_steps(scores, e, n))


def word_explorer(patches, codes, word: int = 0):
    """A slider over the visual words of OBoW's vocabulary: the patches assigned to the chosen word.

    Returns ``(figure for word, widget)``; the figure comes from :func:`plots.word_patches`.
    """
    import ipywidgets as w

    from .plots import word_patches

    fig = word_patches(patches, codes, word)
    control = w.IntSlider(value=word, min=0, max=codes.shape[1] - 1, description="word")
    return fig, _interactive(control, lambda v: word_patches(patches, codes, v))


def budget_explorer(points, groups, target_points, order, curve, value: int):
    """A slider over the coreset budget: :func:`plots.coreset_budget` for the first ``budget`` selected samples."""
    import ipywidgets as w

    from .plots import coreset_budget

    fig = coreset_budget(points, groups, target_points, order, curve, value)
    slider = w.IntSlider(value=value, min=1, max=len(order), step=max(1, len(order) // 50), description="budget",
                         continuous_update=False)
    return fig, _interactive(slider, lambda b: coreset_budget(points, groups, target_points, order, curve, b))


def direction_sliders(generators: dict, limit: float = 3.0, nrow: int = 4):
    """One slider per latent direction for each generator, the generators side by side (chapter 5).

    ``generators`` maps a name to ``(model, directions, z)``: directions (k, latent_dim) and the codes z
    (N, latent_dim) to start from. Each generator draws ``model.generate(z + sum_j alpha_j v_j)`` with its
    own sliders' values alpha_j. Returns ``(figure for all sliders at 0, widget)``; the figure comes from
    :func:`latent_plots.generated_side_by_side`.
    """
    import ipywidgets as w

    from .latent_plots import generated_side_by_side

    sliders = {name: [w.FloatSlider(value=0.0, min=-limit, max=limit, step=0.25, description=f"{name} d{j + 1}",
                                    continuous_update=False, style={"description_width": "initial"})
                      for j in range(len(directions))]
               for name, (_, directions, _) in generators.items()}

    def draw():
        images = {}
        for name, (model, directions, z) in generators.items():
            shift = sum(s.value * v / v.norm() for s, v in zip(sliders[name], directions))
            images[name] = model.generate(z + shift)
        return generated_side_by_side(images, nrow=nrow)

    controls = [s for column in sliders.values() for s in column]
    return draw(), _many_controls(controls, draw, layout=w.HBox([w.VBox(column) for column in sliders.values()]))


def feature_explorer(model, images, labels, table, t: int, block: str, grid: int = 1, seed: int = 0):
    """Pick a timestep and a block of a denoiser: the noised inputs, a PCA of that block's features and the
    probe accuracy from ``table`` (``evaluate.probe_over_noise``; pass its ``grid`` and the test images' noise
    ``seed`` so that the scatter shows the features the accuracy is about). Returns ``(figure, widget)``."""
    import ipywidgets as w

    from .diffusion_plots import feature_view

    def draw(t_, block_):
        return feature_view(model, images, labels, t_, block_, accuracy=float(table.loc[t_, block_]), grid=grid,
                            seed=seed)

    pick_t = w.Dropdown(options=list(table.index), value=t, description="t")
    pick_block = w.Dropdown(options=list(table.columns), value=block, description="block")
    return draw(t, block), _two_controls(pick_t, pick_block, draw)


def choice_explorer(draw, options, value, description: str = "scale"):
    """A slider over ``options`` (a guidance scale, a timestep): ``draw(option)`` returns the figure (chapter 5's
    guidance notebook). Returns ``(figure for value, widget)``."""
    import ipywidgets as w

    slider = w.SelectionSlider(options=list(options), value=value, description=description, continuous_update=False)
    return draw(value), _interactive(slider, draw)


def options_explorer(draw, options: dict, values: dict | None = None):
    """One selection slider per keyword of ``draw`` (chapter 10's theory notebooks: move a parameter, see the
    predicted and the measured curves move). ``options`` maps each keyword to its choices, ``values`` to its
    starting choice (the first one by default). Returns ``(figure for the starting values, widget)``."""
    import ipywidgets as w

    values = {name: (values or {}).get(name, choices[0]) for name, choices in options.items()}
    controls = {name: (w.ToggleButtons(options=list(choices), value=values[name], description=name)
                       if all(isinstance(c, str) for c in choices) else
                       w.SelectionSlider(options=list(choices), value=values[name], description=name,
                                         continuous_update=False))
                for name, choices in options.items()}
    widget = _many_controls(list(controls.values()), lambda: draw(**{k: c.value for k, c in controls.items()}))
    return draw(**values), widget


def text_explorer(draw, value: str, description: str = "caption"):
    """A text box: ``draw(text)`` returns the figure for what the reader typed (chapter 6: the images a caption
    ranks first). Returns ``(figure for value, widget)``."""
    import ipywidgets as w

    box = w.Text(value=value, description=description, continuous_update=False,
                 layout=w.Layout(width="32em"))
    return draw(value), _interactive(box, draw)
