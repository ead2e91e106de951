"""Confidence intervals for accuracies and the paired test for two models answering the same items."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: unlike the normal interval it stays inside [0, 1] and
    behaves at 0 % and 100 % and for small n, which benchmark subsets often are."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at 0 % and 100 % the bounds are exactly 0 and 1 (the formula reaches them only up to rounding)
    return (0.0 if correct == 0 else centre - half), (1.0 if correct == n else centre + half)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: is "only A right" vs "only B right" more lopsided than chance?"""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
