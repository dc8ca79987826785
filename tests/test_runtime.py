import pytest
import torch

from ssl_tutorial import setup
from ssl_tutorial.runtime import PRESETS


def test_presets_and_seed():
    cfg = setup("smoke", seed=7, verbose=False)
    assert (cfg.scale, cfg.seed, cfg.image_size, cfg.steps) == ("smoke", 7, PRESETS["smoke"]["image_size"],
                                                              PRESETS["smoke"]["steps"])
    a = torch.rand(3)
    setup("smoke", seed=7, verbose=False)
    assert torch.equal(a, torch.rand(3)), "setup() must seed torch"


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("SSL_TUTORIAL_SCALE", "cpu")
    monkeypatch.setenv("SSL_TUTORIAL_SEED", "3")
    cfg = setup(verbose=False)
    assert (cfg.scale, cfg.seed, cfg.image_size) == ("cpu", 3, 32)
    assert setup("smoke", verbose=False).scale == "smoke", "an argument wins over the environment"


def test_default_scale_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert setup(verbose=False).scale == "cpu"


@pytest.mark.parametrize("kwargs, words", [
    ({"scale": "huge"}, ["smoke", "cpu", "gpu"]),
    ({"seed": "abc"}, ["integer"]),
    ({"dataset": "imagenet"}, ["shapes", "cifar10"]),
    ({"device": "tpu"}, ["cuda", "mps", "cpu"]),
])
def test_invalid_values_name_the_valid_ones(kwargs, words):
    with pytest.raises(ValueError) as e:
        setup(verbose=False, **kwargs)
    assert all(w in str(e.value) for w in words)


def test_invalid_env_scale(monkeypatch):
    monkeypatch.setenv("SSL_TUTORIAL_SCALE", "fast")
    with pytest.raises(ValueError, match="SSL_TUTORIAL_SCALE"):
        setup(verbose=False)


def test_cache_key_ignores_device():
    a = setup("smoke", device="cpu", verbose=False)
    assert "device" not in a.key() and a.key()["scale"] == "smoke"


def test_summary_names_the_cpu_thread_count():
    """A CPU run is reproduced by the same seed *and* thread count, so the printed summary shows it."""
    cfg = setup("smoke", device="cpu", verbose=False)
    assert f"device=cpu ({torch.get_num_threads()} threads)" in str(cfg)
