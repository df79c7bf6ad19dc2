"""Streaming encoding (`Tokenizer.encode_iterable`): the ids of `encode` on the joined text, against
tiktoken, in memory that does not grow with the input."""
import itertools
import random
import tracemalloc
from collections.abc import Iterator

import pytest
from test_tokenizer import SPECIAL, TINY, varied_text

import llmcourse.tokenizer.bpe as bpe
from llmcourse.data.corpus import load_corpus
from llmcourse.tokenizer import Tokenizer

# cl100k_base's pattern, as in tiktoken_ext.openai_public: possessive quantifiers and an
# end-of-text anchor
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                  r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
                  r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s""")


@pytest.fixture(params=[1, 5, bpe.BLOCK], ids=lambda size: f"block={size}")
def block(request, monkeypatch):
    """How much text the stream gathers before it encodes: small blocks put block ends
    everywhere."""
    monkeypatch.setattr(bpe, "BLOCK", request.param)
    return request.param


def random_pieces(text: str, rng: random.Random, max_len: int = 12) -> list[str]:
    """`text` cut at random places: inside words, whitespace runs and special tokens alike."""
    n_cuts = min(len(text) - 1, len(text) // max(1, max_len // 2))
    cuts = sorted(rng.sample(range(1, len(text)), n_cuts))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def test_streamed_lines_give_tiktokens_ids_on_a_megabyte_of_varied_text(gpt2, gpt2_tiktoken):
    text = varied_text()
    lines = text.splitlines(keepends=True)
    assert len(lines) > 10_000
    assert list(gpt2.encode_iterable(lines)) == gpt2_tiktoken.encode(text)


@pytest.mark.parametrize("seed", range(3))
def test_cuts_anywhere_give_the_same_ids(gpt2, gpt2_tiktoken, seed, block):
    rng = random.Random(seed)
    words = ["the", " cat", "  ", "\n", "\n\n", "   \n ", "it's", " 2024", "!!", "日本", " 🚀",
             SPECIAL, "<|", "end"]
    text = "".join(rng.choice(words) for _ in range(3000))
    pieces = random_pieces(text, rng)
    assert "".join(pieces) == text
    assert list(gpt2.encode_iterable(pieces, allowed_special="all")) == gpt2_tiktoken.encode(
        text, allowed_special="all")
    assert list(gpt2.encode_iterable(pieces, disallowed_special=())) == gpt2_tiktoken.encode(
        text, disallowed_special=())
    one_char_each = list(text[:2000])
    assert list(gpt2.encode_iterable(one_char_each, allowed_special="all")) == gpt2_tiktoken.encode(
        text[:2000], allowed_special="all")


def test_a_disallowed_special_token_is_refused_even_when_cut_in_two(gpt2, block):
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>' at position 6"):
        list(gpt2.encode_iterable(["hello <|endof", "text|> world"]))


def test_strings_only(gpt2):
    with pytest.raises(TypeError, match="text mode"):
        list(gpt2.encode_iterable([b"bytes from a binary file\n"]))


def test_overlapping_special_tokens_and_lone_surrogates_match_encode(block):
    # one is a prefix of another: the longer must win across cuts
    specials = ["<|a|>", "<|a|>x", "<|b|>"]
    tok = Tokenizer.train(TINY, 300, special_tokens=specials)
    rng = random.Random(5)
    choices = ["<|a|>", "<|a|>x", "x", "<|b", "|>", " ab", "\ud800", "\n "]
    text = "".join(rng.choice(choices) for _ in range(2000))
    for seed in range(3):
        pieces = random_pieces(text, random.Random(seed), max_len=4)
        streamed = list(tok.encode_iterable(pieces, allowed_special="all"))
        assert streamed == tok.encode(text, allowed_special="all")
        streamed = list(tok.encode_iterable(pieces, allowed_special={"<|b|>"},
                                            disallowed_special=()))
        assert streamed == tok.encode(text, allowed_special={"<|b|>"}, disallowed_special=())


def test_another_pattern_cl100k_streams_exactly(block):
    tok = Tokenizer.train(load_corpus("shakespeare").text[:200_000], 600, [SPECIAL], CL100K_PATTERN)
    rng = random.Random(6)
    words = [" the", "cat", "  ", "\n", "\r\n", "\n\n  ", "   \n ", "it's", "IT'LL", "12345",
             " 2024", "!!\n", "日本", " 🚀", "\t"]
    text = "".join(rng.choice(words) for _ in range(20_000))
    pieces = random_pieces(text, rng, max_len=40) + text.splitlines(keepends=True)
    assert list(tok.encode_iterable(pieces)) == tok.to_tiktoken().encode(text + text)


SHAKESPEARE_LINES = load_corpus("shakespeare").text[:100_000].splitlines(keepends=True)


def cycled_lines(n_bytes: int) -> Iterator[str]:
    """About `n_bytes` of Shakespeare, one line at a time, never held whole: the same 100 KB over
    and over."""
    total = 0
    for line in itertools.cycle(SHAKESPEARE_LINES):
        if total >= n_bytes:
            return
        total += len(line)
        yield line


def peak_bytes(encode, n_bytes: int) -> int:
    """Peak Python memory of `encode(lines)` on `n_bytes` of lines, each id counted and dropped."""
    tracemalloc.start()
    try:
        n_ids = sum(1 for _ in encode(cycled_lines(n_bytes)))
        assert n_ids > n_bytes / 8
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_memory_stays_flat_as_the_input_grows(gpt2):
    """Peak Python memory while streaming 0.3 MB and 1.2 MB. Only the tokenizer's cache of distinct
    pre-tokens may grow (it is bounded); the text cycles, so both runs fill it alike. The same
    measure of `encode` on the joined text grows with the input, which shows it would catch a stream
    that held the text or the ids."""
    peaks = {}
    for n_bytes in (300_000, 1_200_000):
        tok = Tokenizer(gpt2.ranks, gpt2.special_tokens)  # an empty cache each time
        peaks["stream", n_bytes] = peak_bytes(tok.encode_iterable, n_bytes)
        tok = Tokenizer(gpt2.ranks, gpt2.special_tokens)
        peaks["whole", n_bytes] = peak_bytes(lambda lines, tok=tok: tok.encode("".join(lines)),
                                             n_bytes)
    small, large = peaks["stream", 300_000], peaks["stream", 1_200_000]
    assert large < 1.1 * small + 50_000, peaks
    assert peaks["whole", 1_200_000] > 2 * peaks["whole", 300_000] > 10 * large, peaks
