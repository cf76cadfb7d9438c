"""A tuning job's search space: SageMaker's ranges as typed parameters, with their scaling.

Values travel as hyperparameter strings (SageMaker's), so a trial's stored spec is the record of
what was tried; ``decode`` reads one back (None when a value is not in the space, e.g. a warm
start parent's trial tried outside the current ranges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from orchestrator.resources.tuning import ParameterRanges

ParamKind = Literal["integer", "continuous", "categorical"]
Scaling = Literal["Linear", "Logarithmic", "ReverseLogarithmic"]
Value = int | float | str
# "Auto" becomes logarithmic for a positive range spanning this factor or more (two decades):
# a learning rate in 1e-4..1e-1 is searched per decade, a dropout in 0.1..0.5 linearly.
AUTO_LOG_SPAN = 100.0


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind
    low: float = 0.0
    high: float = 0.0
    scaling: Scaling = "Linear"
    values: tuple[str, ...] = ()

    def encode(self, value: Value) -> str:
        if self.kind == "integer":
            return str(int(value))
        if self.kind == "continuous":
            return repr(float(value))
        return str(value)

    def decode(self, text: str) -> Value | None:
        """The value a hyperparameter string holds, or None when it is not in this space."""
        if self.kind == "categorical":
            return text if text in self.values else None
        try:
            number = float(text)
        except ValueError:
            return None
        if not (self.low <= number <= self.high):
            return None
        if self.kind == "integer":
            return int(number) if number == int(number) else None
        return number

    # --- the unit interval, for random sampling ----------------------------------------
    def from_unit(self, u: float) -> Value:
        """The value at ``u`` in [0, 1] of the range, under its scaling."""
        if self.kind == "categorical":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        lo, hi = self.low, self.high
        if self.scaling == "Logarithmic":
            x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        elif self.scaling == "ReverseLogarithmic":
            a, b = math.log(1 - hi), math.log(1 - lo)
            x = 1 - math.exp(b - u * (b - a))
        else:
            x = lo + u * (hi - lo)
        x = min(max(x, lo), hi)
        if self.kind == "integer":
            # Each integer gets its share of the (scaled) interval.
            return int(min(max(math.floor(x + 0.5), lo), hi))
        return x


def _scaling(given: str, low: float, high: float) -> Scaling:
    if given == "Auto":
        return "Logarithmic" if low > 0 and high / low >= AUTO_LOG_SPAN else "Linear"
    if given in ("Linear", "Logarithmic", "ReverseLogarithmic"):
        return given  # type: ignore[return-value]
    raise ValueError(f"unknown ScalingType {given!r}")


def space_of(ranges: ParameterRanges) -> list[Param]:
    """The ranges as parameters, in a fixed order (integer, continuous, categorical; each in
    the order given): the order the strategies draw in, so a seed gives the same trials."""
    out: list[Param] = []
    for r in ranges.IntegerParameterRanges:
        lo, hi = float(int(r.MinValue)), float(int(r.MaxValue))
        out.append(Param(r.Name, "integer", lo, hi, _scaling(r.ScalingType, lo, hi)))
    for c in ranges.ContinuousParameterRanges:
        lo, hi = float(c.MinValue), float(c.MaxValue)
        out.append(Param(c.Name, "continuous", lo, hi, _scaling(c.ScalingType, lo, hi)))
    for cat in ranges.CategoricalParameterRanges:
        out.append(Param(cat.Name, "categorical", values=tuple(cat.Values)))
    return out


def decode_all(space: list[Param], hyperparameters: dict[str, str]) -> dict[str, Value] | None:
    """A trial's tuned values, or None when any is missing or outside the space."""
    out: dict[str, Value] = {}
    for p in space:
        text = hyperparameters.get(p.name)
        value = None if text is None else p.decode(text)
        if value is None:
            return None
        out[p.name] = value
    return out


def grid_size(space: list[Param]) -> int:
    return math.prod(len(p.values) for p in space)
