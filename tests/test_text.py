import numpy as np
import pytest

from ssl_tutorial.data.shapes import COLOURS, DOMAINS, SHAPES
from ssl_tutorial.data.text import (
    ATTRIBUTES,
    ENTITY_NAMES,
    FACT_TEMPLATES,
    PARAPHRASE_TEMPLATES,
    Vocabulary,
    build_corpus,
    fact_sentences,
    make_entities,
    prompt_and_answer,
)

ALL_TEMPLATES = [t for ts in (FACT_TEMPLATES, PARAPHRASE_TEMPLATES) for a in ts for t in ts[a]]


def _template_words():
    return {w for t in ALL_TEMPLATES for w in t.split() if w not in ("{name}", "{value}")}


def test_names_values_and_template_words_are_disjoint_single_tokens():
    assert len(ENTITY_NAMES) >= 24 and len(set(ENTITY_NAMES)) == len(ENTITY_NAMES)
    values = {v for vs in ATTRIBUTES.values() for v in vs}
    for word in set(ENTITY_NAMES) | values | _template_words():
        assert word.isalpha() and word.islower(), word
    assert not set(ENTITY_NAMES) & (values | _template_words())
    assert not values & _template_words(), "a prompt must never contain its answer"
    for vs in ATTRIBUTES.values():
        assert len(set(vs)) == len(vs) >= 4
    assert set(ATTRIBUTES["colour"]) == set(COLOURS) and set(ATTRIBUTES["home"]) == set(DOMAINS)
    assert set(ATTRIBUTES["shape"]) <= set(SHAPES)


def test_entities_seeded_and_complete():
    a, b, c = make_entities(20, seed=3), make_entities(20, seed=3), make_entities(20, seed=4)
    assert a == b and a != c
    assert len({e.name for e in a}) == 20 and {e.name for e in a} <= set(ENTITY_NAMES)
    for e in a:
        assert set(e.facts) == set(ATTRIBUTES)
        assert all(e.facts[k] in ATTRIBUTES[k] for k in ATTRIBUTES)
    assert len(make_entities(len(ENTITY_NAMES))) == len(ENTITY_NAMES)


@pytest.mark.parametrize("n", [0, len(ENTITY_NAMES) + 1])
def test_bad_entity_count(n):
    with pytest.raises(ValueError, match="n must be between 1 and") as err:
        make_entities(n)
    assert "\n" not in str(err.value)


def test_templates_end_with_the_value_and_are_held_out():
    assert set(FACT_TEMPLATES) == set(PARAPHRASE_TEMPLATES) == set(ATTRIBUTES)
    for t in ALL_TEMPLATES:
        assert t.split()[-1] == "{value}" and t.count("{value}") == 1 and t.count("{name}") == 1, t
    for a in ATTRIBUTES:
        assert len(FACT_TEMPLATES[a]) >= 2 and len(PARAPHRASE_TEMPLATES[a]) >= 2
        assert not set(FACT_TEMPLATES[a]) & set(PARAPHRASE_TEMPLATES[a]), a


def test_fact_sentences_and_prompt_and_answer():
    entities = make_entities(5, seed=0)
    rows = fact_sentences(entities, attributes=["colour", "size"])
    assert len(rows) == 5 * 2 * 2
    for sentence, name, attribute, value in rows:
        assert name in sentence.split() and attribute in ("colour", "size")
        prompt, answer = prompt_and_answer(sentence)
        assert answer == value and prompt + " " + value == sentence and value not in prompt.split()
    with pytest.raises(ValueError):
        prompt_and_answer("red")


def test_unknown_attribute_names_the_fix():
    with pytest.raises(ValueError, match=r"unknown attributes \['weight'\]; choose from: colour") as err:
        fact_sentences(make_entities(2), attributes=["colour", "weight"])
    assert "\n" not in str(err.value)


def test_build_corpus_counts():
    c = build_corpus(n_entities=7, seed=1)
    assert set(c) == {"entities", "vocab", "train", "paraphrase"} and len(c["entities"]) == 7
    n_attr = len(ATTRIBUTES)
    assert len(c["train"]) == 7 * n_attr * len(FACT_TEMPLATES["colour"])
    assert len(c["paraphrase"]) == 7 * n_attr * len(PARAPHRASE_TEMPLATES["colour"])
    assert not {s for s, *_ in c["train"]} & {s for s, *_ in c["paraphrase"]}


def test_vocabulary_round_trip_and_no_unk_in_probes():
    c = build_corpus(n_entities=10, seed=0)
    vocab = c["vocab"]
    assert vocab.words[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and vocab.words[4:] == sorted(vocab.words[4:])
    for v in (v for vs in ATTRIBUTES.values() for v in vs):
        assert v in vocab, "every value is a token, even ones no entity has"
    for sentence, *_ in c["train"] + c["paraphrase"]:
        ids = vocab.encode(sentence)
        assert ids.dtype == np.int64 and ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
        assert vocab.unk_id not in ids
        assert vocab.decode(ids) == sentence
    assert vocab.decode(vocab.encode("the red"), skip_specials=False) == "<bos> the red <eos>"
    assert len(vocab.encode("the red", bos=False, eos=False)) == 2


def test_unknown_word_is_unk():
    vocab = Vocabulary.build(["the zorb is red"])
    assert vocab.encode("the blorp is red", bos=False, eos=False).tolist()[1] == vocab.unk_id
    assert vocab.encode("THE Zorb", bos=False, eos=False).tolist() == [vocab.index("the"), vocab.index("zorb")]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.index("blorp")


def test_encode_batch_pads_and_reports_lengths():
    vocab = Vocabulary.build(["the zorb is red", "a b"])
    ids, lengths = vocab.encode_batch(["the zorb is red", "the zorb"])
    assert ids.shape == (2, 6) and ids.dtype == np.int64 and lengths.tolist() == [6, 4]
    assert ids[1, 4:].tolist() == [vocab.pad_id] * 2 and ids[1, :4].tolist() == vocab.encode("the zorb").tolist()
    assert vocab.decode(ids[1]) == "the zorb"


def test_vocabulary_is_deterministic():
    a, b = build_corpus(12, seed=5)["vocab"], build_corpus(12, seed=5)["vocab"]
    assert a.words == b.words and len(a) == len(a.words)
    shuffled = Vocabulary.build(["red is zorb the", "the zorb is red"][::-1])
    assert shuffled.words == Vocabulary.build(["the zorb is red"]).words
