"""Captions, class descriptions and a word-level vocabulary for the shapes world and its scenes.

The text side of the vision-language chapters (curriculum section 4.3, ``captions``); mini-CLIP
(``artifacts.mini_clip``, ``notebooks/06_vision_language/01_mini_clip.ipynb``) learns from ``caption``.
Everything is generated from the factor table, so every word of a caption is true of its picture (unless caption
noise is asked for), and seeded.

* ``caption(factors, seed)``: one caption per image, from at least six templates, with synonyms for shapes,
  colours, textures and backgrounds, and varied word order ("a striped red circle", "a circle, red and striped,
  in a painting", ...).
* ``scene_captions(objects, seed)``: one caption per scene, naming two of its objects and how they stand
  ("a red circle left of a blue star", "... above ..."): left/right from x, above/below from y (y points up).
* ``descriptions(novel, seed)``: a few sentences per class on its appearance and its "habitat", the domain it is
  most often seen in when a class-to-domain prior is applied (``with_habitats``). Novel classes get made-up names,
  which carry no signal of their own.
* ``corrupt(captions, factors, rate, kind, seed)``: caption noise, either swapped captions (``"mismatch"``) or one
  attribute word replaced by a wrong one (``"attribute"``).
* ``Vocabulary``: a plain word-level tokenizer, built once from every word the grammar can produce plus distractor
  words that never describe a picture, with ``encode`` / ``decode``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch

from .shapes import COLOURS, DOMAINS, SHAPES, SUPERCLASSES

SHAPE_WORDS = {
    "triangle": ["triangle", "three-sided shape"], "square": ["square", "box"], "pentagon": ["pentagon"],
    "hexagon": ["hexagon", "six-sided shape"], "circle": ["circle", "disc"], "ellipse": ["ellipse", "oval"],
    "semicircle": ["semicircle", "half-disc"], "ring": ["ring", "hoop"], "star4": ["four-pointed star"],
    "star5": ["five-pointed star", "star"], "star6": ["six-pointed star"], "cross": ["cross", "plus sign"],
    "heart": ["heart"], "arrow": ["arrow"], "L": ["letter L", "L shape"], "T": ["letter T", "T shape"],
}
COLOUR_WORDS = {"red": ["red", "scarlet"], "orange": ["orange"], "yellow": ["yellow", "golden"],
                "green": ["green"], "cyan": ["cyan", "turquoise"], "blue": ["blue"], "purple": ["purple", "violet"],
                "pink": ["pink", "magenta"]}
TEXTURE_WORDS = {"solid": ["solid", "plain"], "stripes": ["striped"], "dots": ["dotted", "spotted"],
                 "checker": ["checkered"], "gradient": ["shaded", "gradient"], "outline": ["outlined", "hollow"]}
DOMAIN_PHRASES = {"photo": ["in a photo", "in a photograph"], "cartoon": ["in a cartoon", "in a flat drawing"],
                  "sketch": ["in a sketch", "drawn in pencil"], "painting": ["in a painting", "on a painted canvas"],
                  "night": ["at night", "in the dark"]}
APPEARANCE = {
    "triangle": "it has three straight sides and three corners", "square": "it has four equal sides and four corners",
    "pentagon": "it has five straight sides", "hexagon": "it has six straight sides",
    "circle": "it is perfectly round", "ellipse": "it is round but stretched", "semicircle": "it is half of a disc",
    "ring": "it is round with a hole in the middle", "star4": "it has four sharp points",
    "star5": "it has five sharp points", "star6": "it has six sharp points", "cross": "it has four equal arms",
    "heart": "it has two round lobes and a point", "arrow": "it points one way with a head and a shaft",
    "L": "it is made of two bars at a right angle", "T": "it is a bar across the top of another bar",
}
SUPERCLASS_PHRASES = {"angular": "an angular shape", "round": "a round shape", "star-like": "a star-like shape",
                      "glyph": "a shape like a letter or sign"}
HABITATS = {shape: DOMAINS[k % len(DOMAINS)] for k, shape in enumerate(SHAPES)}  # the class-to-domain prior
DISTRACTORS = ("banana", "window", "river", "quickly", "music", "seven", "cloud", "engine", "soft", "tomorrow",
               "mountain", "paper", "green-ish", "table", "whisper", "laptop")
TEMPLATES = (
    "a {colour} {shape}",
    "a {texture} {colour} {shape} {domain}",
    "a {colour} {shape} {domain}",
    "{domain} , a {texture} {shape}",
    "a {shape} , {colour} and {texture} , {domain}",
    "there is a {colour} {shape} {domain}",
    "the {shape} is {colour}",
    "a picture of a {texture} {shape}",
)
RELATIONS = ("left of", "right of", "above", "below")
SPECIAL = ("<pad>", "<unk>", "<bos>", "<eos>")
_SYLLABLES = ("ba", "ko", "zu", "ri", "men", "tal", "vo", "xi", "del", "pra", "nu", "gor")


def _rng(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt])


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _words(row, rng) -> dict[str, str]:
    return {"shape": _pick(rng, SHAPE_WORDS[row["shape_name"]]), "colour": _pick(rng, COLOUR_WORDS[row["colour_name"]]),
            "texture": _pick(rng, TEXTURE_WORDS[row["texture_name"]]),
            "domain": _pick(rng, DOMAIN_PHRASES[row["domain_name"]])}


def articles(text: str) -> str:
    """"a" becomes "an" before a vowel: "a orange arrow" -> "an orange arrow"."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _check_factors(factors: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in factors]
    if missing:
        raise ValueError(f"factor table lacks columns {missing}; make it with ShapesWorld.sample_factors()")


def caption(factors: pd.DataFrame, seed: int = 0) -> list[str]:
    """One caption per row of a factor table (single-object images), lower case, words separated by spaces."""
    _check_factors(factors, ("shape_name", "colour_name", "texture_name", "domain_name"))
    rng = _rng(seed, 1)
    out = []
    for row in factors.to_dict("records"):
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        out.append(articles(template.format(**_words(row, rng))))
    return out


def relation(a: pd.Series | dict, b: pd.Series | dict) -> str:
    """How object ``a`` stands to object ``b``: along the axis where their centres differ more (y points up)."""
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy > 0 else "below"


def scene_captions(objects: pd.DataFrame, seed: int = 0, return_objects: bool = False):
    """One caption per scene of an object table (``Scenes.sample_layout``): two of its objects and their relation
    ("a red circle left of a blue star"); a scene of one object gets a single-object caption. With
    ``return_objects=True``, also the (n_scenes, 2) positions of the rows of ``objects`` that the caption names
    first and second (the same row twice for a one-object scene)."""
    _check_factors(objects, ("scene", "shape_name", "colour_name", "texture_name", "domain_name", "x", "y"))
    rng = _rng(seed, 2)
    out, named = [], []
    order = np.argsort(objects["scene"].to_numpy(), kind="stable")  # scene by scene, each in table order
    records = objects.iloc[order].to_dict("records")
    starts = np.flatnonzero(np.diff(objects["scene"].to_numpy()[order], prepend=np.nan) != 0)
    for begin, end in zip(starts, [*starts[1:], len(order)]):
        rows, index = records[begin:end], order[begin:end]
        if len(rows) == 1:
            words = _words(rows[0], rng)
            out.append(articles(f"a {words['colour']} {words['shape']} {words['domain']}"))
            named.append((index[0], index[0]))
            continue
        i, j = rng.choice(len(rows), 2, replace=False)
        a, b = _words(rows[i], rng), _words(rows[j], rng)
        out.append(articles(f"a {a['colour']} {a['shape']} {relation(rows[i], rows[j])} a {b['colour']} {b['shape']}"))
        named.append((index[i], index[j]))
    return (out, np.array(named, dtype=int).reshape(-1, 2)) if return_objects else out


def _two_objects(text: str):
    match = re.fullmatch(rf"(an? (\S+) .+) ({'|'.join(RELATIONS)}) (an? (\S+) .+)", text)
    if match is None:
        raise ValueError(f"not a two-object caption (\"a red circle left of a blue star\"): {text!r}")
    return match.groups()  # first phrase, its colour, relation, second phrase, its colour


def swap_caption_colours(text: str) -> str:
    """"a red circle left of a blue star" -> "a blue circle left of a red star": a two-object caption with its two
    colour words exchanged, word for word the same otherwise (the caption of ``scenes.swap_colours``'s twin)."""
    first, colour_a, relation, second, colour_b = _two_objects(text)
    shape_a, shape_b = first.split(" ", 2)[2], second.split(" ", 2)[2]
    return articles(f"a {colour_b} {shape_a} {relation} a {colour_a} {shape_b}")


def noun_phrases(captions: list[str]) -> list[tuple[str, str]]:
    """The two object phrases of each two-object caption: ("a red circle", "a blue star")."""
    return [(first, second) for first, _, _, second, _ in map(_two_objects, captions)]


def noun_positions(captions: list[str]) -> np.ndarray:
    """(n, 2) positions, in a caption's token ids (``<bos>`` is position 0), of the last word of each object's
    phrase: "a red *circle* left of a blue *star*" gives (3, 8)."""
    return np.array([(len(tokenize(first)), len(tokenize(text)))
                     for text, (first, _) in zip(captions, noun_phrases(captions))]).reshape(-1, 2)


def made_up_name(k: int, seed: int = 0) -> str:
    """A pronounceable nonsense word for class ``k``: a novel class's name, with no meaning of its own."""
    rng = _rng(seed, 100 + k)
    return "".join(_pick(rng, list(_SYLLABLES)) for _ in range(3))


def descriptions(novel=(), seed: int = 0) -> dict[str, list[str]]:
    """Per class name, sentences on its appearance and its habitat. Classes in ``novel`` (shape names) are renamed
    with :func:`made_up_name`: the key and every sentence use the made-up name."""
    bad = [s for s in novel if s not in SHAPES]
    if bad:
        raise ValueError(f"unknown shapes {bad}; valid: {', '.join(SHAPES)}")
    out = {}
    for k, shape in enumerate(SHAPES):
        name = made_up_name(k, seed) if shape in novel else SHAPE_WORDS[shape][0]
        superclass = SUPERCLASS_PHRASES[SUPERCLASSES[k // 4]]
        out[name] = [articles(text) for text in (
            f"a {name} is {superclass}", APPEARANCE[shape].replace("it ", f"a {name} ", 1),
            f"a {name} is usually seen {DOMAIN_PHRASES[HABITATS[shape]][0]}")]
    return out


def with_habitats(factors: pd.DataFrame, strength: float, seed: int = 0) -> pd.DataFrame:
    """A copy of the factor table in which each row's domain is its class's habitat with probability ``strength``
    (otherwise unchanged): the class-conditional background prior that habitat descriptions speak of. Metadata
    only; render the result to get the pictures."""
    _check_factors(factors, ("shape_name", "domain", "domain_name"))
    if not 0 <= strength <= 1:
        raise ValueError(f"strength is a probability in [0, 1], got {strength}")
    rng = _rng(seed, 3)
    move = rng.random(len(factors)) < strength
    out = factors.copy()
    habitat = np.array([DOMAINS.index(HABITATS[s]) for s in out["shape_name"]])
    out["domain"] = np.where(move, habitat, out["domain"])
    out["domain_name"] = np.array(DOMAINS)[out["domain"]]
    return out


CORRUPTIONS = ("mismatch", "attribute")


def corrupt(captions: list[str], factors: pd.DataFrame, rate: float, kind: str = "mismatch",
            seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Caption noise: each caption is corrupted with probability ``rate``. ``"mismatch"`` gives it the caption of
    another row (a derangement of the chosen rows); ``"attribute"`` replaces its colour word by another colour's.
    Returns the new captions and the mask of corrupted rows (a row whose colour word is missing is left alone)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")
    if not 0 <= rate <= 1:
        raise ValueError(f"rate is a probability in [0, 1], got {rate}")
    if len(captions) != len(factors):
        raise ValueError(f"{len(captions)} captions but {len(factors)} factor rows")
    rng = _rng(seed, 4)
    chosen = np.flatnonzero(rng.random(len(captions)) < rate)
    out, done = list(captions), np.zeros(len(captions), bool)
    if kind == "mismatch":
        if len(chosen) >= 2:
            shifted = np.roll(chosen, 1)  # a cycle: no chosen row keeps its own caption
            for i, j in zip(chosen, shifted):
                out[i] = captions[j]
            done[chosen] = [captions[i] != out[i] for i in chosen]
        return out, done
    for i in chosen:
        own = factors["colour_name"].iloc[i]
        for word in COLOUR_WORDS[own]:
            pattern = rf"\b{re.escape(word)}\b"
            if re.search(pattern, captions[i]):
                other = _pick(rng, [c for c in COLOURS if c != own])
                out[i] = articles(re.sub(pattern, COLOUR_WORDS[other][0], captions[i], count=1))
                done[i] = True
                break
    return out, done


def tokenize(text: str) -> list[str]:
    """Lower-case words; commas are words of their own; hyphenated words stay whole."""
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*|,", text.lower())


class Vocabulary:
    """A word-level tokenizer: ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3, then every word the
    grammar can produce (and ``extra`` words, e.g. made-up class names), then the distractors, in a fixed order."""

    def __init__(self, extra=()):
        words = set()
        for options in (*SHAPE_WORDS.values(), *COLOUR_WORDS.values(), *TEXTURE_WORDS.values(),
                        *DOMAIN_PHRASES.values(), *SUPERCLASS_PHRASES.values(), *APPEARANCE.values(), RELATIONS,
                        TEMPLATES, ["a an is usually seen"], extra):
            for text in ([options] if isinstance(options, str) else options):
                words.update(w for w in tokenize(re.sub(r"\{\w+\}", " ", text)))
        words -= set(DISTRACTORS)
        self.words = [*SPECIAL, *sorted(words), *[d for d in DISTRACTORS if d not in words]]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str], length: int = 16) -> torch.Tensor:
        """(n, length) word ids: ``<bos>`` words ``<eos>``, cut or padded with ``<pad>`` to ``length``."""
        if length < 3:
            raise ValueError(f"length must leave room for <bos>, a word and <eos>: >= 3, got {length}")
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [2, *(self.index.get(w, 1) for w in tokenize(text))][:length - 1] + [3]
            out[i, :len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Back to text, without the special tokens (``<unk>`` is kept, so unknown words show)."""
        return [" ".join(self.words[i] for i in row.tolist() if i not in (0, 2, 3)) for row in torch.atleast_2d(ids)]
