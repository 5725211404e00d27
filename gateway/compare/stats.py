"""Statistics for comparing arms on the same questions, by scipy: bootstrap confidence intervals and a paired test.

:func:`mean_ci` is the mean of per-question scores with a percentile bootstrap interval
(:func:`scipy.stats.bootstrap`, ``method="percentile"``: questions resampled with replacement
:data:`RESAMPLES` times). :func:`paired_test` compares two arms on the questions both answered: the
mean per-question difference, its paired bootstrap interval (the same bootstrap on the differences,
i.e. questions resampled as pairs), and the p-value of a two-sided paired permutation test
(:func:`scipy.stats.permutation_test`, ``permutation_type="samples"``, statistic the mean difference):
under the null hypothesis that the arms are exchangeable, the two answers to a question may swap
arms, i.e. each difference is as likely positive as negative. Questions where both arms scored the
same are left out of the test (swapping them changes nothing, so the p-value is the same without
them). With at most :data:`EXACT_LIMIT` such questions every one of the ``2**n`` swap patterns is
enumerated (an exact test, ``p`` = the share of patterns as extreme as the observed one); beyond
that :data:`PERMUTATIONS` random patterns are drawn and each one-sided ``p`` is
``(1 + hits) / (1 + draws)``. Two-sided is scipy's: twice the smaller one-sided ``p``, at most 1 (for
this symmetric null, exactly the share of patterns whose mean is at least as far from 0 when the
test is exact; at least ``2 / (1 + draws)`` when it is not). A null value within 100 machine epsilons
(relative) of the observed one counts as equal. Degenerate cases scipy refuses are answered here:
one score, or all scores equal, has the interval [mean, mean]; fewer than two differing questions
give ``p = 1`` (exact). Everything is seeded, so a report is reproducible. Missing scores are NaN and
left out. This module knows nothing about arms, metrics or models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000  # bootstrap resamples
PERMUTATIONS = 20000  # random swap patterns when the exact test is too large
EXACT_LIMIT = 16  # 2**16 swap patterns at most for the exact test
BATCH = 1000  # resamples computed at once, to bound memory for large question sets
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
    p_value: float | None  # two-sided paired permutation test; None without common questions
    exact: bool  # every swap pattern enumerated (else a seeded Monte Carlo estimate)

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
    mean = float(values.mean())
    if np.ptp(values) == 0:  # one score, or all equal: every resample has this mean (scipy refuses one score)
        return Estimate(mean, mean, mean, int(values.size))
    interval = stats.bootstrap(
        (values,), np.mean, n_resamples=resamples, batch=BATCH, vectorized=True,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    return Estimate(mean, float(interval.low), float(interval.high), int(values.size))


def paired_test(a, b, seed: int = 0, permutations: int = PERMUTATIONS) -> PairedResult:
    """Compare per-question scores ``a`` and ``b`` (same question order); pairs with a NaN are left out."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same questions: {a.shape} vs {b.shape}")
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    estimate = mean_ci(a - b, seed)
    if a.size == 0:
        return PairedResult(estimate, None, True)
    p_value, exact = permutation_p(a, b, seed, permutations)
    return PairedResult(estimate, p_value, exact)


def _mean_difference(x, y, axis=-1):
    return np.mean(x - y, axis=axis)


def permutation_p(a: np.ndarray, b: np.ndarray, seed: int = 0, permutations: int = PERMUTATIONS) -> tuple[float, bool]:
    """Two-sided p-value of the mean of ``a - b`` when each pair may swap, and whether it is exact."""
    differ = a != b  # tied pairs look the same swapped or not: they leave the p-value as it is
    a, b = a[differ], b[differ]
    if a.size < 2:  # nothing to test, or one difference: both of its 2 patterns are as extreme (scipy needs 2)
        return 1.0, True
    exact = a.size <= EXACT_LIMIT
    result = stats.permutation_test(
        (a, b), _mean_difference, permutation_type="samples", vectorized=True, alternative="two-sided",
        n_resamples=2**a.size if exact else permutations, batch=BATCH, rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.pvalue), exact
