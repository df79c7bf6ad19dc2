"""The evaluation module against independent references: transformers' GPT-2 for
log-likelihoods, lm-eval's own window code for rolling perplexity, scipy for the Wilson interval,
a bootstrap for the ratio interval, chapter 1's bigram code, the SFT and DPO chapters' own
measures, and exact Jaccard similarity for contamination."""
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llmcourse.data.plays import speeches
from llmcourse.evaluation.choice import MultipleChoice, choose, multiple_choice
from llmcourse.evaluation.contamination import overlap
from llmcourse.evaluation.generation import generate_until
from llmcourse.evaluation.likelihood import (
    bits_per_byte,
    continuation_logprobs,
    encode_pair,
    rolling_requests,
    rolling_windows,
    text_logprob,
)
from llmcourse.evaluation.report import BigramLM, Score, Stage, random_guess, report_card
from llmcourse.evaluation.stats import ratio_interval, wilson_interval
from llmcourse.evaluation.suite import Suite, text_pieces, word_order
from llmcourse.foundations.bigram import BigramModel
from llmcourse.model.hf_checkpoint import load_hf_checkpoint

T = 16


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small GPT-2 in transformers and the same weights in llmcourse's model."""
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=300,
                                    n_positions=T)).eval()
    folder = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(folder)
    return hf, load_hf_checkpoint(folder).eval()


def hf_logprob(hf, context, continuation):
    """log p(continuation | context) straight from transformers, on the last T + 1 tokens."""
    whole = (list(context) + list(continuation))[-(T + 1):]
    with torch.no_grad():
        logp = hf(torch.tensor([whole[:-1]])).logits[0].log_softmax(-1)
    n = len(continuation)
    return sum(logp[len(whole) - 1 - n + i, t].item() for i, t in enumerate(continuation))


def test_continuation_logprobs_equal_transformers(pair):
    hf, ours = pair
    rng = random.Random(0)
    requests = [([rng.randrange(300) for _ in range(rng.randint(1, 30))],
                 [rng.randrange(300) for _ in range(rng.randint(1, 6))]) for _ in range(23)]
    got = continuation_logprobs(ours, requests, batch_size=5)
    for (context, continuation), (value, _) in zip(requests, got, strict=True):
        assert value == pytest.approx(hf_logprob(hf, context, continuation), abs=1e-4)
    # batching and order change nothing
    alone = continuation_logprobs(ours, requests, batch_size=1)
    assert [v for v, _ in alone] == pytest.approx([v for v, _ in got], abs=1e-5)


def test_is_greedy_means_greedy_decoding_writes_it(pair):
    hf, ours = pair
    context = [5, 17, 42]
    with torch.no_grad():
        written = hf.generate(torch.tensor([context]), max_new_tokens=3, do_sample=False,
                              pad_token_id=0)[0, 3:].tolist()
    (_, greedy), (_, other) = continuation_logprobs(ours, [(context, written),
                                                           (context, [(written[0] + 1) % 300])])
    assert greedy and not other


def test_rolling_windows_are_lm_evals(pair):
    """Our windows equal lm-eval's own (get_rolling_token_windows, make_disjoint_window)."""
    utils = pytest.importorskip("lm_eval.utils")
    for n in (1, 5, T - 1, T, T + 1, 3 * T + 7):
        tokens = list(range(1, n + 1))
        theirs = [utils.make_disjoint_window(w) for w in
                  utils.get_rolling_token_windows(tokens, prefix_token=0, max_seq_len=T,
                                                  context_len=1)]
        assert rolling_requests(tokens, 0, T) == [(list(a), list(b)) for a, b in theirs]


@pytest.mark.parametrize("stride", [None, 1, 5, T])
def test_every_token_is_scored_once(stride):
    for n in range(1, 60):
        scored = []
        for start, end, new in rolling_windows(n, T, stride):
            assert 0 <= start < end and end - start <= T and new <= end - start
            scored += range(end - new + 1, end + 1)  # positions in [prefix] + tokens
        assert scored == list(range(1, n + 1))


def test_text_logprob_equals_one_pass_when_it_fits(pair):
    hf, ours = pair
    ids = [3, 99, 250, 7, 7, 1, 42]
    assert text_logprob(ours, ids, prefix_id=0) == pytest.approx(hf_logprob(hf, [0], ids),
                                                                 abs=1e-4)
    long = [random.Random(1).randrange(300) for _ in range(50)]
    # more context per token (a smaller stride) changes the number, never which tokens count
    assert text_logprob(ours, long, 0, stride=4) != pytest.approx(text_logprob(ours, long, 0))


def test_encode_pair_moves_the_space(pair):
    from llmcourse.tokenizer import load_gpt2

    tok = load_gpt2()
    context, continuation = encode_pair(tok, "To be or not to ", "be", prefix_id=50256)
    assert tok.decode(continuation) == " be" and len(continuation) == 1
    assert encode_pair(tok, "", "Hamlet", prefix_id=50256) == ([50256], tok.encode("Hamlet"))
    with pytest.raises(ValueError, match="empty"):
        encode_pair(tok, "x", "", prefix_id=50256)


def test_bad_requests_are_explained(pair):
    _, ours = pair
    with pytest.raises(ValueError, match="cannot be scored"):
        continuation_logprobs(ours, [([1], list(range(T + 1)))])
    with pytest.raises(ValueError, match="prefix id"):
        continuation_logprobs(ours, [([], [1])])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_until(ours, None, [1], max_new_tokens=T)
    with pytest.raises(ValueError, match="gold"):
        MultipleChoice("q", ("a", "b"), 2)
    with pytest.raises(ValueError, match="distinct"):
        MultipleChoice("q", ("a", "a"), 0)


def test_a_long_prompt_loses_its_oldest_tokens(pair):
    _, ours = pair
    prompt = [random.Random(2).randrange(300) for _ in range(40)]
    out = generate_until(ours, _Ids(), prompt, max_new_tokens=4)
    same = generate_until(ours, _Ids(), prompt[-(T - 4):], max_new_tokens=4)
    assert out == same and len(out.split()) == 4


class _Ids:
    """A stand-in tokenizer that writes ids as words (the small model's vocabulary has no text)."""

    def decode(self, ids):
        return "".join(f" {i}" for i in ids)


def test_choose_and_normalise():
    assert choose([-3.0, -3.0, -5.0]) == 0  # the first on a tie
    assert choose([-4.0, -6.0], lengths=[2, 6]) == 1


def test_wilson_interval_is_scipys():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 10), (1, 10), (84, 280), (280, 280), (13, 520)]:
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_ratio_interval_matches_a_bootstrap():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1500, 2500, 300).astype(float)
    bits = sizes * rng.normal(2.4, 0.3, 300)
    value, low, high = ratio_interval(bits, sizes)
    boot = []
    for _ in range(2000):
        pick = rng.integers(0, 300, 300)
        boot.append(bits[pick].sum() / sizes[pick].sum())
    assert value == pytest.approx(bits.sum() / sizes.sum())
    assert (high - low) / 2 == pytest.approx(1.96 * np.std(boot), rel=0.1)


TEXTS = ["To be, or not to be, that is the question.", "Whether 'tis nobler in the mind"]


def small_tokenizer():
    """A 300-token BPE trained on TEXTS: a bigram table over it is small (GPT-2's would be
    20 GB)."""
    from llmcourse.tokenizer import Tokenizer
    from llmcourse.tokenizer.training import train_bpe

    ranks = train_bpe(" ".join(TEXTS) * 3, 300, special_tokens=["<|endoftext|>"])
    return Tokenizer(ranks, {"<|endoftext|>": 299})


def test_bigram_bits_per_byte_is_chapter_ones_loss():
    """The bigram floor read through the evaluation equals BigramModel.loss on the same ids."""
    tok, texts, eot = small_tokenizer(), TEXTS, 299
    ids = [i for t in texts for i in (eot, *tok.encode_ordinary(t))]
    bigram = BigramModel.fit(torch.tensor(ids), tok.n_vocab, alpha=0.5)
    found = bits_per_byte(BigramLM(bigram.probs, 8), tok, texts, eot)
    nats = sum(bigram.loss(torch.tensor([eot, *tok.encode_ordinary(t)])).item()
               * len(tok.encode_ordinary(t)) for t in texts)
    size = sum(len(t.encode()) for t in texts)
    assert found.value == pytest.approx(nats / np.log(2) / size, rel=1e-5)


def test_word_order_items_hold_the_same_words():
    play = ("ACT I.\n\nHAMLET.\nTo be, or not to be, that is the question:\nWhether 'tis nobler "
            "in the mind to suffer\n\nOphelia.\nGood my lord, how does your honour for this "
            "many a day?\n")
    assert [s.speaker for s in speeches(play)] == ["Hamlet", "Ophelia"]
    for item in word_order([play], 3, seed=1):
        right = item.choices[item.gold]
        assert right in play
        for choice in item.choices:
            assert sorted(choice.split()) == sorted(right.split())


def test_text_pieces_cover_the_text():
    text = "".join(f"line {i} of the play\n" for i in range(400))
    pieces = text_pieces([text], size=500)
    assert "".join(pieces) == text and all(len(p) >= 500 for p in pieces)


def test_contamination_finds_copies_and_rewordings():
    from llmcourse.data.dedup import jaccard, shingles

    rng = random.Random(0)
    words = "king queen sword crown night day love death ghost storm".split()
    train = [f"Find the last word.\n\n{' '.join(rng.sample(words, 4))}" for _ in range(300)]
    copies = train[:20]
    reworded = [t.replace("Find", "Reply with") for t in train[20:40]]
    fresh = [f"Reply with the last word.\n\n{w} {w} {w}" for w in words]
    found = overlap(copies + reworded + fresh, train)
    assert found.exact == list(range(20))
    assert set(found.near) >= set(range(20, 36))  # LSH may miss a rare few
    for i in found.near:  # every flag is a real near-duplicate (exact Jaccard, no MinHash)
        best = max(jaccard(shingles(found_text, 3), shingles(t, 3)) for t in train
                   for found_text in [(copies + reworded + fresh)[i]])
        assert best >= 0.35


def test_report_card_rows_and_floors():
    tok, texts = small_tokenizer(), TEXTS
    items = [MultipleChoice("Hamlet:", ("To be, or not to be", "be not or To to"), 0)]
    suite = Suite(texts, items, items, [], [], [])
    guess = random_guess(suite, tok)
    tokens = sum(len(tok.encode_ordinary(t)) for t in texts)
    assert guess["bits_per_byte"].value == pytest.approx(
        tokens * np.log2(tok.n_vocab) / sum(len(t) for t in texts))
    assert guess["order"].value == 0.5
    ids = [i for t in texts for i in (299, *tok.encode_ordinary(t))]
    bigram = BigramLM(BigramModel.fit(torch.tensor(ids), tok.n_vocab).probs, 8)
    report = report_card([Stage("bigram", bigram, tok)], suite)
    table = report.table()
    assert "| random guess |" in table and "| bigram | plain text |" in table
    assert report.rows()["bigram"]["order"][3] == 1
    assert str(Score.proportion(84, 280)) == "30.0% [24.9%, 35.6%]"
    assert multiple_choice(bigram, tok, items, 299).n == 1


def test_chat_measures_equal_the_fine_tuning_chapters():
    """Exact match through generate_until equals chapter 8's exact_match (its own decoding), and
    preference accuracy equals chapter 9's ranking_accuracy (its own batching), on the course's
    SFT and DPO models."""
    from llmcourse.data.corpus import load_corpus
    from llmcourse.dpo.recipe import CONTEXT, dpo_model
    from llmcourse.dpo.training import encode_pairs, ranking_accuracy
    from llmcourse.evaluation.questions import CHAT, exact_match, preference_accuracy
    from llmcourse.finetune import sft
    from llmcourse.finetune.recipe import sft_model, sft_tasks

    tuned = sft_model()
    questions = sft_tasks(load_corpus("shakespeare")).test[::4]
    assert exact_match(tuned.model, tuned.tokenizer, questions, CHAT) == sft.exact_match(
        tuned.model, tuned.tokenizer, questions)
    aligned = dpo_model()
    pairs = aligned.test_pairs[:120]
    ranked = preference_accuracy(aligned.model, aligned.tokenizer, pairs, CHAT, 0)
    encoded = encode_pairs(pairs, aligned.tokenizer, CONTEXT, too_long="truncate_prompt")
    assert sum(ranked) / len(ranked) == pytest.approx(
        ranking_accuracy(aligned.model, encoded, 0))


def test_the_eval_command_prints_the_report_card(tmp_path):
    out = subprocess.run([sys.executable, "-m", "llmcourse", "eval", "course", "--items", "20",
                          "--audit", "--json", str(tmp_path / "s.json")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| pretrained | plain text |" in out.stdout and "| bigram (chapter 1) |" in out.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    # the audit: each training source against each evaluation set, one line each
    pairs = {(row["source"], row["target"]): row for row in scores["audit"]}
    assert {"pretraining", "SFT"} <= {source for source, _ in pairs}
    assert {"held-out text", "word order", "cloze", "questions"} <= {t for _, t in pairs}
    cloze = pairs[("pretraining", "cloze")]
    assert cloze["checked"] == 20
    line = f"pretraining      cloze                20 {len(cloze['overlapping']):>7}"
    assert line in out.stdout
    bad = subprocess.run([sys.executable, "-m", "llmcourse", "eval", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "neither a run folder" in bad.stderr
