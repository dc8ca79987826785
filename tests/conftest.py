import pytest
import torch

from ssl_tutorial import setup


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache and data folder, and no network."""
    monkeypatch.setenv("SSL_TUTORIAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SSL_TUTORIAL_DATA", str(tmp_path / "data"))
    for var in ("SSL_TUTORIAL_SCALE", "SSL_TUTORIAL_SEED", "SSL_TUTORIAL_DATASET", "SSL_TUTORIAL_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    torch.manual_seed(0)


@pytest.fixture
def cfg():
    """The smoke preset, shrunk further so that unit tests train in a fraction of a second."""
    return setup("smoke", seed=0, device="cpu", verbose=False).with_(n_train=64, n_test=32, steps=3, batch_size=8,
                                                                     widths=(4, 8, 8, 8))


@pytest.fixture
def one_thread():
    """For files of tiny problems: one thread is many times faster than several fighting over a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
