"""Metrics on hand-made cases."""

import math

import pytest

from tuner.config import Recipe
from tuner.evaluation import classification_scores, overfitting_warning, perplexity, underfitting_warning


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


def recipe(**fields) -> Recipe:
    return Recipe(name="a", dataset="d.jsonl", learning_rate=2e-5, num_train_epochs=1, **fields)


def test_a_run_that_learned_nothing_is_told_what_to_change():
    taught = {"rate": 0.0, "f1": 0.18, "base_rate": 0.0, "base_f1": 0.17, "prompts": 3}
    warning = underfitting_warning([], {"metrics": {}, "behaviour": {"taught": taught}}, recipe())
    assert warning.startswith("possible underfitting: on 3 held-out prompts the answers are no closer")
    assert "raise num_train_epochs (now 1) or learning_rate (now 2e-05)" in warning
    assert "replay_rows" not in warning
    replayed = recipe(replay_prompts="builtin", replay_rows=22)
    warning = underfitting_warning([], {"metrics": {}, "behaviour": {"taught": taught}}, replayed)
    assert warning.endswith("for a style meant for every answer, set replay_rows: 0 (its 22 replay rows teach the "
                            "base model's own answers back)")  # fmt: skip
    assert "pairs are ranked right" in underfitting_warning([], {"metrics": {"preference_accuracy": 0.5}}, recipe())
    assert "reward did not rise" in underfitting_warning(
        [], {"metrics": {"reward_before": 0.2, "reward_after": 0.1}}, recipe()
    )
    flat = [{"step": 1, "loss": 2.0}, {"step": 9, "loss": 1.95}]
    assert "training loss barely fell (2.000 -> 1.950)" in underfitting_warning(flat, {"metrics": {}}, recipe())


def test_a_run_that_learned_gets_no_underfitting_warning():
    taught = {"rate": 1.0, "f1": 0.9, "base_rate": 0.0, "base_f1": 0.17, "prompts": 3}
    falling = [{"step": 1, "loss": 2.0}, {"step": 9, "loss": 0.3}]
    findings = {"metrics": {"preference_accuracy": 1.0}, "behaviour": {"taught": taught}}
    assert underfitting_warning(falling, findings, recipe()) is None
