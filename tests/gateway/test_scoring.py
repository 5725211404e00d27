"""Scoring, statistics and the judge's verdict parsing, on hand-made cases with known values."""

from __future__ import annotations

import asyncio
import json
import math
import warnings
from itertools import product

import httpx
import numpy as np
import pytest
from openai import AsyncOpenAI

from gateway.compare.judge import Judge, parse_verdict
from gateway.compare.scoring import answer_in_sources, exact_match, normalize, rouge_l, score, token_f1
from gateway.compare.stats import EXACT_LIMIT, PERMUTATIONS, RESAMPLES, Estimate, mean_ci, paired_test


def test_normalize_follows_squad():
    assert normalize("The  Cat's hat!") == "cats hat"
    assert normalize("An apple, a pear & THE plum.") == "apple pear plum"
    assert normalize("“Quoted” — dash…") == "quoted dash"


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match("The Paris.", "paris") == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0


def test_citation_markers_do_not_count_against_an_answer():
    assert exact_match("February 16, 2002 [1]", "February 16, 2002.") == 1.0
    assert exact_match("Tartu [1, 3].", "Tartu") == 1.0
    assert exact_match("Room [B]", "Room") == 0.0  # only numbered markers are citations


def test_token_f1_known_values():
    # after normalisation: [cat, sat, on, mat] vs [cat, is, on, mat]: 3 shared of 4 and 4
    assert token_f1("the cat sat on the mat", "the cat is on a mat") == pytest.approx(0.75)
    assert token_f1("Paris", "Paris") == 1.0
    assert token_f1("London", "Paris") == 0.0
    # a repeated token counts as often as both sides have it: [x, x, y] and [x, y, y] share one x and one y
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("", "Paris") == 0.0 and token_f1("the", "Paris") == 0.0


def test_rouge_l_known_values():
    # Lin (2004): [police, killed, gunman] vs [police, kill, gunman]: LCS 2 of 3 and 3
    assert rouge_l("police killed the gunman", "police kill the gunman") == pytest.approx(2 / 3)
    # order matters for ROUGE-L but not for token F1: LCS of w x y z / w y x z is 3
    assert rouge_l("w x y z", "w y x z") == pytest.approx(0.75)
    assert token_f1("w x y z", "w y x z") == 1.0
    # precision 2/4, recall 2/2
    assert rouge_l("born in paris france", "paris france") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert rouge_l("", "x") == 0.0 and rouge_l("", "") == 1.0


def test_score_has_every_metric():
    assert score("The answer is Paris", "Paris") == {
        "exact_match": 0.0,
        "f1": pytest.approx(2 * (1 / 3) / (1 / 3 + 1)),
        "rouge_l": pytest.approx(0.5),
    }


def test_answer_in_sources_matches_whole_normalised_tokens():
    assert answer_in_sources("Paris", ["Rome is in Italy.", "The capital is PARIS."]) == 1.0
    assert answer_in_sources("February 16, 2002.", ["born 16 February 2002"]) == 0.0
    assert answer_in_sources("16 February 2002", ["(born 16 February, 2002) is"]) == 1.0
    assert answer_in_sources("Par", ["Paris"]) == 0.0
    assert answer_in_sources("Paris", []) == 0.0
    assert answer_in_sources("The", ["the"]) is None


def test_bootstrap_interval_contains_the_mean_and_is_reproducible():
    scores = [1.0] * 30 + [0.0] * 70
    estimate = mean_ci(scores, seed=3)
    assert estimate.mean == pytest.approx(0.3) and estimate.n == 100
    assert estimate.low < 0.3 < estimate.high
    assert 0.15 < estimate.low and estimate.high < 0.45  # about 0.3 +- 1.96 * 0.046
    assert mean_ci(scores, seed=3) == estimate


def test_bootstrap_leaves_out_missing_scores():
    estimate = mean_ci([1.0, math.nan, 0.0, 1.0])
    assert estimate.n == 3 and estimate.mean == pytest.approx(2 / 3)
    assert mean_ci([math.nan]).mean is None


def test_paired_test_exact_p_values():
    # 8 questions all better by one: only the two all-same-sign patterns are as extreme: 2 / 2**8
    result = paired_test([1.0] * 8, [0.0] * 8)
    assert result.exact and result.p_value == pytest.approx(2 / 256) and result.significant
    assert result.difference.mean == 1.0
    # 5 is too few for significance at 0.05 however large the difference: 2 / 32
    assert paired_test([1.0] * 5, [0.0] * 5).p_value == pytest.approx(0.0625)
    # ties are uninformative; no difference at all is p = 1
    assert paired_test([0.5] * 10, [0.5] * 10).p_value == 1.0
    assert not paired_test([1, 0, 1, 0], [0, 1, 0, 1]).significant


def test_paired_test_finds_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 60)
    better = np.clip(base + 0.15 + rng.normal(0, 0.1, 60), 0, 1)
    real = paired_test(better, base)
    assert not real.exact and real.p_value < 0.001 and real.significant
    assert real.difference.low > 0
    same = rng.uniform(0, 1, 60)
    noise = paired_test(same, rng.permutation(same))
    assert noise.p_value > 0.05 and not noise.significant
    assert noise.difference.low < 0 < noise.difference.high


def test_paired_test_uses_only_questions_both_arms_answered():
    result = paired_test([1.0, math.nan, 1.0], [0.0, 0.0, math.nan])
    assert result.difference.n == 1
    assert paired_test([math.nan], [1.0]).p_value is None


def test_paired_test_p_value_is_the_share_of_enumerated_sign_flips_as_extreme():
    """scipy's exact paired permutation p against every sign pattern of the differences, enumerated here."""
    a = np.array([0.9, 0.5, 1.0, 0.3, 0.8, 0.7, 0.6, math.nan, 0.4])
    b = np.array([0.2, 0.5, 0.1, 0.4, 0.3, 0.6, 0.0, 0.5, 0.1])  # one tie, one NaN: 7 informative questions
    known = ~np.isnan(a)
    differences = (a - b)[known & (a != b)]
    observed = abs(differences.sum())
    sums = np.array([abs(np.dot(signs, differences)) for signs in product((1, -1), repeat=differences.size)])
    expected = np.mean(sums >= observed - 1e-12)
    result = paired_test(a, b)
    # differences 0.7, 0.9, -0.1, 0.5, 0.1, 0.6, 0.3 (sum 3.0): as far from 0 are all signs as observed, -0.1 flipped
    # (3.2), -0.1 and 0.1 both flipped (3.0, a tie up to rounding), and the three mirror images: 6 of 2**7
    assert result.exact and result.p_value == pytest.approx(expected) and expected == pytest.approx(6 / 128)
    assert result.difference.n == 8 and result.difference.mean == pytest.approx(np.mean((a - b)[known]))
    # the tie does not change the p-value: swapping a tied pair changes nothing
    assert paired_test(a[known & (a != b)], b[known & (a != b)]).p_value == pytest.approx(expected)
    # two-sided: the mirror-image comparison has the same p
    assert paired_test(b, a).p_value == pytest.approx(expected)


def test_paired_test_monte_carlo_floor_and_degenerate_cases():
    # 20 questions all better: exact would be 2 / 2**20, but beyond EXACT_LIMIT it is a seeded Monte Carlo
    # estimate, and scipy's two-sided p (twice the smaller one-sided (1 + hits) / (1 + draws)) is at least 2/(1 + draws)
    result = paired_test([1.0] * 20, [0.0] * 20, seed=7)
    assert not result.exact and result.p_value == pytest.approx(2 / (1 + PERMUTATIONS))
    assert paired_test([1.0] * EXACT_LIMIT, [0.0] * EXACT_LIMIT).exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy warning or error reaches the user
        one = paired_test([1.0, 0.5], [0.0, 0.5])  # one differing question: both sign patterns as extreme
        assert one.exact and one.p_value == 1.0 and one.difference.mean == 0.5
        assert paired_test([0.3, 0.3], [0.3, 0.3]).p_value == 1.0
        assert mean_ci([0.4]) == Estimate(0.4, 0.4, 0.4, 1)  # scipy refuses a single value
        same = mean_ci([0.4, 0.4, 0.4])  # a degenerate bootstrap distribution: the interval is the mean itself
        assert same.low == same.mean == same.high == pytest.approx(0.4) and same.n == 3


def test_bootstrap_interval_is_the_percentile_interval_of_seeded_resample_means():
    """scipy's percentile bootstrap against the same resamples drawn here (scipy draws indices as integers(0, n))."""
    scores = np.array([0.1, 0.9, 0.4, 1.0, 0.0, 0.75, 0.3, 0.6])
    rng = np.random.default_rng(11)
    means = scores[rng.integers(0, scores.size, size=(RESAMPLES, scores.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    estimate = mean_ci(scores, seed=11)
    assert (estimate.low, estimate.high) == (pytest.approx(low), pytest.approx(high))
    assert estimate.mean == pytest.approx(scores.mean()) and mean_ci(scores, seed=11) == estimate


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("1", 1.0), ("0", 0.0), (" 1.\n", 1.0), ("**0**", 0.0), ("Verdict: 1", 1.0), ("Correct.", 1.0),
        ("incorrect", 0.0), ("Yes", 1.0), ("No, it is wrong", 0.0),
        ("The answer is correct", None), ("10", None), ("", None), ("I think 1", None),
    ],
)  # fmt: skip
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


def _judge_endpoint(reply: str | None, seen: list[dict]) -> AsyncOpenAI:
    """An OpenAI client whose chat endpoint answers ``reply`` (or 500 if None) and records each request."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        if reply is None:
            return httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}})
        message = {"role": "assistant", "content": reply}
        body = {"id": "x", "object": "chat.completion", "created": 0, "model": "judge",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip
        return httpx.Response(200, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return AsyncOpenAI(base_url="http://judge/v1", api_key="k", http_client=http, max_retries=0)


def test_judge_asks_strictly_and_records_the_raw_reply():
    seen: list[dict] = []
    verdict = asyncio.run(Judge(_judge_endpoint("1 - correct", seen), "judge-model").verdict("Q?", "Paris", "paris!"))
    assert verdict.score == 1.0 and verdict.raw == "1 - correct"
    request = seen[0]
    assert request["model"] == "judge-model" and request["temperature"] == 0
    prompt = request["messages"][0]["content"]
    assert "Question: Q?" in prompt and "Reference answer: Paris" in prompt and "Answer to grade: paris!" in prompt
    assert "exactly one character" in prompt


def test_judge_failure_is_no_verdict():
    verdict = asyncio.run(Judge(_judge_endpoint(None, []), "judge-model").verdict("Q?", "Paris", "Paris"))
    assert verdict.score is None and verdict.raw.startswith("error: InternalServerError")
    unparsed = asyncio.run(Judge(_judge_endpoint("maybe", []), "judge-model").verdict("Q?", "Paris", "Paris"))
    assert unparsed.score is None and unparsed.raw == "maybe"


def test_p_values_too_small_for_four_decimals_are_written_as_a_bound():
    from gateway.compare.report_tables import p_text

    assert [p_text(p) for p in (None, 1.0, 0.0625, 2 / 2**16, 2 / 20001)] == [
        "-",
        "1.0000",
        "0.0625",
        "<0.0001",
        "<0.0001",
    ]
    assert p_text(0.002, named=True) == "p = 0.0020" and p_text(2 / 20001, named=True) == "p < 0.0001"
