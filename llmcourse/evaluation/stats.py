"""Confidence intervals for the numbers an evaluation reports.

An accuracy measured on n items is a binomial proportion: with 280 questions, 30 % could well be
25 % or 36 %. The Wilson interval stays inside [0, 1] and behaves at 0 and n, where the textbook
p +- 1.96 sqrt(p(1-p)/n) collapses to a width of zero.

>>> low, high = wilson_interval(84, 280)
>>> f"{84 / 280:.3f} in [{low:.3f}, {high:.3f}]"
'0.300 in [0.249, 0.356]'
>>> wilson_interval(0, 20)[1] > 0  # no successes seen, yet not proof of a rate of zero
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95 % interval


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion of `successes` in `n` trials."""
    if n < 1:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float],
                   z: float = Z95) -> tuple[float, float, float]:
    """(ratio, low, high) for sum(numerators) / sum(denominators) over independent documents,
    e.g. nats over bytes for bits per byte: the delta method's standard error of a ratio
    estimator, sqrt(sum((a_i - R b_i)^2) / (k (k - 1))) / mean(b).

    >>> value, low, high = ratio_interval([10, 12, 9, 11], [5, 6, 5, 5])
    >>> f"{value:.3f} [{low:.3f}, {high:.3f}]"
    '2.000 [1.848, 2.152]'
    """
    k = len(numerators)
    if k < 2 or len(denominators) != k:
        raise ValueError(f"need two or more (numerator, denominator) pairs, got {k} and "
                         f"{len(denominators)}")
    total = sum(denominators)
    if total <= 0:
        raise ValueError("the denominators must sum to a positive number")
    ratio = sum(numerators) / total
    squares = sum((a - ratio * b) ** 2 for a, b in zip(numerators, denominators, strict=True))
    spread = squares / (k * (k - 1))
    error = math.sqrt(spread) / (total / k)
    return ratio, ratio - z * error, ratio + z * error
