"""A small readable language for Search expressions (``orch search``), compiled to SageMaker's
``SearchExpression``. Pure.

    Metrics.validation:accuracy > 0.95 and HyperParameters.optimizer = adam
    Tags.team exists
    TrainingJobStatus in Completed,Stopped
    (Tags.team = ml or Tags.team = research) and TrainingJobName contains resnet

Comparisons: ``=`` (or ``==``), ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``contains`` (or ``~``),
``in`` (a comma-separated list), ``exists``, ``not exists``; ``and`` binds tighter than
``or``; parentheses group; a value with spaces goes in quotes. A mistake is a 400 that points
at the position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ValidationError

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<str>"[^"]*"|'[^']*')|(?P<op>>=|<=|!=|==|=|>|<|~)|(?P<paren>[()])"""
    r"""|(?P<comma>,)|(?P<word>[^\s()=!<>~"',]+)"""
)
_OPERATORS = {
    "=": "Equals",
    "==": "Equals",
    "!=": "NotEquals",
    ">": "GreaterThan",
    ">=": "GreaterThanOrEqualTo",
    "<": "LessThan",
    "<=": "LessThanOrEqualTo",
    "~": "Contains",
    "contains": "Contains",
}
_KEYWORDS = {"and", "or", "not", "exists", "in", "contains"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # word, str, op, paren, comma, end
    text: str
    at: int

    def keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def _tokens(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    at = 0
    while at < len(source):
        m = _TOKEN.match(source, at)
        if m is None:
            raise _error(source, at, f"unexpected character {source[at]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            text = m.group()
            out.append(_Tok(kind, text[1:-1] if kind == "str" else text, at))
        at = m.end()
    out.append(_Tok("end", "", len(source)))
    return out


def _error(source: str, at: int, message: str) -> ValidationError:
    return ValidationError(
        f"search expression: {message} at position {at + 1}:\n  {source}\n  {' ' * at}^",
        field="SearchExpression",
    )


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.toks = _tokens(source)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Tok | None = None) -> ValidationError:
        return _error(self.source, (tok or self.tok).at, message)

    def expression(self) -> Any:
        parts = [self.conjunction()]
        while self.tok.keyword("or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else ("Or", parts)

    def conjunction(self) -> Any:
        parts = [self.factor()]
        while self.tok.keyword("and"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else ("And", parts)

    def factor(self) -> Any:
        if self.tok.kind == "paren" and self.tok.text == "(":
            self.take()
            inner = self.expression()
            if not (self.tok.kind == "paren" and self.tok.text == ")"):
                raise self.fail("expected ')'")
            self.take()
            return inner
        return self.comparison()

    def value(self) -> str:
        tok = self.tok
        if tok.kind == "str" or (tok.kind == "word" and tok.text.lower() not in {"and", "or"}):
            self.take()
            return tok.text
        raise self.fail("expected a value")

    def comparison(self) -> dict[str, str]:
        name = self.tok
        if name.kind != "word" or name.text.lower() in _KEYWORDS:
            raise self.fail("expected a property name (such as Metrics.validation:accuracy)")
        self.take()
        tok = self.tok
        if tok.keyword("exists"):
            self.take()
            return {"Name": name.text, "Operator": "Exists"}
        if tok.keyword("not"):
            self.take()
            if not self.tok.keyword("exists"):
                raise self.fail("expected 'exists' after 'not'")
            self.take()
            return {"Name": name.text, "Operator": "NotExists"}
        if tok.keyword("in"):
            self.take()
            values = [self.value()]
            while self.tok.kind == "comma":
                self.take()
                values.append(self.value())
            return {"Name": name.text, "Operator": "In", "Value": ",".join(values)}
        if tok.kind == "op" or tok.keyword("contains"):
            self.take()
            op = _OPERATORS[tok.text.lower()]
            return {"Name": name.text, "Operator": op, "Value": self.value()}
        raise self.fail(
            "expected an operator (=, !=, >, >=, <, <=, contains, in, exists, not exists)"
        )


def _build(node: Any) -> dict[str, Any]:
    if isinstance(node, dict):
        return {"Filters": [node]}
    op, parts = node
    filters = [p for p in parts if isinstance(p, dict)]
    subs = [_build(p) for p in parts if not isinstance(p, dict)]
    out: dict[str, Any] = {"Operator": op}
    if filters:
        out["Filters"] = filters
    if subs:
        out["SubExpressions"] = subs
    return out


def parse_expression(source: str) -> dict[str, Any]:
    """``source`` as SageMaker's ``SearchExpression`` (a dict), or a 400 pointing at the
    mistake."""
    parser = _Parser(source)
    if parser.tok.kind == "end":
        raise parser.fail("the expression is empty")
    node = parser.expression()
    if parser.tok.kind != "end":
        raise parser.fail("expected 'and', 'or' or the end")
    return _build(node)
