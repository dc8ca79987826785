import pytest
import torch

from ssl_tutorial.evaluate import perplexity
from ssl_tutorial.methods.obow import OBoW, bag_of_words
from ssl_tutorial.nets import ConvNet


def test_bag_of_words_is_a_distribution_and_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    fmap, words = torch.rand(3, 4, 5, 5, generator=g), torch.rand(6, 4, generator=g)
    bow, codes, d = bag_of_words(fmap, words, inv_delta=10.0, mean_distance=0.5)
    assert bow.shape == (3, 6) and torch.allclose(bow.sum(1), torch.ones(3), atol=1e-6)
    assert codes.shape == (3, 6, 3, 3), "the 1-pixel border is dropped"
    u = fmap[1, :, 2, 3]  # inner location (1, 2) of image 1
    expected = torch.softmax(-(10.0 / 0.5) * ((u - words) ** 2).sum(1), 0)
    assert torch.allclose(codes[1, :, 1, 2], expected, atol=1e-5)
    assert torch.allclose(d[1, :, 1, 2], ((u - words) ** 2).sum(1), atol=1e-5)


def test_perplexity_counts_words_in_use():
    assert perplexity(torch.ones(8)) == pytest.approx(8.0)
    assert perplexity(torch.tensor([1.0, 0, 0, 0])) == pytest.approx(1.0)


def test_obow_teacher_vocabulary_and_head():
    torch.manual_seed(0)
    model = OBoW(ConvNet((4, 8, 8)), n_words=8, level=-2, n_small=1)
    model.after_init()
    for t, s in zip(model.teacher.parameters(), model.backbone.parameters()):
        assert torch.equal(t, s) and not t.requires_grad
    images = torch.rand(6, 3, 16, 16)
    loss, logs = model.loss((images, None))
    assert model.mean_distance > 0, "the adaptive temperature starts from the first batch"
    temperature = model.mean_distance.clone()
    model.eval().teacher_targets(torch.rand(6, 3, 16, 16))
    assert torch.equal(model.mean_distance, temperature), "looking at targets in eval mode changes nothing"
    model.train()
    assert model.words.abs().sum() > 0, "the vocabulary was filled from the teacher"
    assert 1.0 <= logs["perplexity"] <= 8.0 + 1e-6
    loss.backward()
    assert model.weight_generator[0].weight.grad is not None, "the dynamic head learns"
    assert all(p.grad is None for p in model.teacher.parameters()), "the teacher gets no gradient"
    before = [p.clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    model.after_step(0, 10)  # alpha close to the initial momentum 0.99
    moved = [(t - b).abs().max().item() for t, b in zip(model.teacher.parameters(), before)]
    assert all(0.005 < m < 0.02 for m in moved), "teacher <- 0.99 teacher + 0.01 student"
    before = [p.clone() for p in model.teacher.parameters()]
    model.after_step(9, 10)  # the last step: alpha = 1, the teacher stops moving
    assert all(torch.equal(t, b) for t, b in zip(model.teacher.parameters(), before))
    assert model.predict(images).shape == (6, 8)


def test_obow_bad_input():
    with pytest.raises(ValueError, match="features"):
        OBoW(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="momentum"):
        OBoW(ConvNet((4, 8, 8)), momentum=1.0)


def test_word_codes_patches_line_up():
    torch.manual_seed(0)
    model = OBoW(ConvNet((4, 8, 8)), n_words=8, level=-2)  # 16 px -> 4x4 map at level -2
    model.after_init()
    images = torch.rand(5, 3, 16, 16)
    model.loss((images, None))
    codes, patches = model.word_codes(images)
    assert codes.shape == (5 * 2 * 2, 8) and torch.allclose(codes.sum(1), torch.ones(20), atol=1e-5)
    assert patches.shape == (20, 3, 12, 12)
    assert torch.equal(patches[0], images[0, :, 0:12, 0:12]), "inner location (0, 0) sees map cells 0-2"
    assert torch.equal(patches[3], images[0, :, 4:16, 4:16])


def test_teacher_images_replace_what_the_teacher_sees():
    torch.manual_seed(0)
    images, twins = torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16)
    model = OBoW(ConvNet((4, 8, 8)), n_words=8, level=-2, teacher_images=twins)
    assert torch.equal(model.teacher_view(images, torch.tensor([4, 1])), twins[[4, 1]])
    assert OBoW(ConvNet((4, 8, 8)), level=-2).teacher_view(images, torch.zeros(6)) is images
    model.after_init()
    seen = []
    model.teacher.blocks[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    model.teacher_targets(model.teacher_view(images, torch.arange(6)))
    assert torch.equal(seen[0], twins)
    model.loss((images, torch.arange(6)))  # trains with the twins as the teacher's input
    other = OBoW(ConvNet((4, 8, 8)), n_words=8, level=-2, teacher_images=twins.flip(0))
    assert model.hparams["teacher_images"] != other.hparams["teacher_images"], "the twins enter the cache key"
    with pytest.raises(ValueError, match="row numbers"):
        model.loss((images, torch.tensor([0, 1, 2, 3, 4, 6])))
    with pytest.raises(ValueError, match="RGB images"):
        OBoW(ConvNet((4, 8, 8)), teacher_images=torch.rand(6, 16, 16))
