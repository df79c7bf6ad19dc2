"""Chapter 10's exercises: bits per byte, choosing by log-likelihood, length normalisation, an
exact-overlap contamination check and a Wilson confidence interval. The references are the
package's own functions (llmcourse.foundations.loss, llmcourse.evaluation)."""

from __future__ import annotations

import random
from typing import Any

import torch

from llmcourse.evaluation.choice import choose
from llmcourse.evaluation.contamination import overlap
from llmcourse.evaluation.stats import wilson_interval
from llmcourse.foundations.loss import bits_per_byte
from llmcourse.grading.exercise import Exercise, close_number, close_to, register, same_sequence


def _bpb(logprobs: list[float], text: str) -> float:
    n = len(logprobs)
    return bits_per_byte(-sum(logprobs) / n, len(text.encode("utf-8")) / n)


def _logprobs(g: torch.Generator, n: int) -> list[float]:
    return [-float(x) for x in torch.rand(n, generator=g, dtype=torch.float64) * 8]


register(Exercise("10.1", "Bits per byte", "bits_per_byte_of", points=2,
    reference=_bpb, compare=close_to(rel=1e-9),
    cases=lambda g: [("12 tokens of ASCII", (_logprobs(g, 12), "To be, or not to be, that is")),
                     ("3 tokens, accented letters (2 bytes each)",
                      (_logprobs(g, 3), "café déjà")),
                     ("one token", ([-2.0], "a"))],
    hint="add up the negative log-probabilities (nats), turn nats into bits (divide by ln 2), "
         "then divide by the text's length in UTF-8 bytes: len(text.encode('utf-8')), not "
         "len(text).",
))


def _choices(g: torch.Generator, k: int) -> list[list[float]]:
    lengths = torch.randint(1, 7, (k,), generator=g)
    return [_logprobs(g, int(n)) for n in lengths]


def _same_choice(expected: int, got: Any) -> str | None:
    if got == expected and isinstance(got, int):
        return None
    return f"expected choice {expected}, got {got!r}"


register(Exercise("10.2", "Choosing by log-likelihood", "pick", points=2,
    reference=lambda choices: choose([sum(lps) for lps in choices]), compare=_same_choice,
    cases=lambda g: [("4 choices", (_choices(g, 4),)), ("2 choices", (_choices(g, 2),)),
                     ("a tie goes to the first", ([[-1.0, -1.0], [-2.0], [-0.5, -3.0]],)),
                     ("10 choices", (_choices(g, 10),))],
    hint="each choice's log-likelihood is the sum of its tokens' log-probabilities; return the "
         "index of the largest (the first, on a tie), as an int.",
))

_WORDS = ["thee", "thou", "my lord", "the king of France", "a horse", "no", "sweet Juliet"]


def _normalised_case(g: torch.Generator, k: int) -> tuple[list[list[float]], list[str]]:
    rng = random.Random(int(torch.randint(0, 10**6, (1,), generator=g)))
    choices = rng.sample(_WORDS, k)
    return [_logprobs(g, max(1, len(c) // 3)) for c in choices], choices


register(Exercise("10.3", "Length normalisation", "pick_normalised", points=2,
    reference=lambda logprobs, choices: choose([sum(lps) for lps in logprobs],
                                               [len(c) for c in choices]),
    compare=_same_choice,
    cases=lambda g: [("4 choices", _normalised_case(g, 4)), ("3 choices", _normalised_case(g, 3)),
                     ("the long choice wins per character",
                      ([[-3.0], [-2.0, -2.0, -2.0]], ["no", "the king of France"]))],
    hint="divide each choice's summed log-probability by the choice's length in characters "
         "(len(choice), as lm-eval's acc_norm does), then take the index of the largest.",
))


def _contamination_case(g: torch.Generator) -> tuple[list[str], list[str]]:
    rng = random.Random(int(torch.randint(0, 10**6, (1,), generator=g)))
    words = "king queen sword crown night day love death ghost storm".split()
    train = [f"Find the last word. {' '.join(rng.sample(words, 3))}" for _ in range(30)]
    test = [rng.choice(train) for _ in range(3)]
    test += [rng.choice(train).upper().replace(" ", "   ") for _ in range(2)]
    test += [f"Reply with the last word. {' '.join(rng.sample(words, 3))}" for _ in range(3)]
    rng.shuffle(test)
    return test, train


register(Exercise("10.4", "An exact contamination check", "contaminated", points=2,
    reference=lambda test, train: overlap(test, train).exact, compare=same_sequence,
    cases=lambda g: [("8 test items, 30 training texts", _contamination_case(g)),
                     ("another draw", _contamination_case(g)),
                     ("nothing overlaps", (["to be"], ["not to be"]))],
    hint="normalise each text (lowercase, and white space collapsed to single spaces: "
         "' '.join(text.lower().split())), put the training texts in a set, and return, in "
         "order, the indices of the test texts found in it.",
))


def _interval(expected: tuple[float, float], got: Any) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a tuple (low, high), got {got!r}"
    for name, e, v in zip(("low", "high"), expected, got, strict=True):
        problem = close_number(e, v, rel=1e-7)
        if problem:
            return f"{name}: {problem}"
    return None


register(Exercise("10.5", "A confidence interval", "wilson", points=3,
    reference=wilson_interval, compare=_interval,
    cases=lambda g: [("84 of 280", (84, 280)), ("none of 20", (0, 20)), ("all of 50", (50, 50)),
                     ("1 of 3", (1, 3)), ("190 of 200", (190, 200))],
    hint="with p = k / n and z = NormalDist().inv_cdf(0.975) = 1.95996... (Python's statistics "
         "module): centre = (p + z^2 / 2n) / (1 + z^2 / n) and half-width = "
         "z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2); return (centre - half, "
         "centre + half) as a tuple of two floats.",
))
