"""Continual pre-training: the chunk order, the per-step learning rate, the watches and the cache."""

import pytest
import torch
from torch import nn

from ssl_tutorial.continual import continual_fit, held_out_loss
from ssl_tutorial.data import Dataset


class Recorder(nn.Module):
    """A linear model whose loss remembers which chunk each batch came from (the label) and the lr it saw."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, 1)
        self.seen = []
        self.hparams = {}

    def loss(self, batch):
        images, labels = batch
        if self.training:
            self.seen.append(set(labels.tolist()))
        return self.linear(images.flatten(1)).pow(2).mean(), {}


def chunk(k, n=10):
    return Dataset(torch.rand(n, 3, 4, 4), torch.full((n,), k), ["a", "b", "c"])


def test_chunks_arrive_in_order_at_the_scheduled_rate(cfg):
    model = Recorder()
    rates = []
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = spy
    try:
        h = continual_fit(model, [chunk(0), chunk(1), chunk(2)], cfg, lambda t: 0.1 * (t + 1), steps_per_chunk=4,
                          batch_size=5, watch=lambda m: {"w": m.linear.weight.sum().item()}, watch_every=2,
                          at_chunk_end=lambda m: {"end": 1.0}, schedule="test", cache=False, progress=False)
    finally:
        torch.optim.AdamW.step = original
    assert model.seen == [{0}] * 4 + [{1}] * 4 + [{2}] * 4
    assert rates == pytest.approx([0.1 * (t + 1) for t in range(12)])
    watches = [e for e in h.evals if "chunk_end" not in e]
    ends = [e for e in h.evals if "chunk_end" in e]
    assert [e["step"] for e in watches] == [0, 2, 4, 6, 8, 10, 12]
    assert [(e["step"], e["chunk"]) for e in ends] == [(4, 0), (8, 1), (12, 2)]


def test_cached_run_loads_and_key_extras_matter(cfg):
    chunks = [chunk(0), chunk(1)]
    kwargs = dict(steps_per_chunk=3, batch_size=4, schedule="constant", progress=False)
    a = continual_fit(Recorder(), chunks, cfg, lambda t: 0.01, **kwargs)
    b = continual_fit(Recorder(), chunks, cfg, lambda t: 0.01, **kwargs)
    c = continual_fit(Recorder(), chunks, cfg, lambda t: 0.01, probe=100, **kwargs)
    d = continual_fit(Recorder(), chunks, cfg, lambda t: 0.02, **kwargs)  # other rates: another run
    assert not a.from_cache and b.from_cache and not c.from_cache and not d.from_cache
    assert b.loss == a.loss


def test_held_out_loss_fixes_the_views():
    from ssl_tutorial.methods.simclr import SimCLR
    from ssl_tutorial.nets import ConvNet

    model = SimCLR(ConvNet((4, 8)))
    images = torch.rand(16, 3, 16, 16)
    assert held_out_loss(model, images) == held_out_loss(model, images)
    assert held_out_loss(model, images, seed=1) != held_out_loss(model, images, seed=2)
    assert model.training  # left as it was


@pytest.mark.parametrize("kwargs, match", [
    (dict(chunks=[]), "non-empty"),
    (dict(steps_per_chunk=0), ">= 1"),
    (dict(schedule=""), "name the learning-rate schedule"),
    (dict(lr=lambda t: -1.0), ">= 0"),
])
def test_bad_input_is_one_clear_line(cfg, kwargs, match):
    args = dict(chunks=[chunk(0)], lr=lambda t: 0.1, steps_per_chunk=2, schedule="s")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as error:
        continual_fit(Recorder(), args.pop("chunks"), cfg, args.pop("lr"), progress=False, **args)
    assert "\n" not in str(error.value)
