"""The metric names a PromQL expression reads, and the series names the product exports.

A small scanner, not a parser: it skips strings, label matchers (``{...}``), range and
subquery brackets (``[...]``), Grafana variables (``$x``, ``${x}``), numbers and durations,
and the label lists of ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``;
an identifier left that is not a function call, a keyword or an operator is a metric name.
It keeps the innermost function around each name so a test can check that ``rate`` and its
kin only read counters. Unbalanced brackets raise ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
# Functions that only make sense over a counter's samples (or a histogram's parts).
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)?)([a-zA-Z]+)?")
_VARIABLE = re.compile(r"\$(\{[^}]*\}|\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$", re.S)
_CLOSE = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class MetricUse:
    name: str
    function: str | None  # the innermost function call the name sits directly in


def _skip_string(expr: str, i: int) -> int:
    quote = expr[i]
    i += 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string in {expr!r}")


def _skip_group(expr: str, i: int) -> int:
    """From an opening bracket at ``i`` to just past its match (strings inside skipped)."""
    stack = [_CLOSE[expr[i]]]
    i += 1
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
            continue
        if c in _CLOSE:
            stack.append(_CLOSE[c])
        elif c in ")]}":
            if c != stack.pop():
                raise ValueError(f"mismatched {c!r} at {i} in {expr!r}")
            if not stack:
                return i + 1
        i += 1
    raise ValueError(f"unclosed bracket in {expr!r}")


def _next_char(expr: str, i: int) -> str:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return expr[i] if i < len(expr) else ""


def _clause_after(expr: str, i: int) -> int | None:
    """Just past ``by (...)``/``without (...)`` when one starts at ``i`` (after spaces)."""
    m = re.compile(r"\s*(by|without)\s*\(", re.I).match(expr, i)
    return _skip_group(expr, m.end() - 1) if m is not None else None


def metric_uses(expr: str) -> list[MetricUse]:
    """Every metric name ``expr`` reads, in order, with its innermost enclosing function."""
    out: list[MetricUse] = []
    calls: list[str | None] = []  # one entry per open parenthesis: the function, or None
    pending: str | None = None  # a function name whose "(" comes next
    i = 0
    while i < len(expr):
        c = expr[i]
        if c.isspace() or c in "+-*/%^=!<>,@":
            i += 1
        elif c in "\"'`":
            i = _skip_string(expr, i)
        elif c in "{[":
            i = _skip_group(expr, i)
        elif c == "(":
            calls.append(pending)
            pending = None
            i += 1
        elif c == ")":
            if not calls:
                raise ValueError(f"unbalanced ')' at {i} in {expr!r}")
            calls.pop()
            i += 1
        elif c in "]}":
            raise ValueError(f"unbalanced {c!r} at {i} in {expr!r}")
        elif c == "$":
            m = _VARIABLE.match(expr, i)
            if m is None:
                raise ValueError(f"a lone '$' at {i} in {expr!r}")
            i = m.end()
        elif c.isdigit() or (c == "." and expr[i + 1 : i + 2].isdigit()):
            m = _NUMBER.match(expr, i)
            assert m is not None
            i = m.end()
        else:
            m = _IDENT.match(expr, i)
            if m is None:
                raise ValueError(f"unexpected {c!r} at {i} in {expr!r}")
            word, i = m.group(), m.end()
            follows = _next_char(expr, i)
            lower = word.lower()
            clause = _clause_after(expr, i)
            if lower in LABEL_LISTS:
                if follows == "(":
                    i = _skip_group(expr, expr.index("(", i))
            elif lower in KEYWORDS:
                pass
            elif follows == "(":
                pending = word
            elif clause is not None:  # ``sum by (le) (...)``: an aggregation, its list first
                i, pending = clause, word
            else:
                out.append(MetricUse(word, calls[-1] if calls else None))
    if calls:
        raise ValueError(f"unclosed '(' in {expr!r}")
    return out


def metric_names(expr: str) -> set[str]:
    return {u.name for u in metric_uses(expr)}


def variable_query_expr(query: str) -> str | None:
    """The PromQL inside a Grafana variable query: ``label_values(EXPR, label)`` -> EXPR;
    ``label_values(label)`` (no metric) -> None; anything else is PromQL itself."""
    m = _LABEL_VALUES.match(query)
    if m is not None:
        return m.group(1)
    if re.match(r"^\s*label_values\(\s*\w+\s*\)\s*$", query):
        return None
    return query


def exported_series(registry: CollectorRegistry) -> tuple[set[str], set[str]]:
    """(every series name the registry exposes, those that are counter samples), with the
    suffixes prometheus-client adds: ``_total``/``_created`` of counters,
    ``_bucket``/``_sum``/``_count``/``_created`` of histograms."""
    names: set[str] = set()
    counters: set[str] = set()
    for family in registry.collect():
        n = family.name
        if family.type == "counter":
            names |= {f"{n}_total", f"{n}_created"}
            counters.add(f"{n}_total")
        elif family.type == "histogram":
            parts = {f"{n}_bucket", f"{n}_sum", f"{n}_count"}
            names |= parts | {f"{n}_created"}
            counters |= parts
        elif family.type == "summary":
            parts = {f"{n}_sum", f"{n}_count"}
            names |= parts | {n, f"{n}_created"}
            counters |= parts
        elif family.type == "info":
            names.add(f"{n}_info")
        else:  # gauge, stateset, unknown
            names.add(n)
    return names, counters


def problems(where: str, expr: str, exported: set[str], counters: set[str]) -> Iterable[str]:
    """What is wrong with one expression, each naming ``where`` and the metric."""
    try:
        uses = metric_uses(expr)
    except ValueError as e:
        yield f"{where}: {e}"
        return
    if not uses:
        yield f"{where}: names no metric: {expr!r}"
    for u in uses:
        if u.name not in exported:
            yield f"{where}: metric {u.name!r} is not exported by orchestrator.metrics"
        elif u.function in COUNTER_FUNCTIONS and u.name not in counters:
            yield f"{where}: {u.function}() over {u.name!r}, which is not a counter"
