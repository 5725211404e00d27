"""Metrics on hand-made cases."""

import math

import pytest

from tuner.evaluation import classification_scores, overfitting_warning, perplexity


def test_classification_scores_by_hand():
    gold = ["pos", "pos", "neg", "neg", "neg"]
    predicted = ["pos", "neg", "neg", "neg", "pos"]
    scores = classification_scores(gold, predicted, ["neg", "pos"])
    # pos: tp 1, fp 1, fn 1 -> p = r = 0.5; neg: tp 2, fp 1, fn 1 -> p = r = 2/3
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["precision"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores["recall"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores["f1"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_a_label_never_predicted_scores_zero_not_an_error():
    scores = classification_scores(["a", "b"], ["a", "a"], ["a", "b"])
    assert scores["accuracy"] == 0.5 and scores["recall"] == pytest.approx(0.5)


def test_perplexity_is_exp_of_loss():
    assert perplexity(math.log(7.0)) == pytest.approx(7.0)


def steps(losses):
    return [{"step": i + 1, "loss": loss} for i, loss in enumerate(losses)]


def test_overfitting_is_flagged_when_eval_rises_while_train_falls():
    warning = overfitting_warning(steps([2.0, 1.5, 1.0, 0.5]), [{"step": 2, "loss": 1.2}, {"step": 4, "loss": 1.6}])
    assert warning and "eval loss rose from 1.200 (step 2) to 1.600 (step 4)" in warning


@pytest.mark.parametrize(
    "train, evals",
    [
        (steps([2.0, 1.5, 1.0, 0.5]), [{"step": 2, "loss": 1.2}, {"step": 4, "loss": 1.0}]),  # both fall
        (steps([2.0, 1.5, 1.8, 2.0]), [{"step": 2, "loss": 1.2}, {"step": 4, "loss": 1.6}]),  # both rise
        (steps([2.0, 1.0]), [{"step": 2, "loss": 1.0}]),  # one evaluation
    ],
)
def test_no_overfitting_warning_otherwise(train, evals):
    assert overfitting_warning(train, evals) is None
