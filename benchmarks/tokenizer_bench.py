"""Part I benchmarks: BPE training against HF tokenizers (Rust), encoding against tiktoken (Rust).

Each measurement runs in a fresh process (so peak memory is its own) and prints one JSON line:
    python benchmarks/tokenizer_bench.py train-ours | train-hf | encode-python | encode-fast | encode-fast-own |
                                         encode-tiktoken
"""
from __future__ import annotations

import json
import resource
import sys
import time


def corpus_text() -> str:
    from llmcourse.data.corpus import load_corpus

    return load_corpus("shakespeare").text


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train_ours(text: str) -> dict:
    from llmcourse.tokenizer import Tokenizer

    start = time.perf_counter()
    tok = Tokenizer.train(text, 4096)
    return {"seconds": time.perf_counter() - start, "vocab": tok.n_vocab}


def train_hf(text: str) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    documents = text.split("\n\n")  # an iterator of many texts lets HF spread the counting over its threads
    start = time.perf_counter()
    tok.train_from_iterator(documents, trainer)
    return {"seconds": time.perf_counter() - start, "vocab": tok.get_vocab_size()}


def _trained(text: str):
    from llmcourse.tokenizer import Tokenizer

    return Tokenizer.train(text[:1_000_000], 4096)


def encode(text: str, which: str) -> dict:
    from llmcourse.tokenizer import load_gpt2

    if which == "encode-python":
        encode_fn = load_gpt2().encode_ordinary
    elif which == "encode-fast":  # our Tokenizer, holding GPT-2's ranks, handed to tiktoken's Rust encoder
        encode_fn = load_gpt2().to_tiktoken().encode_ordinary
    elif which == "encode-fast-own":  # our own 4096-token vocabulary through the same fast path
        encode_fn = _trained(text).to_tiktoken().encode_ordinary
    else:  # tiktoken with OpenAI's GPT-2 vocabulary, the reference
        import tiktoken

        from llmcourse.tokenizer import GPT2_PATTERN

        encode_fn = tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=load_gpt2().ranks,
                                      special_tokens={}).encode_ordinary
    start = time.perf_counter()
    n = len(encode_fn(text))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "mb_per_s": len(text.encode()) / seconds / 1e6, "tokens": n}


if __name__ == "__main__":
    which = sys.argv[1]
    text = corpus_text()
    result = train_ours(text) if which == "train-ours" else train_hf(text) if which == "train-hf" else encode(text, which)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
