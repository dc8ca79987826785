"""FactLM (a one-layer Transformer with a word-keyed softmax memory), its fact data and the concept-vector tools."""

import copy

import pytest
import torch

from ssl_tutorial import fit, setup
from ssl_tutorial.data.text import ATTRIBUTES, build_corpus
from ssl_tutorial.methods.concept_vectors import (
    FactLM,
    accuracy,
    answer_margin,
    attribution,
    concept_vector,
    encode_facts,
    fact_dataset,
    fact_loss,
    gradient_ascent,
    lens_accuracy,
    needle,
    noised,
    relearn,
    transplant,
    vector_cosine,
)

CORPUS = build_corpus(n_entities=4, seed=0)
VOCAB = CORPUS["vocab"]
ANSWER_SETS = [[VOCAB.index(v) for v in values] for values in ATTRIBUTES.values()]


def tiny(**kw) -> FactLM:
    """An untrained model, small enough for tests that need no knowledge in it."""
    return FactLM(len(VOCAB), ANSWER_SETS, **{"d": 32, "hidden": 32, "heads": 2, "seed": 0, **kw})


def facts_of(name: str) -> torch.Tensor:
    return encode_facts(VOCAB, [r for r in CORPUS["train"] if r[1] == name])


def others_of(name: str) -> torch.Tensor:
    return encode_facts(VOCAB, [r for r in CORPUS["train"] if r[1] != name])


def truth_of(entity) -> list[int]:
    return [VOCAB.index(entity.facts[a]) for a in ATTRIBUTES]


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict, skip=()) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if k not in skip)


def changed_columns(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    return (before != after).any(0).nonzero().flatten().tolist()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, {entity name: its concept vector's unit}) after training to 100 % on the 4 entities' facts."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_TUTORIAL_CACHE", str(tmp_path_factory.mktemp("cache")))
        model = FactLM(len(VOCAB), ANSWER_SETS, d=128, hidden=256, heads=4, seed=0)
        rows = CORPUS["train"]
        fit(model, fact_dataset(VOCAB, rows), setup("smoke", seed=0, device="cpu", verbose=False), steps=60,
            batch_size=len(rows), lr=3e-3, cache=False, progress=False)
    assert accuracy(model, encode_facts(VOCAB, rows)) == 1.0
    units = {e.name: concept_vector(model, facts_of(e.name)) for e in CORPUS["entities"]}
    return model, units


# ----------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("kw, match", [
    ({"d": 33}, "d must be even"), ({"d": 32, "heads": 3}, "d/2 divisible by heads"),
    ({"beta": 0.0}, "beta"), ({"beta": -1.0}, "must be > 0"),
])
def test_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        tiny(**kw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (2, 17), (2, 0)])
def test_bad_prompt_shapes(shape):
    model = tiny(max_len=16)
    prompts = torch.full(shape, VOCAB.bos_id, dtype=torch.long)
    with pytest.raises(ValueError, match=r"prompts must have shape \(batch, length 1\.\.16\)") as err:
        model.forward_all(prompts, torch.ones(shape[0], dtype=torch.long))
    assert "\n" not in str(err.value)
    model(torch.full((2, 16), VOCAB.bos_id), torch.tensor([16, 3]))  # max_len itself is fine


def test_answer_logits_rejects_one_sentence_without_a_batch_axis():
    sentence = encode_facts(VOCAB, CORPUS["train"][:1])[0]
    with pytest.raises(ValueError, match=r"sentences must be \(N, T\) word ids from encode_facts"):
        tiny().answer_logits(sentence)


# ----------------------------------------------------------------------------- the memory and the residual split
def test_memory_weights_are_a_softmax_and_the_mask_switches_units_off():
    model = tiny()
    with torch.no_grad():
        a = model.memory_weights()
        assert a.shape == (len(VOCAB), 32) and (a >= 0).all()
        torch.testing.assert_close(a.sum(1), torch.ones(len(VOCAB)))
        model.unit_mask[[3, 7]] = 0
        masked = model.memory_weights()
    assert (masked[:, [3, 7]] == 0).all()
    torch.testing.assert_close(masked.sum(1), torch.ones(len(VOCAB)))
    assert model.value_vectors().shape == (32, 32) and model.logit_lens().shape == (32, len(VOCAB))


def test_unembedding_reads_only_the_memorys_half():
    model = tiny()
    assert (model.embed @ model.unembed.T == 0).all() and (model.position @ model.unembed.T == 0).all()
    assert not (model.embed == 0).all() and not (model.unembed == 0).all()
    assert not any(p.requires_grad for p in model.buffers())  # the words and U are frozen


def test_without_value_vectors_every_word_gets_the_same_logit():
    model = tiny()
    with torch.no_grad():
        model.w_out.weight.zero_()
        sentences = encode_facts(VOCAB, CORPUS["train"])
        logits, _ = model.forward_all(sentences, (sentences != VOCAB.pad_id).sum(1))
    torch.testing.assert_close(logits, logits[:, :1].expand_as(logits))


# ----------------------------------------------------------------------------- the facts as data
def test_encode_facts_and_fact_dataset():
    rows = CORPUS["train"] + CORPUS["paraphrase"]
    ids = encode_facts(VOCAB, rows)
    longest = max(len(s.split()) for s, *_ in rows) + 1
    assert ids.shape == (len(rows), longest) and ids.dtype == torch.int64
    assert (ids[:, 0] == VOCAB.bos_id).all()
    lengths = (ids != VOCAB.pad_id).sum(1)
    for row, n, (sentence, *_) in zip(ids, lengths.tolist(), rows):
        assert n == len(sentence.split()) + 1
        assert (row[n:] == VOCAB.pad_id).all() and VOCAB.decode(row) == sentence
    assert (lengths < ids.shape[1]).any(), "the paraphrases are of mixed lengths, so some rows are padded"
    data = fact_dataset(VOCAB, rows)
    assert len(data) == len(rows) and torch.equal(data.labels, ids) and data.images.shape == (len(rows), 3, 1, 1)
    with pytest.raises(ValueError, match="no fact sentences"):
        encode_facts(VOCAB, [])


def test_answer_logits_score_the_last_word_among_its_attributes_values():
    rows = CORPUS["train"] + CORPUS["paraphrase"]
    sentences = encode_facts(VOCAB, rows)
    model = tiny()
    with torch.no_grad():
        logits, answers, read = model.answer_logits(sentences)
    assert logits.shape == (len(rows), len(VOCAB)) and read.shape == (len(rows), 32)
    assert answers.tolist() == [VOCAB.index(value) for *_, value in rows]
    lengths = (sentences != VOCAB.pad_id).sum(1)
    assert torch.equal(answers, sentences[torch.arange(len(rows)), lengths - 1])
    attribute_ids = {a: set(ids) for a, ids in zip(ATTRIBUTES, ANSWER_SETS)}
    for row, (*_, attribute, _value) in zip(logits, rows):
        finite = set(torch.isfinite(row).nonzero().flatten().tolist())
        assert finite == attribute_ids[attribute] and (row[~torch.isfinite(row)] == float("-inf")).all()
    torch.testing.assert_close(read.sum(1), torch.ones(len(rows)))


def test_answer_logits_ignore_the_answer_and_the_padding():
    rows = CORPUS["paraphrase"][:10]
    sentences = encode_facts(VOCAB, rows)
    model = tiny()
    with torch.no_grad():
        logits, _, read = model.answer_logits(sentences)
        lengths = (sentences != VOCAB.pad_id).sum(1)
        swapped = sentences.clone()
        for i, (*_, attribute, value) in enumerate(rows):  # another value of the same attribute as the answer
            ids = ANSWER_SETS[list(ATTRIBUTES).index(attribute)]
            swapped[i, lengths[i] - 1] = next(j for j in ids if j != VOCAB.index(value))
        torch.testing.assert_close(model.answer_logits(swapped)[0], logits)
        for i in range(len(rows)):  # one sentence alone, unpadded, scores as it does in the batch
            alone, _, read_alone = model.answer_logits(sentences[i:i + 1, :lengths[i]])
            torch.testing.assert_close(alone[0], logits[i])
            torch.testing.assert_close(read_alone[0], read[i])


# ----------------------------------------------------------------------------- a trained model's concept vectors
def test_fit_learns_the_facts_into_one_value_vector_per_entity(trained):
    model, units = trained
    assert len(set(units.values())) == len(units), "each entity has its own concept vector"
    with torch.no_grad():
        weights = model.memory_weights()
    lens = []
    for e in CORPUS["entities"]:
        assert weights[VOCAB.index(e.name), units[e.name]] > 0.9, "the name's memory reads its own unit"
        lens.append(lens_accuracy(model, units[e.name], ANSWER_SETS, truth_of(e)))
    assert min(lens) >= 0.6 and sum(lens) / len(lens) >= 0.8, lens  # chance is about 0.2


def test_attribution_shape_and_masked_units(trained):
    model, units = trained
    name = CORPUS["entities"][0].name
    scores = attribution(model, facts_of(name))
    assert scores.shape == (256,) and torch.isfinite(scores).all()
    assert int(scores.argmax()) == units[name] == concept_vector(model, facts_of(name))
    masked = copy.deepcopy(model)
    masked.unit_mask[units[name]] = 0
    assert attribution(masked, facts_of(name))[units[name]] == 0  # a unit switched off is read by no one


def test_noised_is_a_copy_that_changes_one_value_vector(trained):
    model, units = trained
    before = state(model)
    unit = units[CORPUS["entities"][0].name]
    zero = noised(model, unit, 0.0)
    assert zero is not model and same_state(state(zero), before)
    loud = noised(model, unit, 5.0, seed=1)
    assert same_state(state(model), before), "the original is untouched"
    assert same_state(state(loud), before, skip=["w_out.weight"])
    assert changed_columns(before["w_out.weight"], loud.w_out.weight) == [unit]
    assert torch.equal(noised(model, unit, 5.0, seed=1).w_out.weight, loud.w_out.weight)  # seeded
    assert vector_cosine(model, copy.deepcopy(model), unit) == pytest.approx(1.0, abs=1e-6)
    assert vector_cosine(model, loud, unit) < 0.9


def test_gradient_ascent_is_a_copy_and_stops_at_until(trained):
    model, units = trained
    before = state(model)
    name = CORPUS["entities"][0].name
    forget = facts_of(name)
    unlearned, steps = gradient_ascent(model, forget, others_of(name), lr=1e-2, max_steps=40, until=0.2)
    assert unlearned is not model and same_state(state(model), before)
    assert 1 <= steps <= 40 and (accuracy(unlearned, forget) <= 0.2 or steps == 40)
    assert not same_state(state(unlearned), before)
    assert gradient_ascent(model, forget, max_steps=3, until=-1.0)[1] == 3  # an unreachable target: max_steps
    assert gradient_ascent(model, forget, max_steps=3, until=1.0)[1] == 1  # reached after the first step


def test_gradient_ascent_on_one_unit_and_needle_change_only_that_column(trained):
    model, units = trained
    before = state(model)
    name = CORPUS["entities"][1].name
    unit, forget = units[name], facts_of(name)
    for edited, steps in (gradient_ascent(model, forget, lr=1e-2, max_steps=5, until=-1.0, only_unit=unit),
                          needle(model, unit, forget, others_of(name), max_steps=5, until=0.2)):
        assert 1 <= steps <= 5
        assert same_state(state(edited), before, skip=["w_out.weight"]), "every other parameter is identical"
        assert changed_columns(before["w_out.weight"], edited.w_out.weight) == [unit]
    assert same_state(state(model), before)


def test_relearn_curve_starts_at_the_current_accuracy(trained):
    model, units = trained
    name = CORPUS["entities"][2].name
    forget = facts_of(name)
    unlearned, _ = needle(model, units[name], forget, max_steps=10, until=0.2)
    before = state(unlearned)
    curve = relearn(unlearned, forget, steps=3, lr=1e-2)
    assert len(curve) == 4 and curve[0] == accuracy(unlearned, forget)
    assert all(0.0 <= c <= 1.0 for c in curve)
    assert same_state(state(unlearned), before), "relearning trains a copy"
    assert fact_loss(unlearned, forget).item() > fact_loss(model, forget).item()


def test_answer_margin_against_a_direct_computation(trained):
    model, _ = trained
    sentences = facts_of(CORPUS["entities"][0].name)
    logits, answers, _ = model.answer_logits(sentences)
    direct = []
    for row, a in zip(logits.tolist(), answers.tolist()):
        best_wrong = max(v for i, v in enumerate(row) if i != a and v != float("-inf"))
        direct.append(min(best_wrong - row[a], 0.5))
    assert answer_margin(model, sentences, delta=0.5).item() == pytest.approx(sum(direct) / len(direct), abs=1e-5)
    assert answer_margin(model, sentences).item() < 0  # every answer right: the margin is negative


def test_gradient_ascent_objectives(trained):
    model, units = trained
    name = CORPUS["entities"][1].name
    with pytest.raises(ValueError, match="objective"):
        gradient_ascent(model, facts_of(name), objective="hinge")
    unlearned, steps = gradient_ascent(model, facts_of(name), lr=3e-2, max_steps=50, only_unit=units[name],
                                       objective="margin")
    assert accuracy(unlearned, facts_of(name)) <= 0.2 and steps < 50


def test_transplant_moves_one_value_vector(trained):
    model, units = trained
    name = CORPUS["entities"][2].name
    u = units[name]
    donor = noised(model, u, 10.0, seed=1)
    before = state(model)
    moved = transplant(model, donor, u)
    assert same_state(before, state(model))  # the original is untouched
    assert changed_columns(model.w_out.weight, moved.w_out.weight) == [u]
    torch.testing.assert_close(moved.w_out.weight[:, u], donor.w_out.weight[:, u])
    assert same_state(state(model), state(moved), skip=("w_out.weight",))
    assert accuracy(transplant(model, model, u), facts_of(name)) == accuracy(model, facts_of(name))
