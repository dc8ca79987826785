"""Class descriptions, the bag-level loss and the adaptation of mini-CLIP with them (methods/descriptions.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_tutorial.data.captions import SHAPE_WORDS, Vocabulary
from ssl_tutorial.data.shapes import SHAPES, ShapesWorld
from ssl_tutorial.methods.clip import MiniCLIP, clip_loss
from ssl_tutorial.methods.descriptions import (
    KINDS,
    PRESETS,
    accuracy,
    adapt,
    bag_loss,
    class_weights,
    description_bags,
    habitat_pictures,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_bags_never_name_the_class_and_use_the_vocabulary():
    vocab, bags = Vocabulary(), description_bags(KINDS)
    assert set(bags) == set(SHAPES)
    for shape, sentences in bags.items():
        assert len(sentences) == 3
        for s in sentences:
            assert not any(f" {w} " in f" {s} " for w in SHAPE_WORDS[shape]), (shape, s)
            assert "<unk>" not in vocab.decode(vocab.encode([s], 16))[0], s
    assert [len(b) for b in description_bags("appearance").values()] == [2] * len(SHAPES)
    assert all(s.startswith("it is usually seen") for b in description_bags(["habitat"]).values() for s in b)


def test_bags_reject_unknown_kinds():
    for kinds in ((), ("looks",), ("appearance", "smell")):
        with pytest.raises(ValueError, match="kinds must be"):
            description_bags(kinds)


def test_bag_loss_is_clip_loss_with_one_description_per_distinct_class():
    image, text = _unit(6, 8, seed=1), _unit(6, 8, seed=2)
    assert torch.allclose(bag_loss(image, text, torch.eye(6, dtype=torch.bool), 5.0), clip_loss(image, text, 5.0))


def test_bag_loss_matches_its_equation():
    image, text = _unit(5, 8, seed=3), _unit(5, 8, seed=4)
    positive = torch.eye(5, dtype=torch.bool)
    positive[0, 1] = positive[1, 0] = positive[3, 4] = True  # rows 0, 1 share a class; 4's description is 3's too
    logits = 7.0 * image @ text.T
    to_text = [-np.mean([torch.log_softmax(logits[i], 0)[j].item() for j in range(5) if positive[i, j]])
               for i in range(5)]
    to_image = [-np.mean([torch.log_softmax(logits[:, j], 0)[i].item() for i in range(5) if positive[i, j]])
                for j in range(5)]
    expected = (np.mean(to_text) + np.mean(to_image)) / 2
    assert bag_loss(image, text, positive, 7.0).item() == pytest.approx(expected, rel=1e-5)


def test_bag_loss_rejects_bad_input():
    image, text = _unit(4, 8), _unit(4, 8, seed=1)
    with pytest.raises(ValueError, match="matching rows"):
        bag_loss(image, text[:3], torch.eye(4, dtype=torch.bool), 5.0)
    with pytest.raises(ValueError, match="matching rows"):
        bag_loss(image, text, torch.eye(3, dtype=torch.bool), 5.0)
    with pytest.raises(ValueError, match="diagonal"):
        bag_loss(image, text, torch.zeros(4, 4, dtype=torch.bool), 5.0)
    with pytest.raises(ValueError, match="> 0"):
        bag_loss(image, text, torch.eye(4, dtype=torch.bool), 0.0)


def test_habitat_pictures_follow_the_prior():
    world = ShapesWorld(size=16)
    images, y, factors = habitat_pictures(world, 400, 1.0, seed=0)
    assert images.shape == (400, 3, 16, 16) and len(y) == 400
    assert (factors["shape"].to_numpy() == y).all()
    from ssl_tutorial.data.captions import HABITATS
    assert (factors["domain_name"] == factors["shape_name"].map(HABITATS)).all()


def _tiny():
    vocab = Vocabulary()
    model = MiniCLIP(len(vocab), dim=16, widths=(8, 16), text_width=16, length=16)
    return model, vocab


def test_adapt_trains_a_copy_and_lowers_the_loss():
    torch.manual_seed(0)
    model, vocab = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = [0, 1, 4, 5]  # triangle, square, circle, ellipse
    labels = np.repeat(seen, 16)
    features = torch.randn(len(labels), model.image_encoder.out_dim) + 3 * F.one_hot(
        torch.as_tensor(labels), model.image_encoder.out_dim).float()
    bags = description_bags("appearance")
    adapted, losses = adapt(model, vocab, features, labels, bags, steps=60, lr=1e-2, batch_size=32, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert not any(p.requires_grad for p in adapted.parameters())
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    classes = [SHAPES[k] for k in seen]
    weights = class_weights(adapted, vocab, bags, classes)
    assert weights.shape == (4, 16) and torch.allclose(weights.norm(dim=1), torch.ones(4))
    assert accuracy(adapted, features, labels, weights, seen) > 50  # chance: 25 %
    again, _ = adapt(model, vocab, features, labels, bags, steps=60, lr=1e-2, batch_size=32, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(adapted.state_dict().values(), again.state_dict().values()))


def test_adapt_rejects_mismatched_rows():
    model, vocab = _tiny()
    with pytest.raises(ValueError, match="matching"):
        adapt(model, vocab, torch.zeros(3, model.image_encoder.out_dim), [0, 1], description_bags(), steps=1)


def test_presets_keep_novel_classes_out_of_the_seen_ones():
    for preset in PRESETS.values():
        assert len(set(preset["novel"])) == len(preset["novel"]) and set(preset["novel"]) <= set(SHAPES)
