"""BPE against independent references: tiktoken (OpenAI's Rust implementation) for encoding, and a
naive trainer that recounts every pair after every merge for training."""
import inspect
import json
import random
import re
from collections import Counter

import pytest

from llmcourse.data.corpus import load_corpus
from llmcourse.tokenizer import (
    Tokenizer,
    TokenizerFileError,
    load_tokenizer,
    save_tokenizer,
    split,
    train_bpe,
)

TINY = load_corpus("tiny").text
SPECIAL = "<|endoftext|>"


def varied_text(min_bytes: int = 1_000_000) -> str:
    """Prose, Python source, whitespace runs, numbers, contractions, CJK, emoji and random
    Unicode."""
    rng = random.Random(0)
    import collections
    import email
    import json as json_module
    import typing
    modules = (collections, typing, json_module.decoder, email.message)
    code = "".join(inspect.getsource(m) for m in modules)
    parts = [load_corpus("shakespeare").text[:600_000], code[:250_000]]
    parts += ["\t\t  \n\n\n   x  \r\n" * 50,
              " ".join(str(rng.randint(0, 10**12)) for _ in range(3000)),
              "I'm you're he'll they've we'd it's DON'T I'M " * 200,
              ("机器学习是人工智能的一个分支。東京は日本の首都です。"
               "한국어 텍스트도 있습니다. ") * 300,
              "🚀🔥 emoji 👩‍👩‍👧‍👦 family 🇯🇵 flags ✨🎉 " * 300]
    ranges = [(0x20, 0x7E), (0xA0, 0x2FFF), (0x1F300, 0x1FAFF)]
    while sum(len(p.encode()) for p in parts) < min_bytes:
        codes = (rng.choice([rng.randint(lo, hi) for lo, hi in ranges]) for _ in range(2000))
        parts.append("".join(chr(c) for c in codes))
    return "\n".join(parts)


def test_gpt2_hello_world(gpt2):
    assert gpt2.encode("Hello, world!") == [15496, 11, 995, 0]


def test_gpt2_parity_with_tiktoken_on_a_megabyte_of_varied_text(gpt2, gpt2_tiktoken):
    text = varied_text()
    assert len(text.encode()) >= 1_000_000
    assert gpt2.encode(text) == gpt2_tiktoken.encode(text)


@pytest.mark.parametrize("text", [
    "", " ", "hello world", "   leading", "trailing   ", "a\n\n\nb", "  \t\n x",
    "12345678901234567890", "it's I'd we'll you've THEY'RE", "Ünïcödé façade", "日本語のテキスト",
    "🤖🦜", "x" * 500, "def f(x):\n    return x ** 2\n"])
def test_gpt2_parity_cases(gpt2, gpt2_tiktoken, text):
    assert gpt2.encode(text) == gpt2_tiktoken.encode(text)
    assert gpt2.decode(gpt2.encode(text)) == text


def test_special_tokens_behave_as_in_tiktoken(gpt2, gpt2_tiktoken):
    text = f"end{SPECIAL}start"
    with pytest.raises(ValueError, match="special token"):
        gpt2.encode(text)
    with pytest.raises(ValueError):
        gpt2_tiktoken.encode(text)
    ours = gpt2.encode(text, allowed_special={SPECIAL})
    assert ours == gpt2_tiktoken.encode(text, allowed_special={SPECIAL})
    assert 50256 in gpt2.encode(text, allowed_special="all")
    ours = gpt2.encode(text, disallowed_special=())
    assert ours == gpt2_tiktoken.encode(text, disallowed_special=())


def test_arbitrary_bytes_round_trip_exactly(gpt2):
    rng = random.Random(1)
    for _ in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        assert gpt2.decode_bytes(gpt2.encode_bytes(data)) == data
    broken = b"ok" + b"\xff\xfe" + "é".encode()[:1]
    # with the default errors="replace"
    assert gpt2.decode(gpt2.encode_bytes(broken)) == "ok\ufffd\ufffd\ufffd"


def test_any_python_string_round_trips(gpt2):
    rng = random.Random(2)
    for _ in range(50):
        text = "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(1, 100)))
        assert gpt2.decode(gpt2.encode(text, disallowed_special=()), errors="surrogatepass") == text


def naive_train(text: str, vocab_size: int,
                special_tokens: tuple[str, ...] = ()) -> dict[bytes, int]:
    """The textbook algorithm, independent of ours: cut at special tokens, pre-tokenize, recount all
    pairs after every merge; ties go to the greater pair of bytes, max((count, (left, right))), as
    in CS336's assignment."""
    pieces = re.split("|".join(map(re.escape, special_tokens)), text) if special_tokens else [text]
    chunks = Counter(chunk for piece in pieces for chunk in split(piece))
    words = {tuple(bytes([b]) for b in c.encode()): n for c, n in chunks.items()}
    ranks = {bytes([b]): b for b in range(256)}
    while len(ranks) < vocab_size - len(special_tokens):
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:], strict=False):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        ranks.setdefault(best[0] + best[1], len(ranks))
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return ranks


def learned(ranks: dict[bytes, int]) -> list[bytes]:
    return [token for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]) if rank >= 256]


@pytest.mark.parametrize("vocab_size", [256, 300, 420])
def test_incremental_training_equals_the_naive_algorithm(vocab_size):
    assert train_bpe(TINY, vocab_size) == naive_train(TINY, vocab_size)


def test_ties_go_to_the_pair_with_the_greater_bytes():
    """Worked by hand. "ab ba bb" pre-tokenizes to "ab", " ba", " bb".
    Merge 1: (" ", "b") is seen twice, every other pair once: " b" (id 256).
    Merge 2: ("a", "b"), (" b", "a") and (" b", "b") are seen once each. b"a" > b" b", so "ab" wins.
             (Were ties broken by the greater ids, (" b", "b") would win, since " b" has the id
             256.)
    Merge 3: (" b", "a") and (" b", "b") tie; b"b" > b"a", so " bb". (The smaller ids would give
             " ba".)"""
    assert learned(train_bpe("ab ba bb", 259)) == [b" b", b"ab", b" bb"]
    assert learned(Tokenizer.train("ab ba bb", 259).ranks) == [b" b", b"ab", b" bb"]


def test_special_tokens_bound_pre_tokenization_in_training():
    # 42 works, the start of each
    docs = [doc.text[:2000] for doc in load_corpus("shakespeare").documents]
    assert len(docs) >= 40 and not any(c in doc for doc in docs for c in "<|>")
    tok = Tokenizer.train(SPECIAL.join(docs), 500, special_tokens=[SPECIAL])
    # every learned token was seen inside a document: none is made of pieces of the special token
    unseen = [token for token in learned(tok.ranks)
              if not any(token in doc.encode() for doc in docs)]
    assert unseen == []
    assert learned(tok.ranks) == learned(naive_train(SPECIAL.join(docs), 500, (SPECIAL,)))
    ids = tok.encode(SPECIAL.join(docs), allowed_special="all")
    assert ids.count(tok.special_tokens[SPECIAL]) == len(docs) - 1


def test_trained_tokenizer_round_trips_and_its_tiktoken_fast_path_agrees():
    text = load_corpus("shakespeare").text[:300_000]
    tok = Tokenizer.train(text, 1000, special_tokens=[SPECIAL])
    assert tok.n_vocab == 1000 and tok.special_tokens == {SPECIAL: 999}
    sample = text[-50_000:] + " Ünïcödé 日本 🚀"
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample
    assert tok.to_tiktoken().encode(sample) == ids


def test_save_and_load_round_trip(tmp_path):
    tok = Tokenizer.train(TINY, 300, special_tokens=[SPECIAL], name="tiny-300")
    save_tokenizer(tok, tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    assert again.ranks == tok.ranks and again.special_tokens == tok.special_tokens
    assert again.name == "tiny-300"
    assert again.encode(TINY) == tok.encode(TINY)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(p.read_text()[:-40]), "not valid JSON"),
    (lambda p: p.write_text(p.read_text().replace('"AA=="', '"AQ=="', 1)), "checksum mismatch"),
    (lambda p: p.write_text(json.dumps({"format": "other"})), "not an llmcourse-bpe file"),
    (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "version": 99})),
     "version 99"),
    (lambda p: p.unlink(), "no such file"),
])
def test_corrupt_or_foreign_tokenizer_files_are_refused(tmp_path, damage, message):
    path = tmp_path / "tok.json"
    save_tokenizer(Tokenizer.train(TINY, 280), path)
    damage(path)
    with pytest.raises(TokenizerFileError, match=message):
        load_tokenizer(path)


@pytest.mark.parametrize("call, message", [
    (lambda: Tokenizer.train("", 300), "empty text"),
    (lambda: Tokenizer.train(TINY, 256, special_tokens=[SPECIAL]), "at least 257"),
    (lambda: Tokenizer.train(TINY, 260).decode([5000]), "not in the vocabulary"),
    (lambda: Tokenizer({b"a": 0}), "every single byte"),
    (lambda: Tokenizer.train(TINY, 260).encode("x", allowed_special={"<|nope|>"}),
     "not special tokens"),
    (lambda: Tokenizer.train(TINY, 300, special_tokens=[SPECIAL, SPECIAL]), "distinct, non-empty"),
    (lambda: Tokenizer.train(TINY, 300, special_tokens=[""]), "distinct, non-empty"),
])
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_special_tokens_given_as_one_string_are_refused():
    # iterating the string would make each of its characters a special token
    with pytest.raises(TypeError, match="not one string"):
        Tokenizer.train(TINY, 300, special_tokens=SPECIAL)


@pytest.mark.parametrize("vocab_size", [2048, 512])  # the course model's, and chapter 7's runs
def test_a_shipped_tokenizer_is_what_training_makes(vocab_size):
    """The package ships tokenizers already trained (it saves seconds on every pretraining run);
    training one again on the same documents must give the same file, and prepare_data must find
    it for today's split."""
    from llmcourse.data.cleaning import clean_split
    from llmcourse.tokenizer import END_OF_TEXT
    from llmcourse.training.data import SHIPPED, shipped_path, train_tokenizer

    train_docs, _ = clean_split(load_corpus("shakespeare"))
    texts = [d.text for d in train_docs]
    path = shipped_path("shakespeare", vocab_size, END_OF_TEXT.join(texts))
    assert path.exists(), (f"no shipped tokenizer for today's training text: run "
                           f"`python -m llmcourse.training.data shakespeare {vocab_size}`")
    shipped = load_tokenizer(path)
    trained = Tokenizer.train(END_OF_TEXT.join(texts), vocab_size, special_tokens=[END_OF_TEXT])
    assert shipped.ranks == trained.ranks and shipped.special_tokens == trained.special_tokens
    assert train_tokenizer("shakespeare", vocab_size, texts).ranks == trained.ranks
    # another text finds no file (and would train), and no stale file is shipped beside this one
    assert not shipped_path("shakespeare", vocab_size, END_OF_TEXT.join(texts[1:])).exists()
    assert list(SHIPPED.glob(f"shakespeare-{vocab_size}-*.json")) == [path]
