"""Quality filtering: heuristic rules in the style of DeepMind's Gopher (Rae et al., 2021), and a
small learned classifier (logistic regression on hashed word and word-pair features, in torch).

>>> failed_rules("buy cheap buy cheap buy cheap " * 30)
['stop words']
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

_WORD = re.compile(r"\S+")
_STOP_WORDS = {"the", "be", "to", "of", "and", "that", "have", "with"}


@dataclass(frozen=True)
class Rule:
    name: str
    keeps: Callable[[str, list[str]], bool]  # (text, words) -> True if the document passes
    why: str


def _per_word(count: float, words: list[str]) -> float:
    return count / max(len(words), 1)


def _share(text: str, predicate: Callable[[str], bool]) -> float:
    """The share of non-blank lines of `text` for which `predicate` holds."""
    lines = [line for line in text.splitlines() if line.strip()]
    return sum(map(predicate, lines)) / len(lines) if lines else 0.0


def _bullet(line: str) -> bool:
    return line.lstrip().startswith(("•", "-", "*"))


def _trails_off(line: str) -> bool:
    return line.rstrip().endswith(("...", "…"))


def _symbols(text: str) -> int:
    return text.count("#") + text.count("...") + text.count("…")


def _with_letters(words: list[str]) -> int:
    return sum(any(c.isalpha() for c in word) for word in words)


RULES = [
    Rule("word count", lambda t, w: 50 <= len(w) <= 100_000, "between 50 and 100,000 words"),
    Rule("mean word length", lambda t, w: 3 <= _per_word(sum(map(len, w)), w) <= 10,
         "words of 3 to 10 characters on average"),
    Rule("symbols", lambda t, w: _per_word(_symbols(t), w) < 0.1,
         "fewer than 1 hash or ellipsis per 10 words"),
    Rule("bullet lines", lambda t, w: _share(t, _bullet) <= 0.9,
         "at most 90 % of lines start with a bullet"),
    Rule("ellipsis lines", lambda t, w: _share(t, _trails_off) <= 0.3,
         "at most 30 % of lines end with an ellipsis"),
    Rule("alphabetic words", lambda t, w: _per_word(_with_letters(w), w) >= 0.8,
         "at least 80 % of words contain a letter"),
    Rule("stop words", lambda t, w: len(_STOP_WORDS & {x.lower().strip(".,;:!?") for x in w}) >= 2,
         "at least 2 of: the, be, to, of, and, that, have, with"),
]


def failed_rules(text: str) -> list[str]:
    """Names of the rules `text` fails (empty: keep it)."""
    words = _WORD.findall(text)
    return [rule.name for rule in RULES if not rule.keeps(text, words)]


def hashed_features(texts: Sequence[str], n_buckets: int = 1 << 14) -> torch.Tensor:
    """(len(texts), n_buckets) bag of hashed lowercase words and word pairs, L2-normalised per
    row."""
    out = torch.zeros(len(texts), n_buckets)
    for row, text in enumerate(texts):
        words = [w.lower() for w in _WORD.findall(text)]
        for feature in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
            out[row, zlib.crc32(feature.encode()) % n_buckets] += 1.0
    return torch.nn.functional.normalize(out, dim=1)


class QualityClassifier(torch.nn.Module):
    """P(high quality | text) = sigmoid(w . features + b), trained on examples of both kinds."""

    def __init__(self, n_buckets: int = 1 << 14) -> None:
        super().__init__()
        self.n_buckets = n_buckets
        self.linear = torch.nn.Linear(n_buckets, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).squeeze(-1)  # (N,) logits

    def fit(self, good: Sequence[str], bad: Sequence[str], epochs: int = 200, lr: float = 0.5,
            seed: int = 0) -> QualityClassifier:
        if not good or not bad:
            raise ValueError("the classifier needs examples of both high- and low-quality text")
        torch.manual_seed(seed)
        x = hashed_features(list(good) + list(bad), self.n_buckets)
        y = torch.cat([torch.ones(len(good)), torch.zeros(len(bad))])
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=1e-3)
        for _ in range(epochs):  # full-batch: a few hundred short documents
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(self(x), y).backward()
            opt.step()
        return self

    @torch.no_grad()
    def score(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.sigmoid(self(hashed_features(texts, self.n_buckets)))


JUNK_KINDS = ("spam", "menu", "markup", "teaser", "numbers")


def synthetic_low_quality(n: int, seed: int = 0, kinds: Sequence[str] = JUNK_KINDS) -> list[str]:
    """`n` documents of the kinds of junk a web crawl is full of, taking `kinds` in turn: keyword
    spam, navigation menus, markup and symbol soup, teaser lines that trail off, tables of numbers.
    Synthetic stand-ins (no real crawl ships offline), made deterministically from `seed`.

    >>> [doc.splitlines()[0][:24] for doc in synthetic_low_quality(2, kinds=["teaser", "numbers"])]
    ["You won't believe what C", '997841 | 407269 | 930969']
    """
    unknown = [k for k in kinds if k not in JUNK_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {JUNK_KINDS}, got {list(kinds)}")
    g = torch.Generator().manual_seed(seed)

    def pick(options: Sequence[str], k: int) -> list[str]:
        return [options[int(i)] for i in torch.randint(0, len(options), (k,), generator=g)]

    spam = ["buy", "cheap", "best", "deal", "free", "shipping", "discount", "online", "top", "sale",
            "click", "now"]
    menu = ["Home", "About us", "Contact", "Login", "Sign up", "Products", "Blog", "FAQ", "Privacy",
            "Terms", "Cart"]
    make = {
        "spam": lambda: " ".join(pick(spam, 120)),
        "menu": lambda: "\n".join(f"• {item}" for item in pick(menu, 60)),
        "markup": lambda: " ".join(f"<div class='{c}'>#{c}</div> {{}} ## ..."
                                   for c in pick(menu, 40)),
        "teaser": lambda: "\n".join(f"You won't believe what {w} did next..."
                                     for w in pick(menu, 25)),
        "numbers": lambda: "\n".join(" | ".join(str(int(x)) for x in torch.randint(
            0, 10**6, (6,), generator=g)) for _ in range(30)),
    }
    return [make[kinds[i % len(kinds)]]() for i in range(n)]
