"""A template corpus of facts about made-up entities, tied to the shapes world's attributes.

Taught in notebooks/10_theory/05_concept_vectors.ipynb (ConceptVectors: Hong et al., "Intrinsic
Evaluation of Unlearning Using Parametric Knowledge Traces", 2024), where a tiny Transformer language
model learns these facts, some are unlearned, and held-out paraphrases probe what is left.

The grammar, in brief: an entity is a made-up one-word name ("zorb") with one value per attribute
(colour, shape, corners, home, size; the values are the shapes world's hues, shape names and domains).
A sentence is a template with ``{name}`` and ``{value}`` filled in; the value is always the LAST word,
so ``prompt_and_answer`` turns any sentence into a next-word question:

    "the colour of the zorb is red"  ->  ("the colour of the zorb is", "red")

``FACT_TEMPLATES`` are the training sentences; ``PARAPHRASE_TEMPLATES`` are different wordings of the
same facts, never trained on. Everything is lowercase, whitespace-separated words, no punctuation; the
template words, the values and the names are three disjoint sets, so a prompt never contains its answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import COLOURS, DOMAINS, SHAPES

ENTITY_NAMES = (
    "zorb", "quillet", "marnak", "blenvo", "trevik", "zalmo", "pindrel", "gorvath",
    "kessrin", "wobrel", "yantok", "florbin", "snizzet", "ombrel", "vornik", "glemmet",
    "drazzle", "tulvar", "krimbo", "nessel", "jorvin", "plimket", "skorvan", "brindo",
    "halvix", "mirrop", "quenzo", "dabrik", "lorrim", "fennox", "grubel", "yozzit",
)

ATTRIBUTES = {
    "colour": tuple(COLOURS),  # red, orange, yellow, green, cyan, blue, purple, pink
    "shape": tuple(s for s in SHAPES if s.isalpha() and s.islower()),  # one lowercase word each
    "corners": ("zero", "three", "four", "five", "six", "eight"),
    "home": DOMAINS,  # photo, cartoon, sketch, painting, night
    "size": ("tiny", "small", "large", "huge"),
}

FACT_TEMPLATES = {
    "colour": ["the colour of the {name} is {value}", "the {name} is coloured {value}"],
    "shape": ["the shape of the {name} is {value}", "the {name} takes the form {value}"],
    "corners": ["the number of corners of the {name} is {value}", "the {name} has corners numbering {value}"],
    "home": ["the home of the {name} is {value}", "the {name} lives in the {value}"],
    "size": ["the size of the {name} is {value}", "the {name} has the size {value}"],
}

PARAPHRASE_TEMPLATES = {
    "colour": ["asked about its colour the {name} says {value}", "in every picture the {name} wears the colour {value}"],
    "shape": ["asked about its shape the {name} says {value}", "draw the {name} and you draw the shape {value}"],
    "corners": ["asked about its corners the {name} says {value}", "count the corners of the {name} and you get {value}"],
    "home": ["asked about its home the {name} says {value}", "you will find the {name} at home in the {value}"],
    "size": ["asked about its size the {name} says {value}", "next to the others the size of the {name} seems {value}"],
}


@dataclass
class Entity:
    """A made-up entity and its facts: attribute -> value, e.g. ``{"colour": "red", "home": "sketch"}``."""

    name: str
    facts: dict[str, str]


def make_entities(n: int = 20, seed: int = 0) -> list[Entity]:
    """``n`` entities with seeded names (a permutation of ENTITY_NAMES) and one uniform value per attribute."""
    if not 1 <= n <= len(ENTITY_NAMES):
        raise ValueError(f"n must be between 1 and {len(ENTITY_NAMES)} (the number of ENTITY_NAMES), got {n}")
    rng = np.random.default_rng(seed)
    names = [ENTITY_NAMES[i] for i in rng.permutation(len(ENTITY_NAMES))[:n]]
    return [Entity(name, {a: values[rng.integers(len(values))] for a, values in ATTRIBUTES.items()}) for name in names]


def fact_sentences(entities: list[Entity], templates: dict[str, list[str]] = FACT_TEMPLATES,
                   attributes: list[str] | None = None) -> list[tuple[str, str, str, str]]:
    """(sentence, entity name, attribute, value) for every entity x attribute x template, in that order."""
    attributes = list(templates) if attributes is None else list(attributes)
    unknown = [a for a in attributes if a not in templates]
    if unknown:
        raise ValueError(f"unknown attributes {unknown}; choose from: {', '.join(templates)}")
    return [(t.format(name=e.name, value=e.facts[a]), e.name, a, e.facts[a])
            for e in entities for a in attributes for t in templates[a]]


def prompt_and_answer(sentence: str) -> tuple[str, str]:
    """Split off the last word: ("the colour of the zorb is", "red")."""
    words = sentence.split()
    if len(words) < 2:
        raise ValueError(f"need a sentence of at least two words to split into prompt and answer, got {sentence!r}")
    return " ".join(words[:-1]), words[-1]


class Vocabulary:
    """Word-level vocabulary: the specials first, then every word in sorted order (deterministic)."""

    REQUIRED = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, words: list[str]):
        missing = [s for s in self.REQUIRED if s not in words]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}; build it with Vocabulary.build")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be distinct")
        self.words = list(words)
        self._ids = {w: i for i, w in enumerate(self.words)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self._ids[s] for s in self.REQUIRED)
        self.specials = frozenset(w for w in self.words if w.startswith("<") and w.endswith(">"))

    @classmethod
    def build(cls, sentences, specials=("<pad>", "<bos>", "<eos>", "<unk>")) -> Vocabulary:
        """Every distinct lowercase word of ``sentences``, sorted, after ``specials``."""
        found = {w for s in sentences for w in s.lower().split()} - set(specials)
        return cls(list(specials) + sorted(found))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def index(self, word: str) -> int:
        """The id of ``word`` (strict: an unknown word is an error here, unlike in ``encode``)."""
        if word not in self._ids:
            raise ValueError(f"{word!r} is not in the vocabulary; build it over sentences that contain it")
        return self._ids[word]

    def encode(self, text: str, bos: bool = True, eos: bool = True) -> np.ndarray:
        """int64 ids of the lowercase, whitespace-split words; unknown words become <unk>."""
        ids = [self._ids.get(w, self.unk_id) for w in text.lower().split()]
        return np.array([self.bos_id] * bos + ids + [self.eos_id] * eos, dtype=np.int64)

    def decode(self, ids, skip_specials: bool = True) -> str:
        words = (self.words[int(i)] for i in ids)
        return " ".join(w for w in words if not (skip_specials and w in self.specials))

    def encode_batch(self, texts, bos: bool = True, eos: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """ids (B, T) int64, right-padded with <pad>, and the lengths (B,) before padding."""
        rows = [self.encode(t, bos=bos, eos=eos) for t in texts]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        ids = np.full((len(rows), int(lengths.max(initial=0))), self.pad_id, dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        return ids, lengths


def build_corpus(n_entities: int = 20, seed: int = 0) -> dict:
    """Entities, a vocabulary over every fact, paraphrase and value (probes never hit <unk>), and sentences.

    ``train`` and ``paraphrase`` are lists of (sentence, entity name, attribute, value).
    """
    entities = make_entities(n_entities, seed)
    train = fact_sentences(entities, FACT_TEMPLATES)
    paraphrase = fact_sentences(entities, PARAPHRASE_TEMPLATES)
    values = [v for vs in ATTRIBUTES.values() for v in vs]
    vocab = Vocabulary.build([s for s, *_ in train + paraphrase] + values)
    return {"entities": entities, "vocab": vocab, "train": train, "paraphrase": paraphrase}
