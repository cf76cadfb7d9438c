"""What the next trials try: Random, Grid, Bayesian (Optuna's TPE) and Hyperband's sampling.

``suggest`` is a function of the stored trials only. Random and Hyperband draw each trial from
its own generator seeded by (RandomSeed, trial number), so a trial's values do not depend on
when it was launched; Grid walks the combinations in order, skipping those tried; Bayesian
rebuilds an in-memory Optuna study from the history on every call (finished trials with their
objective, running ones as running so the "constant liar" spreads parallel asks) and asks it in
ask/tell form with a sampler seeded by (RandomSeed, number of trials so far). Nothing lives
between calls, so a control plane killed at any point suggests the same on the next pass.
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from orchestrator.tuning.space import Param, Value, decode_all

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Observation:
    """One trial as history: what it tried and, once it has one, its final objective."""

    hyperparameters: dict[str, str]
    value: float | None = None
    running: bool = False


def suggest(
    strategy: str,
    space: list[Param],
    history: Sequence[Observation],
    numbers: Sequence[int],
    *,
    seed: int,
    maximize: bool,
    startup_trials: int | None = None,
) -> list[dict[str, str]]:
    """Hyperparameter strings for the trials numbered ``numbers`` (in order)."""
    if not numbers:
        return []
    if strategy in ("Random", "Hyperband"):
        return [_random(space, seed, n) for n in numbers]
    if strategy == "Grid":
        return _grid(space, history, len(numbers))
    if strategy == "Bayesian":
        return _bayesian(
            space,
            history,
            len(numbers),
            seed=seed,
            maximize=maximize,
            startup_trials=startup_trials,
        )
    raise ValueError(f"unknown strategy {strategy!r}")


def _random(space: list[Param], seed: int, number: int) -> dict[str, str]:
    rng = random.Random(f"{seed}:{number}")  # a string seed: the same draws on every host
    return {p.name: p.encode(p.from_unit(rng.random())) for p in space}


def _grid(space: list[Param], history: Sequence[Observation], count: int) -> list[dict[str, str]]:
    tried = {tuple(o.hyperparameters.get(p.name) for p in space) for o in history}
    out: list[dict[str, str]] = []
    for combo in itertools.product(*(p.values for p in space)):
        if combo in tried:
            continue
        out.append(dict(zip((p.name for p in space), combo, strict=True)))
        if len(out) == count:
            break
    return out


def grid_remaining(space: list[Param], history: Sequence[Observation]) -> int:
    tried = {tuple(o.hyperparameters.get(p.name) for p in space) for o in history}
    return sum(1 for c in itertools.product(*(p.values for p in space)) if c not in tried)


# --- Bayesian ------------------------------------------------------------------------------
def _distribution(p: Param) -> BaseDistribution:
    if p.kind == "categorical":
        return CategoricalDistribution(list(p.values))
    if p.kind == "integer":
        return IntDistribution(int(p.low), int(p.high), log=p.scaling == "Logarithmic")
    if p.scaling == "ReverseLogarithmic":
        # Searched as 1 - x on a log scale: values close to 1 get the resolution.
        return FloatDistribution(1 - p.high, 1 - p.low, log=True)
    return FloatDistribution(p.low, p.high, log=p.scaling == "Logarithmic")


def _to_optuna(p: Param, value: Value) -> Value:
    return 1 - float(value) if p.scaling == "ReverseLogarithmic" else value


def _from_optuna(p: Param, value: Value) -> Value:
    return 1 - float(value) if p.scaling == "ReverseLogarithmic" else value


def default_startup_trials(space: list[Param]) -> int:
    """Random trials before TPE models the history: one more than the dimensions, 3 to 10."""
    return max(3, min(10, len(space) + 1))


def _bayesian(
    space: list[Param],
    history: Sequence[Observation],
    count: int,
    *,
    seed: int,
    maximize: bool,
    startup_trials: int | None,
) -> list[dict[str, str]]:
    distributions = {p.name: _distribution(p) for p in space}
    with warnings.catch_warnings():
        # multivariate TPE and the constant liar are marked experimental by Optuna.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=startup_trials or default_startup_trials(space),
            seed=(seed * 1_000_003 + len(history)) % (2**32),
            multivariate=True,
            constant_liar=True,
        )
    study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler)
    for o in history:
        values = decode_all(space, o.hyperparameters)
        if values is None:
            continue  # tried outside this space (a warm start parent): no evidence here
        params = {p.name: _to_optuna(p, values[p.name]) for p in space}
        if o.running:
            state, value = TrialState.RUNNING, None
        elif o.value is None:
            state, value = TrialState.FAIL, None
        else:
            state, value = TrialState.COMPLETE, o.value
        study.add_trial(
            optuna.trial.create_trial(
                state=state, value=value, params=params, distributions=distributions
            )
        )
    out: list[dict[str, str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for _ in range(count):
            trial = study.ask(distributions)
            out.append({p.name: p.encode(_from_optuna(p, trial.params[p.name])) for p in space})
    return out
