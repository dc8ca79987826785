import pytest
import torch

from ssl_tutorial.data import Dataset, concat, load_dataset
from ssl_tutorial.methods.simcore import coreset


def test_coreset_takes_the_open_set_samples_near_the_target():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(40, 2, generator=g) * 0.1 + torch.tensor([5.0, 0.0])  # all near direction (1, 0)
    near = torch.randn(30, 2, generator=g) * 0.1 + torch.tensor([5.0, 0.0])
    far = torch.randn(300, 2, generator=g) * 0.1 + torch.tensor([-5.0, 1.0])
    open_set = torch.cat([far[:150], near, far[150:]])
    chosen = coreset(target, open_set, budget=30, n_centroids=4)
    assert len(chosen) == 30 and len(set(chosen.tolist())) == 30, "the budget, without repeats"
    assert ((chosen >= 150) & (chosen < 180)).all(), "every selected sample is one of the near ones"
    assert len(coreset(target, open_set, budget=330, n_centroids=4)) == 330  # the whole open set if asked


@pytest.mark.parametrize("args, match", [((torch.rand(5, 2), torch.rand(9, 3), 3), "same d"),
                                         ((torch.rand(5, 2), torch.rand(9, 2), 0), "budget"),
                                         ((torch.rand(5, 2), torch.rand(9, 2), 10), "budget")])
def test_coreset_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        coreset(*args)


def test_concat_keeps_images_labels_and_factors():
    a = load_dataset("shapes", n=5, size=16)
    b = load_dataset("shapes", "test", n=3, size=16)
    both = concat(a, b)
    assert len(both) == 8 and torch.equal(both.images[5:], b.images) and len(both.factors) == 8
    with pytest.raises(ValueError, match="shapes"):
        concat(a, load_dataset("shapes", n=2, size=8))
    with pytest.raises(ValueError, match="class names"):
        concat(a, Dataset(torch.rand(2, 3, 16, 16), torch.zeros(2, dtype=torch.long), ["x"]))
