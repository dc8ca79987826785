"""Captions, descriptions, caption noise and the word-level vocabulary (data/captions.py)."""

import numpy as np
import pytest
import torch

from ssl_tutorial.data import captions as C
from ssl_tutorial.data.scenes import Scenes
from ssl_tutorial.data.shapes import COLOURS, DOMAINS, SHAPES, ShapesWorld

FACTORS = ShapesWorld(size=16).sample_factors(400, seed=1)


def test_captions_are_seeded_true_of_their_factors_and_varied():
    caps = C.caption(FACTORS, seed=0)
    assert caps == C.caption(FACTORS, seed=0) and caps != C.caption(FACTORS, seed=1)
    for text, row in zip(caps, FACTORS.to_dict("records")):
        assert any(word in text for word in C.SHAPE_WORDS[row["shape_name"]])  # every caption names its shape
        for colour, words in C.COLOUR_WORDS.items():  # and no other colour than its own
            if colour != row["colour_name"]:
                assert not any(f" {w} " in f" {text} " for w in words), (text, row["colour_name"])
    # at least six templates in use, and synonyms: both words of a shape with two names occur
    assert len(C.TEMPLATES) >= 6
    assert len({c.split()[0] + str(len(c.split())) for c in caps}) >= 6
    circles = " ".join(c for c, s in zip(caps, FACTORS["shape_name"]) if s == "circle")
    assert "circle" in circles and "disc" in circles


def test_articles_agree():
    assert C.articles("a orange arrow left of a blue ellipse") == "an orange arrow left of a blue ellipse"
    assert all(" a a" not in f" {c}" and " a o" not in f" {c}" for c in C.caption(FACTORS))


def test_relations_follow_the_centres_with_y_up():
    a, b = {"x": -0.5, "y": 0.0}, {"x": 0.4, "y": 0.1}
    assert C.relation(a, b) == "left of" and C.relation(b, a) == "right of"
    high, low = {"x": 0.0, "y": 0.6}, {"x": 0.1, "y": -0.3}
    assert C.relation(high, low) == "above" and C.relation(low, high) == "below"


def test_scene_captions_name_two_objects_of_the_scene():
    _, objects = Scenes(objects=(1, 3)).sample_layout(40, seed=2)
    caps = C.scene_captions(objects, seed=0)
    assert len(caps) == 40
    for (_, group), text in zip(objects.groupby("scene"), caps):
        if len(group) > 1:
            assert any(r in text for r in C.RELATIONS)
        named = [s for s in group["shape_name"] if any(w in text for w in C.SHAPE_WORDS[s])]
        assert len(named) >= min(len(group), 2)


def test_descriptions_rename_novel_classes_only():
    plain, renamed = C.descriptions(), C.descriptions(novel=("hexagon", "T"), seed=0)
    assert len(plain) == len(renamed) == len(SHAPES) and "hexagon" in plain and "hexagon" not in renamed
    new = [name for name in renamed if name not in plain]
    assert len(new) == 2 and all(name.isalpha() for name in new)
    assert all(name in sentence for name in new for sentence in renamed[name])
    assert any("usually seen" in s for s in renamed["circle"])
    with pytest.raises(ValueError, match="unknown shapes"):
        C.descriptions(novel=("dodecahedron",))


def test_habitats_move_the_domain_towards_the_class_prior():
    moved = C.with_habitats(FACTORS, 1.0, seed=0)
    assert all(d == C.HABITATS[s] for d, s in zip(moved["domain_name"], moved["shape_name"]))
    assert (moved["domain_name"] == np.array(DOMAINS)[moved["domain"]]).all()
    assert C.with_habitats(FACTORS, 0.0)["domain"].equals(FACTORS["domain"])
    share = (C.with_habitats(FACTORS, 0.5, seed=1)["domain"] != FACTORS["domain"]).mean()
    assert 0.25 < share < 0.55  # half move, and a fifth of those were already at home
    with pytest.raises(ValueError, match="probability"):
        C.with_habitats(FACTORS, 1.5)


def test_caption_noise():
    caps = C.caption(FACTORS, seed=0)
    swapped, done = C.corrupt(caps, FACTORS, 0.3, "mismatch", seed=0)
    assert 0.2 < done.mean() < 0.4 and all(swapped[i] != caps[i] for i in np.flatnonzero(done))
    assert sorted(swapped) == sorted(caps)  # a permutation of the captions
    wrong, done = C.corrupt(caps, FACTORS, 1.0, "attribute", seed=0)
    for i in np.flatnonzero(done):
        own = C.COLOUR_WORDS[FACTORS["colour_name"].iloc[i]]
        assert not any(f" {w} " in f" {wrong[i]} " for w in own)
        assert any(f" {C.COLOUR_WORDS[c][0]} " in f" {wrong[i]} " for c in COLOURS)
    assert done.sum() == sum(any(f" {w} " in f" {c} " for w in C.COLOUR_WORDS[k]) for c, k in
                             zip(caps, FACTORS["colour_name"]))  # every caption that names its colour
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(caps, FACTORS, 0.1, "typo")
    with pytest.raises(ValueError, match="captions but"):
        C.corrupt(caps[:3], FACTORS, 0.1)


def test_vocabulary_covers_the_grammar_and_round_trips():
    novel = C.descriptions(novel=("ring",))
    vocab = C.Vocabulary(extra=list(novel))
    assert vocab.words[:4] == list(C.SPECIAL) and len(set(vocab.words)) == len(vocab)
    _, objects = Scenes().sample_layout(30, seed=3)
    texts = C.caption(FACTORS) + C.scene_captions(objects) + [s for ss in novel.values() for s in ss]
    assert all(w in vocab.index for t in texts for w in C.tokenize(t))  # no <unk> in anything generated
    assert all(d in vocab.index for d in C.DISTRACTORS)
    ids = vocab.encode(texts[:5], length=24)
    assert ids.shape == (5, 24) and ids.dtype == torch.long and (ids[:, 0] == 2).all()
    assert vocab.decode(ids) == [" ".join(C.tokenize(t)) for t in texts[:5]]
    short = vocab.encode(["a red circle in a photo"], length=4)
    assert short.tolist() == [[2, vocab.index["a"], vocab.index["red"], 3]]
    assert vocab.decode(vocab.encode(["a zebra"]))[0] == "a <unk>"
    assert C.Vocabulary().words == C.Vocabulary().words  # built the same way every time
    with pytest.raises(ValueError, match=">= 3"):
        vocab.encode(["a"], length=2)
