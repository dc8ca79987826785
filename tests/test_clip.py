"""Mini-CLIP's loss and encoders (methods/clip.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_tutorial.data import captions as C
from ssl_tutorial.data.shapes import ShapesWorld
from ssl_tutorial.methods.clip import MAX_LOGIT_SCALE, MiniCLIP, TextEncoder, clip_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_clip_loss_is_the_mean_of_both_directions_and_ignores_norms():
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    logits = 10 * F.normalize(image, dim=1) @ F.normalize(text, dim=1).T
    target = torch.arange(6)
    expected = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert torch.allclose(clip_loss(image, text, 10.0), expected)
    assert torch.allclose(clip_loss(3 * image, 0.2 * text, 10.0), expected)  # only directions count
    assert torch.allclose(clip_loss(image, text, 10.0), clip_loss(text, image, 10.0))  # symmetric


def test_matching_pairs_give_a_small_loss_and_shuffled_pairs_a_large_one():
    basis = torch.eye(8)
    assert clip_loss(basis, basis, 50.0) < 1e-6
    assert clip_loss(basis, basis[torch.randperm(8, generator=torch.Generator().manual_seed(1))], 50.0) > 10
    # at scale 0+ every caption is as likely: the loss is log N
    assert math.isclose(clip_loss(basis, basis, 1e-9).item(), math.log(8), rel_tol=1e-6)


def test_clip_loss_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        clip_loss(torch.randn(4, 3), torch.randn(4, 5), 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        clip_loss(torch.randn(1, 3), torch.randn(1, 3), 1.0)
    with pytest.raises(ValueError, match="> 0"):
        clip_loss(torch.randn(4, 3), torch.randn(4, 3), 0.0)


def test_text_encoder_reads_the_eos_token_and_is_causal():
    torch.manual_seed(0)
    encoder = TextEncoder(vocab_size=20, width=16, heads=2, length=8).eval()
    ids = torch.tensor([[2, 5, 6, 3, 0, 0, 0, 0], [2, 5, 6, 7, 3, 0, 0, 0]])
    sentence, tokens = encoder(ids)
    assert sentence.shape == (2, 16) and tokens.shape == (2, 8, 16)
    assert torch.allclose(sentence[0], tokens[0, 3]) and torch.allclose(sentence[1], tokens[1, 4])
    # causal: what follows a position does not change it
    changed = ids.clone()
    changed[0, 5] = 9
    assert torch.allclose(encoder(changed)[1][0, :5], tokens[0, :5], atol=1e-6)
    with pytest.raises(ValueError, match="L <= 8"):
        encoder(torch.zeros(2, 9, dtype=torch.long))


def test_mini_clip_shapes_scale_clamp_and_a_few_steps_of_learning():
    world = ShapesWorld(size=16, shapes=("circle", "square", "star5", "heart"), colours=("red", "blue"))
    factors = world.sample_factors(64, seed=0)
    images = world.render(factors)
    vocab = C.Vocabulary()
    ids = vocab.encode([f"a {c} {s}" for c, s in zip(factors["colour_name"], factors["shape_name"])], length=8)
    torch.manual_seed(0)
    model = MiniCLIP(len(vocab), dim=16, widths=(8, 16), text_width=16, length=8)
    assert model.encode_image(images[:4]).shape == (4, 16) and model.encode_text(ids[:4]).shape == (4, 16)
    assert torch.allclose(model.encode_image(images[:4]).norm(dim=1), torch.ones(4))
    assert math.isclose(model.logit_scale().item(), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        model.log_scale.fill_(10.0)
    assert math.isclose(model.logit_scale().item(), MAX_LOGIT_SCALE, rel_tol=1e-5)
    model.after_init()
    assert math.isclose(model.logit_scale().item(), 1 / 0.07, rel_tol=1e-5)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    first = model.loss((images, ids))[0].item()
    for _ in range(30):
        loss, logs = model.loss((images, ids))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first - 0.3 and set(logs) == {"logit_scale", "top1"}
    with pytest.raises(ValueError, match="temperature"):
        MiniCLIP(10, temperature=0)


def test_seeded_init_fixes_every_weight_including_attention():
    """fit() initialises models with nets.seeded_init; the Transformer's attention must follow the seed too, or the
    cache key (which hashes the initial weights) and the results change from run to run."""
    from ssl_tutorial.nets import seeded_init

    torch.manual_seed(1)
    a = seeded_init(MiniCLIP(30, dim=8, widths=(8, 16), text_width=16, length=8), seed=5)
    torch.manual_seed(2)
    b = seeded_init(MiniCLIP(30, dim=8, widths=(8, 16), text_width=16, length=8), seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# -- zero-shot classification and retrieval --------------------------------------------------------------------------

def _small_model():
    vocab = C.Vocabulary()
    torch.manual_seed(0)
    return MiniCLIP(len(vocab), dim=8, widths=(4, 8), text_width=16).eval(), vocab


def test_encode_texts_normalises_and_names_unknown_words():
    from ssl_tutorial.methods.clip import encode_images, encode_texts

    model, vocab = _small_model()
    text = encode_texts(model, vocab, ["a red circle", "a blue star at night"], batch_size=1)
    assert text.shape == (2, 8) and torch.allclose(text.norm(dim=1), torch.ones(2))
    assert torch.allclose(text[:1], encode_texts(model, vocab, ["a red circle"]))
    with pytest.raises(ValueError, match="not in the vocabulary: purple-ish, zebra"):
        encode_texts(model, vocab, ["a zebra", "a purple-ish circle"])
    with pytest.raises(ValueError, match="1 to 14 words"):
        encode_texts(model, vocab, ["a red circle", ""])
    with pytest.raises(ValueError, match="1 to 14 words"):
        encode_texts(model, vocab, [" ".join(["red"] * 15)])
    assert encode_texts(model, vocab, [" ".join(["red"] * 14)]).shape == (1, 8)
    images = ShapesWorld(size=8).sample(3, seed=0).images
    assert encode_images(model, images, batch_size=2).shape == (3, 8)


def test_class_prompts_name_their_class_and_only_known_words():
    from ssl_tutorial.methods.clip import class_prompts

    vocab = C.Vocabulary()
    shapes, colours = class_prompts("shape"), class_prompts("colour")
    assert list(shapes) == list(C.SHAPE_WORDS) and list(colours) == list(C.COLOUR_WORDS)
    for name, sentences in shapes.items():
        assert all(C.SHAPE_WORDS[name][0] in s for s in sentences) and len(sentences) == len(set(sentences))
    for name, sentences in colours.items():
        assert all(C.COLOUR_WORDS[name][0] in C.tokenize(s) for s in sentences)
    every = [s for d in (shapes, colours) for v in d.values() for s in v]
    assert all(w in vocab.index for s in every for w in C.tokenize(s))
    assert "an arrow" in shapes["arrow"]  # articles agree
    with pytest.raises(ValueError, match="unknown attribute"):
        class_prompts("size")


def test_zero_shot_classifier_is_the_normalised_mean_of_prompt_embeddings():
    from ssl_tutorial.methods.clip import encode_texts, zero_shot_classifier

    model, vocab = _small_model()
    prompts = {"circle": ["a circle", "a picture of a circle"], "star": ["a star"]}
    weights = zero_shot_classifier(model, vocab, prompts)
    expected = F.normalize(encode_texts(model, vocab, prompts["circle"]).mean(0), dim=0)
    assert weights.shape == (2, 8) and torch.allclose(weights[0], expected)
    assert torch.allclose(weights[1], encode_texts(model, vocab, ["a star"])[0])


def test_retrieval_recall_both_ways():
    from ssl_tutorial.methods.clip import retrieval_recall

    basis = torch.eye(4)
    assert retrieval_recall(basis, basis, k=1) == {"text -> image": 100.0, "image -> text": 100.0}
    # caption 0 is closest to image 1; image 0 still finds caption 0 first
    text = torch.tensor([[0.6, 0.8, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    # caption 0 ranks image 1 first (0.8 > 0.6): a miss; every image still ranks its own caption first
    assert retrieval_recall(basis, text, k=1) == {"text -> image": 75.0, "image -> text": 100.0}
    assert retrieval_recall(basis, text, k=2)["text -> image"] == 100.0
    with pytest.raises(ValueError, match="paired rows"):
        retrieval_recall(basis, basis[:3])


def test_text_encoder_takes_soft_input_embeddings():
    from ssl_tutorial.data.captions import Vocabulary
    from ssl_tutorial.methods.clip import TextEncoder

    vocab = Vocabulary()
    torch.manual_seed(0)
    encoder = TextEncoder(len(vocab), width=16).eval()
    ids = vocab.encode(["a red circle", "a blue star in a photo"], 16)
    with torch.no_grad():
        sentence, tokens = encoder(ids)
        soft = encoder(ids, encoder.embed(ids))  # the word embeddings given by hand: the same outputs
        changed = encoder(ids, encoder.embed(ids) + torch.randn(2, 16, 16))
    assert torch.allclose(soft[0], sentence) and torch.allclose(soft[1], tokens)
    assert not torch.allclose(changed[0], sentence)
    with pytest.raises(ValueError, match=r"embeddings must be \(N, L, 16\)"):
        encoder(ids, torch.zeros(2, 16, 8))
