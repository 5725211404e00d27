"""Statistics for comparing arms on the same questions: bootstrap confidence intervals and a paired test.

:func:`mean_ci` is the mean of per-question scores with a percentile bootstrap interval
(questions resampled with replacement). :func:`paired_test` compares two arms on the questions
both answered: the mean per-question difference, its paired bootstrap interval, and the p-value
of a two-sided sign-flip permutation test (under the null hypothesis that the arms are
exchangeable, each difference is as likely positive as negative). With at most
:data:`EXACT_LIMIT` non-zero differences every sign pattern is enumerated (an exact test);
beyond that :data:`PERMUTATIONS` random patterns are drawn and ``p = (1 + hits) / (1 + draws)``.
Everything is seeded, so a report is reproducible. Missing scores are NaN and left out.
Only numpy; this module knows nothing about arms, metrics or models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000  # bootstrap resamples
PERMUTATIONS = 20000  # random sign patterns when the exact test is too large
EXACT_LIMIT = 16  # 2**16 sign patterns at most for the exact test
ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap confidence interval; all None when there is no score."""

    mean: float | None
    low: float | None
    high: float | None
    n: int  # scores it is computed from

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedResult:
    """Arm a minus arm b on the questions both have a score for."""

    difference: Estimate  # mean of per-question (a - b), with a paired bootstrap interval
    p_value: float | None  # two-sided sign-flip permutation test; None without common questions
    exact: bool  # every sign pattern enumerated (else a seeded Monte Carlo estimate)

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    def as_dict(self) -> dict:
        return {
            "difference": self.difference.as_dict(),
            "p_value": self.p_value,
            "exact": self.exact,
            "significant": self.significant,
        }


def mean_ci(scores, seed: int = 0, resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> Estimate:
    """The mean of ``scores`` (NaN left out) and its percentile bootstrap interval."""
    values = np.asarray(scores, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Estimate(None, None, None, 0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(values.mean()), float(low), float(high), int(values.size))


def paired_test(a, b, seed: int = 0, permutations: int = PERMUTATIONS) -> PairedResult:
    """Compare per-question scores ``a`` and ``b`` (same question order); pairs with a NaN are left out."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same questions: {a.shape} vs {b.shape}")
    differences = (a - b)[~(np.isnan(a) | np.isnan(b))]
    estimate = mean_ci(differences, seed)
    if differences.size == 0:
        return PairedResult(estimate, None, True)
    p_value, exact = sign_flip_p(differences, seed, permutations)
    return PairedResult(estimate, p_value, exact)


def sign_flip_p(differences: np.ndarray, seed: int = 0, permutations: int = PERMUTATIONS) -> tuple[float, bool]:
    """Two-sided p-value of the mean difference under random sign flips, and whether it is exact."""
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return 1.0, True
    observed = abs(nonzero.sum()) * (1 - 1e-9)  # tolerance: sums equal up to rounding count as extreme
    if nonzero.size <= EXACT_LIMIT:
        signs = np.array(list(product((1.0, -1.0), repeat=nonzero.size)))
        return float(np.mean(np.abs(signs @ nonzero) >= observed)), True
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 1000):  # in blocks, to bound memory for large question sets
        signs = rng.choice((1.0, -1.0), size=(min(1000, permutations - start), nonzero.size))
        hits += int(np.sum(np.abs(signs @ nonzero) >= observed))
    return (1 + hits) / (1 + permutations), False
