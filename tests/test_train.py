import warnings
from pathlib import Path

import pytest
import torch

from ssl_tutorial import fit, load_splits
from ssl_tutorial.methods.rotnet import RotNet
from ssl_tutorial.methods.supervised import Supervised
from ssl_tutorial.nets import make_backbone


@pytest.fixture
def data(cfg):
    return load_splits(cfg)[0]


def _weights(model):
    return [v.clone() for v in model.state_dict().values()]


def test_fit_trains_caches_and_reloads(cfg, data):
    model = RotNet(make_backbone(cfg))
    start = _weights(model)
    h = fit(model, data, cfg, progress=False)
    assert len(h.loss) == cfg.steps and not h.from_cache and Path(h.path).exists()
    assert any(not torch.equal(a, b) for a, b in zip(start, model.state_dict().values()))
    again = RotNet(make_backbone(cfg))
    h2 = fit(again, data, cfg, progress=False)
    assert h2.from_cache and h2.loss == h.loss
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert not list(Path(h.path).parent.glob("*.tmp")), "no temporary file is left behind"


def test_same_seed_same_numbers(cfg, data):
    a = fit(RotNet(make_backbone(cfg)), data, cfg, cache=False, progress=False)
    b = fit(RotNet(make_backbone(cfg)), data, cfg, cache=False, progress=False)
    assert a.loss == b.loss


def test_the_key_covers_the_config(cfg, data):
    paths = {fit(RotNet(make_backbone(cfg)), data, cfg, progress=False).path,
             fit(RotNet(make_backbone(cfg)), data, cfg, steps=2, progress=False).path,
             fit(RotNet(make_backbone(cfg)), data, cfg.with_(seed=1), progress=False).path,
             fit(RotNet(make_backbone(cfg, seed=5)), data, cfg, init=False, progress=False).path,
             fit(RotNet(make_backbone(cfg)), data.subset(slice(0, 32)), cfg, progress=False).path,
             fit(RotNet(make_backbone(cfg)), data, cfg, lr=1e-4, progress=False).path}
    assert len(paths) == 6


def test_corrupt_cache_is_retrained_with_a_warning(cfg, data):
    h = fit(RotNet(make_backbone(cfg)), data, cfg, progress=False)
    Path(h.path).write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        h2 = fit(RotNet(make_backbone(cfg)), data, cfg, progress=False)
    assert not h2.from_cache and h2.loss == h.loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit(RotNet(make_backbone(cfg)), data, cfg, progress=False).from_cache


def test_evaluate_hook_is_cached(cfg, data):
    h = fit(Supervised(make_backbone(cfg), 16), data, cfg, steps=4, eval_every=2, progress=False,
            evaluate=lambda m: {"n": 1.0})
    assert [e["step"] for e in h.evals] == [2, 4]
    h2 = fit(Supervised(make_backbone(cfg), 16), data, cfg, steps=4, eval_every=2, progress=False,
             evaluate=lambda m: {"n": 1.0})
    assert h2.from_cache and h2.evals == h.evals


def test_bad_input(cfg, data):
    with pytest.raises(ValueError, match="loss"):
        fit(make_backbone(cfg), data, cfg)
    with pytest.raises(ValueError, match="empty"):
        fit(RotNet(make_backbone(cfg)), data.subset(slice(0, 0)), cfg)
    class Diverges(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def loss(self, batch):
            return self.w * float("nan"), {}

    with pytest.raises(RuntimeError, match="smaller lr"):
        fit(Diverges(), data, cfg, cache=False, progress=False)
    assert not list(Path(cfg_cache()).glob("diverges*")), "nothing is cached from a failed run"


def cfg_cache():
    from ssl_tutorial.train import cache_dir

    return cache_dir()


def test_init_false_keeps_the_given_weights(cfg, data):
    model = RotNet(make_backbone(cfg, seed=9))
    start = _weights(model)
    fit(model, data, cfg, steps=0, init=False, cache=False, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(start, model.state_dict().values()))
    fit(model, data, cfg, steps=0, cache=False, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(start, model.state_dict().values()))
