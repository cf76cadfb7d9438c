"""SageMaker batch transform's JSONPath subset, for DataProcessing's InputFilter and OutputFilter.

Grammar (SageMaker's documented operators)::

    $                 the record itself
    .name  ['name']   a child by name ("name" in double quotes too; \\ escapes a quote)
    [i]               an element by index; negative counts from the end (-1: the last)
    [a:b] [a:] [:b]   a slice, end exclusive, as Python and Jayway JsonPath (which SageMaker
    [a:b:c]           runs) have it; the developer guide's prose calls the end inclusive, its
                      engine does not. A step is accepted too (not 0)
    [*]  .*           every element of a list, every value of an object
    [i,j,a:b]         several indexes and slices (``$[0,5:]``), in the order written
    ['a','b']         several names; ``.['a','b']`` is the same

Not supported (an error at parse time that says so): recursive descent ``..``, filter and
script expressions ``[?(...)]`` ``[(...)]``, names and indexes mixed in one bracket.

Selection (``JsonPath.select``), SageMaker's rules:
- a *definite* path (only single names and single indexes) returns the one element;
- any wildcard, slice or list makes the result a list of what it selected, in document order
  of the path (each step applied to each node the previous step selected), except that
  several names as the last step of an otherwise definite path give an object with those keys,
  as Jayway does: ``$['id','SageMakerOutput']`` selects ``{"id": ..., "SageMakerOutput": ...}``;
- a name or an index written in the path must exist where it is applied, and each step must
  meet the kind it needs (a name an object, an index or a slice a list, ``*`` either); else,
  or when the result is an empty list, ``NothingSelected``. SageMaker fails the job for an
  index beyond the record's length; we fail the same way for a missing name too (Jayway skips
  missing names inside an indefinite path: here a typo fails the file instead of vanishing).

A CSV record is selected as the list of its column strings, so only index paths make sense.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ValidationError
from orchestrator.transform.errors import TransformDataError

__all__ = [
    "Indexes",
    "JsonPath",
    "JsonPathError",
    "Names",
    "NothingSelected",
    "Step",
    "Wildcard",
    "parse",
]

# Characters that end a dot-notated name.
_NAME_STOP = frozenset(".[]'\",*()?:@ \t\r\n")


class JsonPathError(ValidationError, ValueError):
    """A path that does not parse; ``position`` is the 0-based index of the offending character
    (``len(expr)`` when the path ends too early); ``field`` names the request field."""

    def __init__(self, message: str, *, field: str, position: int) -> None:
        super().__init__(message, field=field)
        self.position = position


class NothingSelected(TransformDataError):
    """A path selects nothing from a record (the caller adds the file and the record)."""


@dataclass(frozen=True)
class Names:
    """``.name``, ``['name']`` or ``['a','b',...]``."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Indexes:
    """``[i]``, ``[a:b:c]`` or ``[i,a:b,...]``; a slice is kept as a ``slice``."""

    items: tuple[int | slice, ...]


@dataclass(frozen=True)
class Wildcard:
    """``[*]`` or ``.*``."""


Step = Names | Indexes | Wildcard


@dataclass(frozen=True)
class JsonPath:
    """A parsed path: ``expr`` as written, ``field`` for messages, ``steps`` after the ``$``."""

    expr: str
    field: str
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return self.expr

    @property
    def is_root(self) -> bool:
        """True for ``$`` alone: selecting returns the document unchanged."""
        return not self.steps

    @property
    def definite(self) -> bool:
        """True when the path names one element (single names and single indexes only)."""
        return all(_single(step) for step in self.steps)

    def select(self, doc: Any) -> Any:
        """What the path selects from ``doc`` (parsed JSON, or a CSV record's column list)."""
        if self.definite:
            location, node = "$", doc
            for step in self.steps:
                location, node = self._one(step, location, node)
            return node
        nodes: list[tuple[str, Any]] = [("$", doc)]
        prefix_definite = True
        result: list[Any] | None = None
        for number, step in enumerate(self.steps):
            if number == len(self.steps) - 1 and isinstance(step, Names) and len(step.names) > 1:
                # Several names closing the path: an object per node (Jayway's shape), and
                # the one object itself when the path up to here was definite.
                objects = [self._pick(location, node, step.names) for location, node in nodes]
                if prefix_definite:
                    return objects[0]
                result = objects
                break
            prefix_definite = prefix_definite and _single(step)
            nodes = [
                found for location, node in nodes for found in self._many(step, location, node)
            ]
        if result is None:
            result = [node for _, node in nodes]
        if not result:
            raise self._nothing("the result is an empty list")
        return result

    # --- one step ---------------------------------------------------------------------
    def _one(self, step: Step, location: str, node: Any) -> tuple[str, Any]:
        if isinstance(step, Names):
            return self._child(location, node, step.names[0])
        assert isinstance(step, Indexes)
        item = step.items[0]
        assert isinstance(item, int)
        return self._element(location, node, item)

    def _many(self, step: Step, location: str, node: Any) -> list[tuple[str, Any]]:
        if isinstance(step, Names):
            return [self._child(location, node, name) for name in step.names]
        if isinstance(step, Wildcard):
            if isinstance(node, dict):
                return [(_name_location(location, k), v) for k, v in node.items()]
            if isinstance(node, list):
                return [(f"{location}[{i}]", v) for i, v in enumerate(node)]
            raise self._nothing(f"'*' needs an object or a list at {location}, found {_kind(node)}")
        found: list[tuple[str, Any]] = []
        for item in step.items:
            if isinstance(item, int):
                found.append(self._element(location, node, item))
                continue
            if not isinstance(node, list):
                raise self._nothing(f"a slice needs a list at {location}, found {_kind(node)}")
            found.extend((f"{location}[{i}]", node[i]) for i in range(len(node))[item])
        return found

    def _pick(self, location: str, node: Any, names: tuple[str, ...]) -> dict[str, Any]:
        return {name: self._child(location, node, name)[1] for name in names}

    def _child(self, location: str, node: Any, name: str) -> tuple[str, Any]:
        if not isinstance(node, dict):
            raise self._nothing(f"{name!r} needs an object at {location}, found {_kind(node)}")
        if name not in node:
            keys = ", ".join(repr(k) for k in list(node)[:10]) or "none"
            more = ", ..." if len(node) > 10 else ""
            raise self._nothing(f"{location} has no key {name!r} (its keys: {keys}{more})")
        return _name_location(location, name), node[name]

    def _element(self, location: str, node: Any, index: int) -> tuple[str, Any]:
        if not isinstance(node, list):
            raise self._nothing(f"index {index} needs a list at {location}, found {_kind(node)}")
        if not -len(node) <= index < len(node):
            raise self._nothing(
                f"index {index} is out of range at {location}, a list of {len(node)}"
            )
        actual = index % len(node)
        return f"{location}[{actual}]", node[actual]

    def _nothing(self, detail: str) -> NothingSelected:
        return NothingSelected(
            f"{self.field} {self.expr!r} selects nothing: {detail}", field=self.field
        )


def _single(step: Step) -> bool:
    if isinstance(step, Names):
        return len(step.names) == 1
    if isinstance(step, Indexes):
        return len(step.items) == 1 and isinstance(step.items[0], int)
    return False


def _name_location(location: str, name: str) -> str:
    if name and name.isidentifier():
        return f"{location}.{name}"
    return f"{location}[{name!r}]"


def _kind(node: Any) -> str:
    if isinstance(node, dict):
        return "an object"
    if isinstance(node, list):
        return f"a list of {len(node)}"
    if isinstance(node, str):
        return "a string"
    if isinstance(node, bool):
        return "a boolean"
    if node is None:
        return "null"
    if isinstance(node, int | float):
        return "a number"
    return type(node).__name__


# --- parsing ------------------------------------------------------------------------------
def parse(expr: str, field: str = "JSONPath") -> JsonPath:
    """Parse ``expr``; a ``JsonPathError`` names ``field``, the position and the expression."""
    return _Parser(expr, field).parse()


class _Parser:
    def __init__(self, expr: str, field: str) -> None:
        self.expr = expr
        self.field = field
        self.pos = 0

    def parse(self) -> JsonPath:
        if not self.expr.startswith("$"):
            raise self._unexpected("'$': a JSONPath starts with it")
        self.pos = 1
        steps: list[Step] = []
        while self.pos < len(self.expr):
            char = self.expr[self.pos]
            if char == ".":
                steps.append(self._dot())
            elif char == "[":
                steps.append(self._bracket())
            else:
                raise self._unexpected("'.' or '['")
        return JsonPath(self.expr, self.field, tuple(steps))

    # A step after '.'.
    def _dot(self) -> Step:
        self.pos += 1
        char = self._peek()
        if char == ".":
            raise self._error("recursive descent '..' is not supported")
        if char == "[":
            return self._bracket()
        if char == "*":
            self.pos += 1
            return Wildcard()
        start = self.pos
        while self.pos < len(self.expr) and self.expr[self.pos] not in _NAME_STOP:
            self.pos += 1
        if self.pos == start:
            raise self._unexpected("a name or '*' after '.'")
        return Names((self.expr[start : self.pos],))

    def _bracket(self) -> Step:
        self.pos += 1  # the '['
        self._spaces()
        char = self._peek()
        if char == "*":
            self.pos += 1
            self._close()
            return Wildcard()
        if char in ("?", "("):
            raise self._error("filter and script expressions are not supported")
        if char in ("'", '"'):
            names = [self._quoted()]
            while self._comma():
                if self._peek() not in ("'", '"'):
                    raise self._unexpected("a quoted name: names and indexes do not mix")
                names.append(self._quoted())
            self._close()
            return Names(tuple(names))
        if char is not None and (char.isdigit() or char in "-:"):
            items = [self._index_or_slice()]
            while self._comma():
                items.append(self._index_or_slice())
            self._close()
            return Indexes(tuple(items))
        raise self._unexpected("an index, a slice, '*' or a quoted name")

    def _index_or_slice(self) -> int | slice:
        char = self._peek()
        if char in ("'", '"'):
            raise self._unexpected("an index or a slice: names and indexes do not mix")
        start = self._int(optional=True)
        self._spaces()
        if self._peek() != ":":
            if start is None:
                raise self._unexpected("an index or a slice")
            return start
        self.pos += 1
        self._spaces()
        stop = self._int(optional=True)
        self._spaces()
        step: int | None = None
        if self._peek() == ":":
            self.pos += 1
            self._spaces()
            at = self.pos
            step = self._int(optional=True)
            if step == 0:
                self.pos = at
                raise self._error("a slice step cannot be 0")
        return slice(start, stop, step)

    def _int(self, *, optional: bool) -> int | None:
        start = self.pos
        if self._peek() == "-":
            self.pos += 1
        digits = self.pos
        while self.pos < len(self.expr) and self.expr[self.pos].isdigit():
            self.pos += 1
        if self.pos == digits:
            if self.pos == start and optional:
                return None
            raise self._unexpected("a digit")
        return int(self.expr[start : self.pos])

    def _quoted(self) -> str:
        quote = self.expr[self.pos]
        opened = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.expr):
            char = self.expr[self.pos]
            if char == "\\" and self.pos + 1 < len(self.expr):
                chars.append(self.expr[self.pos + 1])
                self.pos += 2
                continue
            if char == quote:
                self.pos += 1
                self._spaces()
                return "".join(chars)
            chars.append(char)
            self.pos += 1
        self.pos = opened
        raise self._error(f"an unterminated name (no closing {quote} quote)")

    def _comma(self) -> bool:
        self._spaces()
        if self._peek() == ",":
            self.pos += 1
            self._spaces()
            return True
        return False

    def _close(self) -> None:
        self._spaces()
        if self._peek() != "]":
            raise self._unexpected("']'" if self._peek() is None else "',' or ']'")
        self.pos += 1

    def _spaces(self) -> None:
        while self.pos < len(self.expr) and self.expr[self.pos] in " \t":
            self.pos += 1

    def _peek(self) -> str | None:
        return self.expr[self.pos] if self.pos < len(self.expr) else None

    def _unexpected(self, expected: str) -> JsonPathError:
        char = self._peek()
        what = "unexpected end" if char is None else f"unexpected {char!r}"
        return self._error(what, f"expected {expected}")

    def _error(self, what: str, hint: str = "") -> JsonPathError:
        message = f"{self.field}: {what} at position {self.pos} of {self.expr!r}"
        if hint:
            message += f" ({hint})"
        return JsonPathError(message, field=self.field, position=self.pos)
