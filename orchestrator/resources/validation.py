"""Turn pydantic's validation errors into one ``ValidationError`` naming the field and the fix."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pydantic

from orchestrator.errors import ValidationError

M = TypeVar("M", bound=pydantic.BaseModel)
_FIELD_PATH = re.compile(r"^[A-Z][A-Za-z0-9]*(\[[0-9]+\])?(\.[A-Z][A-Za-z0-9]*(\[[0-9]+\])?)*$")


def named_field(text: str) -> tuple[str, str] | None:
    """A check across fields names the field it is about as its message's start
    (``"A.B: why"``): that field and the rest, or None."""
    head, sep, rest = text.partition(": ")
    return (head, rest) if sep and _FIELD_PATH.match(head) else None


def field_path(loc: Sequence[int | str]) -> str:
    """``("InputDataConfig", 0, "DataSource")`` -> ``InputDataConfig[0].DataSource``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(err: Any, model: type[pydantic.BaseModel]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field; check its spelling against the API reference (fields are PascalCase)"
    if kind == "missing":
        return "required field is missing"
    if kind.startswith("literal_error") and "expected" in ctx:
        return f"must be one of {ctx['expected']}"
    if kind == "string_pattern_mismatch":
        return f"does not match the required pattern {ctx.get('pattern')!r}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    if kind not in {"missing"} and not isinstance(got, dict | list) and got is not None:
        return f"{msg} (got {got!r})"
    return msg


def parse_spec(
    model: type[M], data: Any, *, unknown: Callable[[str], str | None] | None = None
) -> M:
    """Validate ``data`` as ``model``; on failure raise one error listing every bad field.
    ``unknown`` may say better than "unknown field" what a field the model lacks is (given its
    path; None: the usual words)."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        errors = e.errors()
        parts = []
        first_field: str | None = None
        for err in errors:
            path = field_path(err.get("loc", ()))
            text = _describe(err, model)
            if unknown is not None and err.get("type") == "extra_forbidden":
                text = unknown(path) or text
            if not path:
                path, text = named_field(text) or (path, text)
            first_field = first_field or path or None
            parts.append(f"{path or '(body)'}: {text}")
        raise ValidationError("; ".join(parts), field=first_field) from e
