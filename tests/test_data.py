import pickle
import urllib.error

import numpy as np
import pytest
import torch

from ssl_tutorial.data import Dataset, load_dataset
from ssl_tutorial.data import torchvision as tv


def test_dataset_validates_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        Dataset(torch.zeros(4, 1, 8, 8), torch.zeros(4), ["a"])
    with pytest.raises(ValueError, match="labels"):
        Dataset(torch.zeros(4, 3, 8, 8), torch.zeros(3), ["a"])


def test_few_labels_and_subset():
    d = load_dataset("shapes", n=400, size=16)
    few = d.few_labels(5, seed=0)
    assert len(few) == 80 and torch.bincount(few.labels).tolist() == [5] * 16
    assert few.factors["shape"].tolist() == few.labels.tolist()


def test_digits():
    d = load_dataset("digits", "test", size=16)
    assert d.images.shape[1:] == (3, 16, 16) and len(d) == 360 and set(d.labels.tolist()) == set(range(10))


def _write_cifar(folder, n=6):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return batch


def test_cifar10_reader_on_a_file_in_the_real_format(tmp_path):
    last = _write_cifar(tmp_path / "data" / "cifar-10-batches-py")
    train = load_dataset("cifar10", "train", size=32)
    test = load_dataset("cifar10", "test", size=16)
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (6, 3, 16, 16)
    first = torch.tensor(last[b"data"][0].reshape(3, 32, 32), dtype=torch.float32) / 255
    assert torch.allclose(load_dataset("cifar10", "test", size=32).images[0], first)
    assert test.labels.tolist() == [int(v) for v in last[b"labels"]]


def test_stl10_reader_on_a_file_in_the_real_format(tmp_path):
    folder = tmp_path / "data" / "stl10_binary"
    folder.mkdir(parents=True)
    img = np.zeros((2, 3, 96, 96), dtype=np.uint8)
    img[0, 0, 5, 70] = 255  # row 5, column 70 of the red channel of image 0
    img.transpose(0, 1, 3, 2).tofile(folder / "test_X.bin")  # STL-10 stores images column-major
    np.array([1, 10], dtype=np.uint8).tofile(folder / "test_y.bin")
    d = tv.load_torchvision("stl10", "test", size=96)
    assert d.images[0, 0, 5, 70] == 1 and d.images[0].sum() == 1
    assert d.labels.tolist() == [0, 9]


def test_missing_download_says_what_to_do(tmp_path):
    with pytest.raises(RuntimeError) as e:
        load_dataset("cifar10")
    msg = str(e.value)
    assert "ssl-tutorial fetch cifar10" in msg and "cifar-10-python.tar.gz" in msg and str(tmp_path) in msg


def test_fetch_offline_is_a_clear_error(monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(RuntimeError, match="could not download cifar10.*ssl-tutorial fetch"):
        tv.fetch("cifar10")
    with pytest.raises(ValueError, match="cifar10, stl10"):
        tv.fetch("mnist")


def test_label_by_factor_combinations():
    from ssl_tutorial.data.shapes import ShapesWorld

    data = ShapesWorld(size=16, colours=("red", "blue"), textures=("solid", "stripes")).sample(200, seed=0)
    relabelled = data.label_by("colour_name", "texture_name")
    assert relabelled.class_names == ["blue/solid", "blue/stripes", "red/solid", "red/stripes"]
    names = np.array(relabelled.class_names)[relabelled.labels.numpy()]
    expected = (data.factors["colour_name"] + "/" + data.factors["texture_name"]).to_numpy()
    assert (names == expected).all()
    with pytest.raises(ValueError, match="colour_name"):
        data.label_by("weight")
    with pytest.raises(ValueError, match="no factor table"):
        load_dataset("digits", size=8).label_by("colour_name")
