"""linear-learner's candidate configurations and the choice of the winner (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.algorithms import parse_hyperparameters
from orchestrator.algorithms.selection import Candidate, candidates, criterion, objective, winner


def _hp(**raw: str):  # type: ignore[no-untyped-def]
    return parse_hyperparameters("linear-learner", {"predictor_type": "regressor", **raw})


def test_the_given_configuration_comes_first_then_distinct_neighbours() -> None:
    hp = _hp(learning_rate="0.02", l2="0.5", num_models="32")
    cands = candidates(hp)
    assert cands[0] == Candidate(0.02, 0.5)
    assert len(cands) == 32 == len(set(cands))
    first = candidates(_hp(learning_rate="0.02", l2="0.5"))  # auto: 8
    assert first == cands[:8]
    assert len({c.learning_rate for c in first}) >= 3 and len({c.l2 for c in first}) >= 3
    assert candidates(_hp(num_models="1", l2="0")) == [Candidate(0.05, 0.0)]


def test_objective_and_criterion_per_predictor_type() -> None:
    y = np.array([0.0, 1.0, 2.0])
    assert criterion(_hp()) == "mse"
    assert objective(_hp(), y, np.array([0.0, 1.0, 4.0])) == -4.0 / 3
    multi = parse_hyperparameters("linear-learner", {"predictor_type": "multiclass_classifier"})
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2]])
    assert (criterion(multi), objective(multi, y, probs)) == ("accuracy", 2 / 3)
    binary = parse_hyperparameters(
        "linear-learner",
        {"predictor_type": "binary_classifier", "binary_classifier_model_selection_criteria": "f1"},
    )
    yb = np.array([0, 0, 1, 1])
    assert criterion(binary) == "f1"
    assert objective(binary, yb, np.array([0.1, 0.2, 0.3, 0.9])) == 1.0  # threshold in 0.2..0.3


def test_winner_best_objective_then_lower_loss_then_first_and_nan_loses() -> None:
    assert winner([0.5, 0.9, 0.7], [1.0, 2.0, 0.1]) == 1
    assert winner([0.9, 0.9, 0.9], [0.3, 0.2, 0.2]) == 1
    assert winner([math.nan, 0.1], [0.0, 5.0]) == 1
    assert winner([0.5, 0.5], [math.nan, 1.0]) == 1


def test_clearly_better_needs_more_than_a_standard_error() -> None:
    from orchestrator.algorithms.selection import clearly_better

    given = np.array([1.0, 2.0, 1.5, 1.2, 0.8])
    assert clearly_better(given, given - 0.5)
    assert not clearly_better(given, given[::-1])  # same mean, noise
    assert not clearly_better(given, given + 0.1)
    assert clearly_better(np.array([math.inf, 1.0]), np.array([1.0, 1.0]))


def test_auto_l2_is_scikit_learns_default_strength_for_the_rows_then_a_grid() -> None:
    from orchestrator.algorithms.selection import L2_AUTO_FACTORS, auto_l2

    hp = _hp()
    assert (hp.l2_auto, hp.l2) == (True, 0.0)
    assert auto_l2(hp, 200) == 1 / 200  # Ridge's alpha=1 on the mean squared error
    binary = parse_hyperparameters("linear-learner", {"predictor_type": "binary_classifier"})
    assert auto_l2(binary, 200) == 1 / 400  # LogisticRegression's C=1 on the mean log loss
    cands = candidates(hp, 200)
    assert cands[0] == Candidate(0.05, 1 / 200)
    assert [c.l2 for c in cands] == pytest.approx([g / 200 for g in L2_AUTO_FACTORS])
    assert {c.learning_rate for c in cands} == {0.05}
    wide = candidates(_hp(num_models="32"), 200)
    assert len(wide) == 32 == len(set(wide)) and wide[:8] == cands
    assert sorted({c.learning_rate for c in wide}) == pytest.approx([0.005, 0.015, 0.05, 0.15])
    assert not _hp(l2="0.5").l2_auto and _hp(l2="0").l2 == 0.0


def test_l2_auto_only_for_linear_learner_and_a_bad_l2_names_what_is_allowed() -> None:
    from orchestrator.errors import ValidationError

    with pytest.raises(ValidationError) as bad:
        _hp(l2="-1")
    assert bad.value.field == "l2" and "auto or" in str(bad.value)
    with pytest.raises(ValidationError) as mlp:
        parse_hyperparameters("mlp", {"predictor_type": "regressor", "l2": "auto"})
    assert mlp.value.field == "l2"
    assert parse_hyperparameters("mlp", {"predictor_type": "regressor"}).l2_auto is False


def test_clearly_better_by_a_number_of_standard_errors() -> None:
    from orchestrator.algorithms.selection import clearly_better

    given = np.array([1.0, 2.0, 1.5, 1.2, 0.8])
    noise = np.array([0.3, -0.1, 0.2, 0.0, 0.1])  # mean 0.1, standard error about 0.07
    assert clearly_better(given, given - noise)
    assert not clearly_better(given, given - noise, errors=2.0)
