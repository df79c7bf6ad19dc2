"""Chapter 1's exercises. Each reference is the package's own implementation, so the course and
the grader agree.

Cases are drawn fresh from a random generator each time they are checked, plus fixed edge cases.
"""
from __future__ import annotations

import torch

from llmcourse.foundations.bigram import BigramModel, bigram_counts
from llmcourse.foundations.loss import mean_nll, perplexity
from llmcourse.grading.exercise import (
    Exercise,
    close_number,
    exact_int,
    register,
    same_tensor,
    tensor_close,
)
from llmcourse.model.config import ModelConfig
from llmcourse.model.sizing import parameter_count


def _ids(g: torch.Generator, n: int, vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=g)


def _table(g: torch.Generator, vocab: int) -> torch.Tensor:
    return torch.softmax(torch.randn(vocab, vocab, generator=g, dtype=torch.float64) * 2, dim=-1)


register(Exercise("1.1", "Bigram counts", "count_bigrams", points=2,
    reference=bigram_counts, compare=same_tensor,
    cases=lambda g: [
        ("random ids", (_ids(g, 200, 7), 7)),
        ("a larger vocabulary than the ids use", (_ids(g, 50, 5), 12)),
        ("one token: no pairs at all", (torch.tensor([3]), 5)),
        ("the same token repeated", (torch.tensor([2, 2, 2, 2]), 3)),
        ("the largest id", (torch.tensor([0, 9, 9, 0]), 10)),
    ],
    hint="counts[a, b] is how often b directly follows a: look at the pairs (ids[i], ids[i+1]).",
))

register(Exercise("1.2", "Smoothed bigram probabilities", "bigram_probs", points=2,
    reference=lambda counts, alpha: BigramModel.from_counts(counts, alpha).probs,
    compare=tensor_close(atol=1e-9, rtol=1e-6),
    cases=lambda g: [
        ("counts, alpha=1", (torch.randint(0, 20, (6, 6), generator=g), 1.0)),
        ("counts, alpha=0.1", (torch.randint(0, 5, (4, 4), generator=g), 0.1)),
        ("a row of zeros, alpha=0.5", (torch.tensor([[0, 0, 0], [1, 2, 3], [4, 0, 0]]), 0.5)),
    ],
    hint="add alpha to every count, then divide each row by its sum so that each row sums to 1.",
))

register(Exercise("1.3", "Negative log-likelihood of a sequence", "sequence_nll", points=2,
    reference=lambda probs, ids: mean_nll(probs[ids[:-1]].log(), ids[1:]).item(),
    compare=close_number,
    cases=lambda g: [
        (f"{v}-token table, {n} ids", (_table(g, v), _ids(g, n, v)))
        for v, n in [(5, 40), (9, 100), (3, 2)]
    ],
    hint="for each position t, take -log probs[ids[t], ids[t+1]]; the answer is the mean over the "
         "len(ids)-1 pairs.",
))

register(Exercise("1.4", "Perplexity", "sequence_perplexity", points=1,
    reference=lambda probs, ids: perplexity(BigramModel(probs).loss(ids)).item(),
    compare=close_number,
    cases=lambda g: [
        (f"{v}-token table, {n} ids", (_table(g, v), _ids(g, n, v)))
        for v, n in [(4, 30), (8, 80)]
    ] + [("a uniform table: perplexity is the vocabulary size",
          (torch.full((6, 6), 1 / 6, dtype=torch.float64), torch.tensor([0, 5, 2, 2, 1])))],
    hint="perplexity is exp of the mean negative log-likelihood (your sequence_nll).",
))


def _gpt2_config(vocab_size: int, context_length: int, n_layer: int, d_model: int,
                 tied: bool) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, context_length=context_length, n_layer=n_layer,
                       d_model=d_model, n_head=1, tie_embeddings=tied)


def _random_shape(g: torch.Generator) -> tuple[int, int, int, int, bool]:
    """(vocab_size, context_length, n_layer, d_model, tied) of a small config, head untied."""
    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high, (1,), generator=g))

    return draw(100, 5000), draw(16, 512), draw(1, 8), 64 * draw(1, 8), False


register(Exercise("1.5", "Parameter count of a GPT-2 config", "count_parameters", points=3,
    reference=lambda *args: parameter_count(_gpt2_config(*args)), compare=exact_int,
    cases=lambda g: [
        ("GPT-2 small", (50257, 1024, 12, 768, True)),
        ("GPT-2 medium", (50257, 1024, 24, 1024, True)),
        ("a random small config, untied head", _random_shape(g)),
    ],
    hint="per block: two LayerNorms (weight and bias), the q/k/v and output projections, and a 4x "
         "MLP, all with biases; plus token and position embeddings and a final LayerNorm; an "
         "untied head adds vocab x d_model.",
))
