"""Concept vectors: where a Transformer keeps what it knows about an entity, and what unlearning does to it.

Hong, Yu, Yang, Ravfogel & Geva, "Intrinsic Evaluation of Unlearning Using Parametric Knowledge Traces"
(ConceptVectors; arXiv 2406.11614, 2024; EMNLP 2025). Taught in notebooks/10_theory/05_concept_vectors.ipynb.

A Transformer's MLP is a key-value memory (Geva et al. 2021): hidden unit j has a key k_j and a *value
vector* v_j (column j of W_out), and the layer adds sum_j a_j(x) v_j to the residual stream. Read through
the unembedding U (the "logit lens", U v_j), a value vector is a vote over the vocabulary. The paper finds
value vectors whose votes name one concept (a **concept vector**), checks them causally (noise on the vector
removes that concept's knowledge, not others'), and then asks what unlearning does to them:

- **gradient ascent** (GA), the behavioural baseline, maximises the loss on the forget set,

      theta <- theta + eta * grad_theta CE(f_theta(forget prompts), answers)   (with descent on a retain set),

  and the model stops *saying* the facts while the concept vector barely moves, cos(v_j, v_j') ~ 1: the
  knowledge is still in the weights, and comes back with a few steps of relearning;
- **Needle** edits the vector itself: Gaussian noise on v_j, then gradient ascent with every gradient but
  v_j's masked out. The trace (the vector's logit-lens vote) is gone.

The toy, :class:`FactLM`, is a one-layer Transformer built so that each entity's facts sit in one value
vector, which in a large LM is found, not built. Said plainly, four choices build the localisation in:

1. the memory is **keyed on the word alone** (each position's memory reads its own token embedding, as
   subject tokens trigger fact recall in mid-layer MLPs, Meng et al. 2022), so an entity is one key;
2. the memory weights are a **softmax** over the units, a_j = softmax_j(beta k_j . x), so units compete
   for an entity instead of sharing it (a ReLU MLP spreads every fact over dozens of shared units);
3. a question is **multiple choice**, scored among the asked attribute's values, so one vector can vote for
   all of an entity's values at once and the attribute picks among them;
4. the unembedding reads only the half of the residual that the embeddings leave empty, so every answer
   has to come from some value vector.

The attention then carries the memory's output from the entity's position to the answer position. The
token and position embeddings are frozen random vectors in the first half of the residual; U reads the
second half after an RMS norm (which does not centre, so nothing leaks across).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset


class FactLM(nn.Module):
    """A one-layer Transformer over word ids whose knowledge sits in its memory's value vectors.

    ``answer_sets`` lists the word ids of each attribute's values: a question is scored among the values
    of the attribute it asks about (a multiple-choice question). ``fit`` trains it on :func:`fact_dataset`.
    """

    def __init__(self, vocab_size: int, answer_sets, d: int = 128, hidden: int = 256, heads: int = 4,
                 beta: float = 8.0, max_len: int = 16, pad_id: int = 0, seed: int = 0):
        super().__init__()
        if d % 2 or (d // 2) % heads:
            raise ValueError(f"d must be even and d/2 divisible by heads, got d={d}, heads={heads}")
        if beta <= 0:
            raise ValueError(f"beta (the memory's inverse temperature) must be > 0, got {beta}")
        g = torch.Generator().manual_seed(seed)
        half = d // 2
        embed, position, unembed = torch.zeros(vocab_size, d), torch.zeros(max_len, d), torch.zeros(vocab_size, d)
        embed[:, :half] = torch.randn(vocab_size, half, generator=g) / math.sqrt(half)
        position[:, :half] = 0.5 * torch.randn(max_len, half, generator=g) / math.sqrt(half)
        unembed[:, half:] = torch.randn(vocab_size, half, generator=g)
        self.register_buffer("embed", embed)  # frozen: the words themselves carry no knowledge
        self.register_buffer("position", position)
        self.register_buffer("unembed", unembed)  # U (vocab, d): frozen, blind to every embedding
        options = torch.zeros(vocab_size, vocab_size, dtype=torch.bool)  # options[answer]: the candidates
        for ids in answer_sets:
            ids = torch.as_tensor(list(ids))
            options[ids[:, None], ids[None, :]] = True
        self.register_buffer("options", options)
        self.ln = nn.LayerNorm(d)
        self.keys = nn.Linear(d, hidden)  # k_j: row j
        self.w_out = nn.Linear(hidden, d, bias=False)  # v_j: column j, the value vectors
        self.query, self.key = nn.Linear(d, half, bias=False), nn.Linear(d, half, bias=False)
        self.register_buffer("unit_mask", torch.ones(hidden))  # 0 switches a unit off
        self.beta, self.heads, self.pad_id, self.max_len, self.d = beta, heads, pad_id, max_len, d
        self.hparams = {"beta": beta, "heads": heads}  # not in repr(model), so named for fit()'s cache key

    def memory_weights(self) -> torch.Tensor:
        """a_j(word) for every word of the vocabulary: (vocab, hidden), each row summing to 1."""
        scores = self.beta * self.keys(self.ln(self.embed))
        return scores.masked_fill(self.unit_mask == 0, float("-inf")).softmax(-1)

    def value_vectors(self) -> torch.Tensor:
        """The value vectors v_j, one per row: (hidden, d)."""
        return self.w_out.weight.T

    def logit_lens(self) -> torch.Tensor:
        """U v_j for every unit: (hidden, vocab), each value vector's vote on every word."""
        return self.value_vectors() @ self.unembed.T

    def forward_all(self, prompts: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits of the word after each prompt (B, vocab), the memory weights read there (B, hidden)).

        ``prompts`` (B, T) are right-padded word ids and ``lengths`` (B,) their lengths. Only the answer
        position is computed: the model predicts the word after each prompt's last word."""
        if prompts.ndim != 2 or not 1 <= prompts.shape[1] <= self.max_len:
            raise ValueError(f"prompts must have shape (batch, length 1..{self.max_len}), got {tuple(prompts.shape)}")
        B, T = prompts.shape
        if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
            raise ValueError(f"lengths must be ({B},) prompt lengths between 1 and {T}, got {lengths.tolist()}")
        rows = torch.arange(B, device=prompts.device)
        a = self.memory_weights()  # (vocab, hidden): each position looks up its own word, so once per word
        memory = F.one_hot(prompts, len(a)).to(a.dtype)  # (B, T, vocab): a matmul, not a gather, whose backward is
        x = self.embed[prompts] + self.position[:T] + memory @ (a @ self.value_vectors())  # deterministic on threads
        last = x[rows, lengths - 1]
        q = self.query(last).view(B, self.heads, 1, -1)
        k = self.key(x).view(B, T, self.heads, -1).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)).squeeze(2) / math.sqrt(q.shape[-1])  # (B, heads, T)
        padding = torch.arange(T, device=prompts.device)[None] >= lengths[:, None]
        attn = scores.masked_fill(padding[:, None], float("-inf")).softmax(-1).mean(1)  # (B, T)
        h = last + (attn[:, None] @ x).squeeze(1)  # attention moves the residual as it is: no value projection
        read = (attn[:, None] @ memory).squeeze(1) @ a  # how much of each value vector reaches the answer
        h = h / h.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt()  # RMS norm: no centring, so U stays blind to
        return h @ self.unembed.T, read  # the embeddings (centring would leak them in through U's row sums)

    def forward(self, prompts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_all(prompts, lengths)[0]

    def answer_logits(self, sentences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits among the candidates, -inf elsewhere (N, vocab), the answers (N,), the weights read (N, hidden))
        for right-padded sentences whose last word is the answer (:func:`encode_facts`)."""
        if sentences.ndim != 2:
            raise ValueError(f"sentences must be (N, T) word ids from encode_facts, got shape {tuple(sentences.shape)}")
        lengths = (sentences != self.pad_id).sum(1)
        rows = torch.arange(len(sentences), device=sentences.device)
        answers = sentences[rows, lengths - 1]
        prompts = sentences.clone()
        prompts[rows, lengths - 1] = self.pad_id
        logits, read = self.forward_all(prompts[:, :max(int(lengths.max()) - 1, 1)], lengths - 1)
        return logits.masked_fill(~self.options[answers], float("-inf")), answers, read

    def loss(self, batch):
        """``fit``'s interface: the cross entropy of each answer among its candidates."""
        logits, answers, _ = self.answer_logits(batch[1])
        return F.cross_entropy(logits, answers), {}


# ----------------------------------------------------------------------------- the facts as data
def encode_facts(vocab, rows) -> torch.Tensor:
    """Corpus rows (sentence, name, attribute, value) as right-padded word ids (N, T): <bos> sentence."""
    if not rows:
        raise ValueError("no fact sentences to encode")
    ids, _ = vocab.encode_batch([sentence for sentence, *_ in rows], bos=True, eos=False)
    return torch.as_tensor(ids)


def fact_dataset(vocab, rows) -> Dataset:
    """The sentences as a :class:`Dataset` that ``fit`` can train on: labels = the word ids, images = blanks."""
    sentences = encode_facts(vocab, rows)
    return Dataset(torch.zeros(len(sentences), 3, 1, 1), sentences, ["fact"], name="template facts")


def fact_loss(model: FactLM, sentences: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy of the answers among their candidates."""
    return model.loss((None, sentences))[0]


def answer_margin(model: FactLM, sentences: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Mean over questions of min(best wrong candidate's logit - the answer's, ``delta``): positive once wrong.
    Raising it pushes every question still right with the same force, however confident it is (the gradient of a
    cross entropy vanishes on confident answers), and stops pulling once a question is wrong by ``delta``."""
    logits, answers, _ = model.answer_logits(sentences)
    rows = torch.arange(len(answers), device=answers.device)
    right = logits[rows, answers]
    wrong = logits.clone()
    wrong[rows, answers] = float("-inf")
    return (wrong.max(1).values - right).clamp(max=delta).mean()


@torch.no_grad()
def accuracy(model: FactLM, sentences: torch.Tensor) -> float:
    """Share of questions whose answer is the model's top candidate (chance: 1 / number of values)."""
    model.eval()
    logits, answers, _ = model.answer_logits(sentences)
    return int((logits.argmax(1) == answers).sum()) / len(answers)  # exact: 2 of 10 is 0.2, not 0.2000000029


# ----------------------------------------------------------------------------- finding the concept vector
@torch.no_grad()
def attribution(model: FactLM, sentences: torch.Tensor) -> torch.Tensor:
    """How much each unit's value vector pushes the right answers: (hidden,).

    score_j = mean over questions of a_j * ((U v_j)[answer] - mean of U v_j over the other candidates),
    the weight read from unit j times its logit-lens vote for the answer over the alternatives."""
    _, answers, read = model.answer_logits(sentences)
    lens = model.logit_lens()  # (hidden, vocab)
    cand = model.options[answers].float()
    other = (lens @ cand.T - lens[:, answers]) / (cand.sum(1) - 1)  # (hidden, N)
    return (read * (lens[:, answers] - other).T).mean(0)


def concept_vector(model: FactLM, sentences: torch.Tensor) -> int:
    """The unit with the largest attribution on one entity's questions: its concept vector's index."""
    return int(attribution(model, sentences).argmax())


@torch.no_grad()
def lens_answers(model: FactLM, unit: int, answer_sets) -> list[int]:
    """What the value vector alone answers: for each attribute, the value its logit lens votes for most."""
    lens = model.logit_lens()[unit]
    return [int(ids[int(lens[list(ids)].argmax())]) for ids in map(list, answer_sets)]


def lens_accuracy(model: FactLM, unit: int, answer_sets, truth) -> float:
    """Share of an entity's facts (``truth``: one value id per attribute) that the vector's logit lens gets
    right: the concept's *trace*, read from the weights alone (chance: about one in five)."""
    return sum(int(a == t) for a, t in zip(lens_answers(model, unit, answer_sets), truth)) / len(truth)


@torch.no_grad()
def vector_cosine(before: FactLM, after: FactLM, unit: int) -> float:
    """cos(v_j before, v_j after): 1 when unlearning left the vector untouched."""
    return float(F.cosine_similarity(before.value_vectors()[unit], after.value_vectors()[unit], dim=0))


def transplant(model: FactLM, donor: FactLM, unit: int) -> FactLM:
    """A copy of ``model`` with the donor's value vector v_j: does the donor's vector still hold the facts?"""
    edited = copy.deepcopy(model)
    with torch.no_grad():
        edited.w_out.weight[:, unit] = donor.w_out.weight[:, unit]
    return edited


def noised(model: FactLM, unit: int, strength: float, seed: int = 0) -> FactLM:
    """A copy with Gaussian noise of ``strength`` x the vector's rms added to v_j: the causal test."""
    edited = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        v = edited.w_out.weight[:, unit]
        v += strength * v.pow(2).mean().sqrt() * torch.randn(v.shape, generator=g)
    return edited


# ----------------------------------------------------------------------------- unlearning, two ways
def gradient_ascent(model: FactLM, forget: torch.Tensor, retain: torch.Tensor | None = None, lr: float = 1e-3,
                    max_steps: int = 200, until: float = 0.2, only_unit: int | None = None,
                    objective: str = "cross entropy") -> tuple[FactLM, int]:
    """Behavioural unlearning: a copy trained (Adam, full batch) to *raise* the loss on ``forget``, plus plain
    descent on ``retain``, stopped once its accuracy on ``forget`` is at most ``until``. ``only_unit`` masks
    every gradient but that value vector's (Needle's second half). ``objective``: "cross entropy" (gradient
    ascent proper) or "margin" (:func:`answer_margin`). Returns (the model, the steps it took)."""
    if objective not in ("cross entropy", "margin"):
        raise ValueError(f"objective must be 'cross entropy' or 'margin', got {objective!r}")
    model = copy.deepcopy(model)
    params = [model.w_out.weight] if only_unit is not None else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    keep = None
    if only_unit is not None:
        keep = torch.zeros_like(model.w_out.weight)
        keep[:, only_unit] = 1.0
    step = 0
    while step < max_steps:
        step += 1
        model.train()
        raised = fact_loss(model, forget) if objective == "cross entropy" else answer_margin(model, forget)
        loss = -raised + (0.0 if retain is None else fact_loss(model, retain))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if keep is not None:
            model.w_out.weight.grad *= keep
        opt.step()
        if accuracy(model, forget) <= until:
            break
    model.eval()
    return model, step


def needle(model: FactLM, unit: int, forget: torch.Tensor, retain: torch.Tensor | None = None, noise: float = 3.0,
           lr: float = 3e-2, max_steps: int = 200, until: float = 0.2, seed: int = 0) -> tuple[FactLM, int]:
    """The paper's Needle: noise on the concept vector (``noise`` x its rms), then an ascent on ``forget`` that may
    change that vector only, at a high learning rate. Ours raises :func:`answer_margin`, not the cross entropy:
    from a confident model the cross entropy's gradient vanishes on the answers still right, and Adam's memory of
    the early, large gradients then stalls the ascent (at some seeds 40 % of the facts survived 500 steps)."""
    return gradient_ascent(noised(model, unit, noise, seed), forget, retain, lr=lr, max_steps=max_steps,
                           until=until, only_unit=unit, objective="margin")


def relearn(model: FactLM, sentences: torch.Tensor, steps: int, lr: float = 1e-3) -> list[float]:
    """Accuracy on ``sentences`` after 0, 1, ..., ``steps`` steps of fine-tuning a copy on them: how fast
    the knowledge comes back (fast means it was never really gone)."""
    model = copy.deepcopy(model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    curve = [accuracy(model, sentences)]
    for _ in range(steps):
        model.train()
        loss = fact_loss(model, sentences)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(accuracy(model, sentences))
    return curve
