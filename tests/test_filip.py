"""FILIP's late interaction and loss, and the compositional scenes it is tested on (methods/filip.py)."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ssl_tutorial.data import captions as C
from ssl_tutorial.data.captions import noun_phrases, noun_positions, swap_caption_colours
from ssl_tutorial.data.scenes import COLOUR_COLUMNS, distinct_pairs, swap_colours
from ssl_tutorial.methods.clip import MiniCLIP
from ssl_tutorial.methods.filip import (
    FILIP,
    PRESETS,
    SMOKE_SHAPES,
    binding_accuracy,
    compositional_scenes,
    filip_loss,
    late_interaction,
    localisation,
    phrase_patch_similarity,
    scene_generator,
    text_image_scores,
    word_mask,
    word_patch_similarity,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SCENES = scene_generator(PRESETS["smoke"])  # 24-pixel two-object scenes
CAPTIONS = ["a red circle left of a blue star", "a green square above a pink heart",
            "a yellow ring below an orange arrow", "a purple cross right of a cyan triangle"]  # <= 8 words


def _tokens(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _padded_mask():
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 4:], mask[2, 1:], mask[3, 0] = False, False, False  # padding at the end, a single word, a hole
    return mask


def test_late_interaction_matches_a_loop_over_patches_and_words():
    x, y, mask = _tokens(3, 5, 7), _tokens(4, 6, 7, seed=1), _padded_mask()
    s_image, s_text = late_interaction(x, y, mask)
    assert s_image.shape == s_text.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            words = [r for r in range(6) if mask[j, r]]
            dots = [[float(x[i, k] @ y[j, r]) for r in words] for k in range(5)]  # (patches, real words)
            each_patch = sum(max(row) for row in dots) / 5  # each patch: its best word
            each_word = sum(max(dots[k][c] for k in range(5)) for c in range(len(words))) / len(words)
            assert math.isclose(s_image[i, j].item(), each_patch, abs_tol=1e-5)
            assert math.isclose(s_text[i, j].item(), each_word, abs_tol=1e-5)


def test_padded_words_change_neither_score():
    x, y, mask = _tokens(3, 5, 7), _tokens(4, 6, 7, seed=1), _padded_mask()
    s_image, s_text = late_interaction(x, y, mask)
    junk = 5 * torch.randn(4, 3, 7, generator=torch.Generator().manual_seed(2))  # not even normalised
    longer = late_interaction(x, torch.cat([y, junk], 1), torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], 1))
    overwritten = late_interaction(x, torch.where(mask[..., None], y, 3.0), mask)
    for image, text in (longer, overwritten):
        assert torch.allclose(image, s_image, atol=1e-6) and torch.allclose(text, s_text, atol=1e-6)
    assert word_mask(torch.tensor([[2, 5, 6, 3, 0]])).tolist() == [[False, True, True, True, False]]


def test_late_interaction_rejects_bad_input():
    with pytest.raises(ValueError, match="tokens must be"):
        late_interaction(_tokens(2, 3, 4), _tokens(2, 3, 5), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one real word"):
        late_interaction(_tokens(2, 3, 4), _tokens(2, 3, 4), torch.tensor([[True] * 3, [False] * 3]))
    with pytest.raises(ValueError, match="at least one real word"):
        late_interaction(_tokens(2, 3, 4), _tokens(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))


def test_filip_loss_is_clip_loss_on_both_scores():
    g = torch.Generator().manual_seed(0)
    s_image, s_text = 2 * torch.rand(5, 5, generator=g) - 1, 2 * torch.rand(5, 5, generator=g) - 1
    target = torch.arange(5)
    expected = (F.cross_entropy(7 * s_image, target) + F.cross_entropy(7 * s_text.T, target)) / 2
    assert torch.allclose(filip_loss(s_image, s_text, 7.0), expected)
    assert torch.allclose(filip_loss(s_image, s_text, torch.tensor(7.0)), expected)
    assert filip_loss(torch.eye(4), torch.eye(4), 100.0) < 1e-6
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        filip_loss(torch.rand(3, 4), torch.rand(3, 4), 1.0)
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        filip_loss(torch.rand(4, 4), torch.rand(3, 3), 1.0)


def _model(cls=FILIP):
    vocab = C.Vocabulary()
    torch.manual_seed(0)
    model = cls(len(vocab), dim=8, widths=(4, 8, 8), text_width=16).eval()  # eval: BatchNorm as a fixed map
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))  # a 2 x 2 map of patch tokens
    return model, images, vocab.encode(CAPTIONS, 16)


def test_filip_model_loss_has_gradients_and_ignores_padding_columns():
    model, images, ids = _model()
    assert (ids[:, 10:] == 0).all()  # <bos>, at most 8 words, <eos>
    loss, logs = model.loss((images, ids))
    assert loss.ndim == 0 and torch.isfinite(loss) and set(logs) == {"logit_scale", "top1"}
    assert 0 <= logs["top1"] <= 1
    loss.backward()
    for p in (model.log_scale, model.image_projection.weight, model.text_projection.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert torch.allclose(model.loss((images, ids[:, :12]))[0], loss, atol=1e-5)
    # trimming is only a shortcut: the text encoder is causal and the mask leaves the padding out
    full, trimmed = (late_interaction(model.image_tokens(images), model.text_tokens(t), word_mask(t))
                     for t in (ids, ids[:, :10]))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(full, trimmed))
    assert torch.allclose(filip_loss(*full, model.logit_scale()), loss, atol=1e-5)


def test_text_image_scores_of_filip_are_its_text_to_image_scores():
    model, images, ids = _model()
    scores = text_image_scores(model, images, ids, chunk=3)
    with torch.no_grad():
        expected = late_interaction(model.image_tokens(images), model.text_tokens(ids), word_mask(ids))[1].T
    assert scores.shape == (4, 4) and torch.allclose(scores, expected, atol=1e-5)


def test_text_image_scores_of_clip_are_its_global_cosines():
    model, images, ids = _model(MiniCLIP)
    scores = text_image_scores(model, images, ids)
    with torch.no_grad():
        expected = model.encode_text(ids) @ model.encode_image(images).T
    assert scores.shape == (4, 4) and torch.allclose(scores, expected, atol=1e-5)


def test_word_patch_similarity_is_each_word_against_each_patch_of_its_own_image():
    model, images, ids = _model()
    maps = word_patch_similarity(model, images, ids)
    assert maps.shape == (4, 16, 2, 2)
    with torch.no_grad():
        x, y = model.image_tokens(images), model.text_tokens(ids)
    for i in range(4):
        for r in (0, 3, 8, 15):
            assert torch.allclose(maps[i, r], (x[i] @ y[i, r]).view(2, 2), atol=1e-5)


def test_phrase_patch_similarity_is_the_phrase_caption_against_each_patch():
    model, images, _ = _model(MiniCLIP)
    vocab = C.Vocabulary()
    pairs = noun_phrases(CAPTIONS[:2])
    assert pairs[0] == ("a red circle", "a blue star")
    ids = vocab.encode([p for pair in pairs for p in pair], 16)
    maps = phrase_patch_similarity(model, images, ids)
    assert maps.shape == (4, 2, 2)
    with torch.no_grad():
        expected = torch.einsum("npd,nd->np", model.image_tokens(images), model.encode_text(ids))
    assert torch.allclose(maps.flatten(1), expected, atol=1e-5)


def test_distinct_pairs_two_objects_that_differ_in_shape_and_colour():
    layout, objects = distinct_pairs(SCENES, 20, seed=0)
    assert len(layout) == 20 and (layout["n_objects"] == 2).all()
    assert objects["scene"].tolist() == [s for s in range(20) for _ in range(2)]
    assert objects["depth"].tolist() == [0, 1] * 20
    pairs = objects.groupby("scene")
    assert (pairs["shape"].nunique() == 2).all() and (pairs["colour"].nunique() == 2).all()
    assert set(objects["shape_name"]) <= set(SMOKE_SHAPES)
    # the scene table still lines up with the renumbered scenes
    assert (objects["noise_seed"].to_numpy() == layout["noise_seed"].to_numpy()[objects["scene"]]).all()
    again = distinct_pairs(SCENES, 20, seed=0)
    assert again[0].equals(layout) and again[1].equals(objects)
    assert not distinct_pairs(SCENES, 20, seed=1)[1].equals(objects)


def test_swap_colours_exchanges_the_colours_within_each_scene():
    _, objects = distinct_pairs(SCENES, 20, seed=0)
    original = objects.copy()
    swapped = swap_colours(objects)
    assert objects.equals(original)  # not changed in place
    for column in ("scene", "depth", "shape", "shape_name", "x", "y", "scale", "rotation", "texture"):
        assert (swapped[column].to_numpy() == objects[column].to_numpy()).all(), column
    shuffled = swap_colours(objects.sample(frac=1, random_state=0))  # the order of the rows does not matter
    twice = swap_colours(swapped)
    for column in COLOUR_COLUMNS:
        before = objects[column].to_numpy()
        assert (swapped[column].to_numpy() == before.reshape(-1, 2)[:, ::-1].ravel()).all(), column
        assert (shuffled[column].to_numpy() == swapped[column].to_numpy()).all(), column
        assert (twice[column].to_numpy() == before).all(), column
    with pytest.raises(ValueError, match="exactly two"):
        swap_colours(pd.concat([objects[objects["scene"] == 0], objects.iloc[[0]]]))


def test_swap_caption_colours_and_articles():
    assert swap_caption_colours("a red circle left of a blue star") == "a blue circle left of a red star"
    assert swap_caption_colours("a red arrow above an orange ring") == "an orange arrow above a red ring"
    text = "an orange five-pointed star below a scarlet plus sign"
    assert swap_caption_colours(text) == "a scarlet five-pointed star below an orange plus sign"
    assert swap_caption_colours(swap_caption_colours(text)) == text
    with pytest.raises(ValueError, match="two-object"):
        swap_caption_colours("a red circle in a photo")


def test_compositional_scenes_captions_name_the_objects_and_twins_swap_their_colours():
    batch, captions, named, twin, twin_captions = compositional_scenes(SCENES, 12, seed=0)
    assert batch.images.shape == twin.images.shape == (12, 3, 24, 24)
    assert len(captions) == 12 and named.shape == (12, 2)
    vocab = C.Vocabulary()
    for i, text in enumerate(captions):
        a, b = batch.objects.loc[named[i, 0]], batch.objects.loc[named[i, 1]]
        assert a["scene"] == b["scene"] == i and named[i, 0] != named[i, 1]
        options = {C.articles(f"a {ca} {sa} {C.relation(a, b)} a {cb} {sb}")
                   for ca in C.COLOUR_WORDS[a["colour_name"]] for sa in C.SHAPE_WORDS[a["shape_name"]]
                   for cb in C.COLOUR_WORDS[b["colour_name"]] for sb in C.SHAPE_WORDS[b["shape_name"]]}
        assert text in options and all(w in vocab.index for w in C.tokenize(text))
        assert twin.objects.loc[named[i, 0], "colour_name"] == b["colour_name"]  # the twin wears the other colour
    assert twin_captions == [swap_caption_colours(text) for text in captions]
    assert torch.equal(twin.instance, batch.instance) and not torch.equal(twin.images, batch.images)
    *_, no_twin, no_captions = compositional_scenes(SCENES, 4, seed=0, twins=False)
    assert no_twin is None and no_captions is None


def test_noun_positions_point_at_the_nouns_in_the_token_ids():
    texts = ["a red circle left of a blue star", "an orange five-pointed star below a scarlet plus sign"]
    positions = noun_positions(texts)
    assert positions.tolist() == [[3, 8], [4, 9]]  # <bos> is position 0
    vocab = C.Vocabulary()
    ids = vocab.encode(texts, 16)
    assert ids[0, 3] == vocab.index["circle"] and ids[0, 8] == vocab.index["star"]
    assert ids[1, 4] == vocab.index["star"] and ids[1, 9] == vocab.index["sign"]
    with pytest.raises(ValueError, match="not a two-object caption"):
        noun_positions(["a red circle in a photo"])


def _localise(peaks, depth=(0, 1)):
    """One 4 x 4 scene on a 2 x 2 map: depth 0 fills the top-left cell (but one pixel of depth 1), depth 1 the
    bottom-right (but one pixel of depth 0); each noun's map peaks at the given cell."""
    instance = torch.full((1, 4, 4), -1, dtype=torch.long)
    instance[0, :2, :2], instance[0, 2:, 2:] = 0, 1
    instance[0, 1, 1], instance[0, 2, 2] = 1, 0  # the other object in the minority: the cells still count
    batch = SimpleNamespace(instance=instance, objects=pd.DataFrame({"depth": list(depth)}))
    maps = torch.zeros(1, 2, 2, 2)  # (scenes, the two named objects, h, w)
    for k, (row, col) in enumerate(peaks):
        maps[0, k, row, col] = 1.0
    return localisation(maps, batch, np.array([[0, 1]]))


def test_localisation_hits_when_each_noun_peaks_on_its_own_object():
    assert _localise([(0, 0), (1, 1)]) == pytest.approx({"hit": 100.0, "chance": 25.0})
    assert _localise([(1, 1), (0, 0)]) == pytest.approx({"hit": 0.0, "chance": 25.0})
    assert _localise([(0, 0), (0, 1)])["hit"] == pytest.approx(50.0)  # a background cell is a miss
    # the named rows are read through their depth: row 0 now holds the object of depth 1
    assert _localise([(1, 1), (0, 0)], depth=(1, 0))["hit"] == pytest.approx(100.0)


def test_binding_accuracy_counts_strict_wins_over_the_twin():
    own, twin = torch.tensor([0.9, 0.2, 0.5, 0.7]), torch.tensor([0.1, 0.3, 0.5, 0.6])
    assert binding_accuracy(own, twin) == pytest.approx(50.0)  # a tie is not a win
    assert binding_accuracy(own + 1, twin) == pytest.approx(100.0)
    assert binding_accuracy(twin, own) == pytest.approx(25.0)
