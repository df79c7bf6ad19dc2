import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from llmcourse.data.corpus import load_corpus
from llmcourse.foundations.bigram import BigramModel, bigram_counts
from llmcourse.foundations.chars import CharVocab
from llmcourse.foundations.loss import mean_nll, perplexity


@pytest.fixture(scope="module")
def text():
    return load_corpus("tiny").text


def test_counts_match_a_counter(text):
    vocab = CharVocab.from_text(text)
    counts = bigram_counts(vocab.encode_tensor(text), len(vocab))
    reference = Counter(zip(text, text[1:], strict=False))
    for (a, b), n in reference.items():
        assert counts[vocab.encode(a)[0], vocab.encode(b)[0]] == n
    assert counts.sum() == sum(reference.values())


def test_loss_equals_cross_entropy_of_the_table(text):
    vocab = CharVocab.from_text(text)
    ids = vocab.encode_tensor(text)
    model = BigramModel.fit(ids, len(vocab), alpha=0.5)
    assert torch.allclose(model.probs.sum(1), torch.ones(len(vocab), dtype=torch.float64))
    reference = F.cross_entropy(model.probs[ids[:-1]].log(), ids[1:])
    assert model.loss(ids).item() == pytest.approx(reference.item(), rel=1e-12)


def test_unseen_pair_without_smoothing_is_infinite_and_smoothing_fixes_it():
    counts = bigram_counts(torch.tensor([0, 1, 0, 1]), 3)
    assert math.isinf(BigramModel.from_counts(counts, alpha=0).loss(torch.tensor([0, 2])).item())
    assert math.isfinite(BigramModel.from_counts(counts, alpha=1).loss(torch.tensor([0, 2])).item())


def test_sampling_is_seeded_and_stays_in_the_vocabulary(text):
    vocab = CharVocab.from_text(text)
    model = BigramModel.fit(vocab.encode_tensor(text), len(vocab))
    a = model.sample(0, 50, generator=torch.Generator().manual_seed(3))
    b = model.sample(0, 50, generator=torch.Generator().manual_seed(3))
    assert a == b and len(a) == 51 and all(0 <= i < len(vocab) for i in a)


def test_mean_nll_matches_nll_loss_and_uniform_perplexity_is_v():
    log_probs = torch.randn(5, 7, 11).log_softmax(-1)
    targets = torch.randint(0, 11, (5, 7))
    ours = mean_nll(log_probs, targets)
    assert torch.allclose(ours, F.nll_loss(log_probs.reshape(-1, 11), targets.reshape(-1)))
    uniform = torch.full((4, 11), -math.log(11))
    nll = mean_nll(uniform, torch.zeros(4, dtype=torch.long))
    assert perplexity(nll).item() == pytest.approx(11)


@pytest.mark.parametrize("call, error, message", [
    (lambda: bigram_counts(torch.tensor([0.0, 1.0]), 2), TypeError, "integer tensor"),
    (lambda: bigram_counts(torch.tensor([0, 5]), 2), ValueError, r"\[0, 2\)"),
    (lambda: BigramModel.from_counts(torch.zeros(2, 2), alpha=-1), ValueError, "alpha"),
    (lambda: BigramModel.fit(torch.tensor([0, 1]), 2).loss(torch.tensor([1])), ValueError,
     "at least two"),
    (lambda: mean_nll(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long)), ValueError,
     "must have shape"),
    (lambda: CharVocab.from_text(""), ValueError, "empty"),
    (lambda: CharVocab.from_text("ab").encode("abc"), ValueError, "not in the vocabulary"),
    (lambda: CharVocab.from_text("ab").decode([2]), ValueError, "outside the vocabulary"),
])
def test_bad_input_is_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()
