"""Validate wire JSON against botocore's own service model, and record what boto3 sends and gets.

``problems(doc, shape)`` checks a JSON document (as it travels: timestamps as numbers) against
a shape of SageMaker's botocore model: structure members known, required members present,
types, enums, list and map members, string patterns (botocore's are Java regular expressions,
``\\p{L}`` and all, hence the ``regex`` module) and length and range limits where the model
gives them. ``Wire`` hooks a boto3 client (``before-send`` for the request body as sent,
``after-call`` for the raw response body) so that a test can check every exchange it made.

``python -m tests.aws.shapes`` regenerates ``orchestrator/api/aws/sagemaker_model.py``, the
members of each served operation's request and response the server keeps (it has no botocore
at run time); ``test_sagemaker_wire.py`` fails when that file is stale.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import regex
from botocore.loaders import Loader

SERVICE = "sagemaker"
# Errors any operation may answer (botocore's common errors and the gateway's own).
COMMON_ERRORS = frozenset(
    {
        "ValidationException", "AccessDeniedException", "ThrottlingException",
        "ServiceUnavailable", "InternalFailure", "UnknownOperationException",
        "SerializationException", "UnrecognizedClientException", "InvalidSignatureException",
        "MissingAuthenticationTokenException", "IncompleteSignatureException",
    }
)  # fmt: skip


@cache
def model(service: str = SERVICE) -> dict[str, Any]:
    doc: dict[str, Any] = Loader().load_service_model(service, "service-2")
    return doc


def shape(name: str, service: str = SERVICE) -> dict[str, Any]:
    found: dict[str, Any] = model(service)["shapes"][name]
    return found


def operation(name: str, service: str = SERVICE) -> dict[str, Any]:
    found: dict[str, Any] = model(service)["operations"][name]
    return found


@cache
def _pattern(text: str) -> Any:
    return regex.compile(text)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problems(doc: Any, shape_name: str, path: str = "", service: str = SERVICE) -> list[str]:
    """Everything about ``doc`` that botocore's shape ``shape_name`` does not allow."""
    s = shape(shape_name, service)
    where = path or shape_name
    kind = s["type"]
    out: list[str] = []
    if kind == "structure":
        if not isinstance(doc, dict):
            return [f"{where}: expected an object ({shape_name}), got {type(doc).__name__}"]
        members = s["members"]
        for key, value in doc.items():
            if key not in members:
                out.append(f"{where}.{key}: not a member of {shape_name}")
            else:
                out += problems(value, members[key]["shape"], f"{where}.{key}", service)
        out += [
            f"{where}.{m}: required member missing" for m in s.get("required", []) if m not in doc
        ]
        return out
    if kind == "list":
        if not isinstance(doc, list):
            return [f"{where}: expected a list ({shape_name}), got {type(doc).__name__}"]
        out += _limits(len(doc), s, where, "items")
        for i, item in enumerate(doc):
            out += problems(item, s["member"]["shape"], f"{where}[{i}]", service)
        return out
    if kind == "map":
        if not isinstance(doc, dict):
            return [f"{where}: expected an object ({shape_name}), got {type(doc).__name__}"]
        out += _limits(len(doc), s, where, "entries")
        for key, value in doc.items():
            out += problems(key, s["key"]["shape"], f"{where} key {key!r}", service)
            out += problems(value, s["value"]["shape"], f"{where}[{key!r}]", service)
        return out
    return _scalar(doc, s, shape_name, where)


def _limits(size: float, s: dict[str, Any], where: str, unit: str) -> list[str]:
    out = []
    if "min" in s and size < s["min"]:
        out.append(f"{where}: {size:g} {unit}, under the minimum {s['min']}")
    if "max" in s and size > s["max"]:
        out.append(f"{where}: {size:g} {unit}, over the maximum {s['max']}")
    return out


def _scalar(doc: Any, s: dict[str, Any], shape_name: str, where: str) -> list[str]:
    kind = s["type"]
    if kind == "string":
        if not isinstance(doc, str):
            return [f"{where}: expected a string ({shape_name}), got {doc!r}"]
        out = _limits(len(doc), s, where, "characters")
        if "enum" in s and doc not in s["enum"]:
            out.append(f"{where}: {doc!r} is not one of {shape_name}'s values {s['enum']}")
        if "pattern" in s and _pattern(s["pattern"]).search(doc) is None:
            out.append(f"{where}: {doc!r} does not match {shape_name}'s pattern {s['pattern']!r}")
        return out
    if kind in {"integer", "long"}:
        if not isinstance(doc, int) or isinstance(doc, bool):
            return [f"{where}: expected an integer ({shape_name}), got {doc!r}"]
        return _limits(doc, s, where, "(value)")
    if kind in {"float", "double"}:
        if not _number(doc) or not math.isfinite(doc):
            return [f"{where}: expected a number ({shape_name}), got {doc!r}"]
        return _limits(doc, s, where, "(value)")
    if kind == "boolean":
        return [] if isinstance(doc, bool) else [f"{where}: expected a boolean, got {doc!r}"]
    if kind == "timestamp":
        # The JSON protocols send timestamps as epoch seconds.
        return [] if _number(doc) else [f"{where}: expected epoch seconds, got {doc!r}"]
    if kind == "blob":
        return [] if isinstance(doc, str) else [f"{where}: expected base64 text, got {doc!r}"]
    return [f"{where}: shape {shape_name} has type {kind}, which this checker does not know"]


def check(doc: Any, shape_name: str) -> None:
    found = problems(doc, shape_name)
    assert not found, "\n".join(found)


# --- recording what boto3 sends and receives -------------------------------------------------
@dataclass
class Exchange:
    operation: str
    request: dict[str, Any]
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)


class Wire:
    """Records each call a boto3 client makes: the request body as sent and the response body
    as the server wrote it (before botocore parses either)."""

    def __init__(self, client: Any) -> None:
        self.exchanges: list[Exchange] = []
        events = client.meta.events
        events.register("before-send.sagemaker", self._sent)
        events.register("after-call.sagemaker", self._answered)

    def _sent(self, request: Any, **_: Any) -> None:
        target = dict(request.headers).get("X-Amz-Target", b"")
        name = (target.decode() if isinstance(target, bytes) else target).partition(".")[2]
        body = request.body or b"{}"
        text = body.decode() if isinstance(body, bytes) else body
        self.exchanges.append(Exchange(name, json.loads(text or "{}")))

    def _answered(self, http_response: Any, model: Any, **_: Any) -> None:
        last = self.exchanges[-1]
        assert last.operation == model.name
        last.status = http_response.status_code
        raw = http_response.content or b"{}"
        last.response = json.loads(raw)

    def problems(self) -> list[str]:
        """What is wrong with any exchange so far, by botocore's model."""
        out: list[str] = []
        for i, ex in enumerate(self.exchanges):
            op = operation(ex.operation)
            label = f"#{i} {ex.operation}"
            # A request the model refuses may be refused (a test sends some on purpose); it
            # must not succeed.
            if "input" in op and ex.status == 200:
                out += [f"{label} request: {p}" for p in problems(ex.request, op["input"]["shape"])]
            if ex.status == 200:
                if "output" in op:
                    out += [
                        f"{label} response: {p}"
                        for p in problems(ex.response, op["output"]["shape"])
                    ]
                elif ex.response:
                    out.append(f"{label} response: the operation has no output, got {ex.response}")
                continue
            code = str(ex.response.get("__type", "")).rpartition("#")[2]
            modelled = {e["shape"] for e in op.get("errors", [])} | COMMON_ERRORS
            if code not in modelled:
                out.append(f"{label}: error {code!r} is not one the operation may answer")
            if not isinstance(ex.response.get("Message"), str):
                out.append(f"{label}: error without a Message: {ex.response}")
        return out

    def check(self) -> None:
        found = self.problems()
        assert not found, "\n".join(found)

    def last(self, operation_name: str) -> Exchange:
        return next(e for e in reversed(self.exchanges) if e.operation == operation_name)


# --- the server's copy of the members it may send or read ------------------------------------
GENERATED = Path(__file__).resolve().parents[2] / "orchestrator/api/aws/sagemaker_model.py"


def _ref(shape_name: str) -> str | None:
    """How a member's shape appears in the generated tables: the structure it is (a list of
    them in brackets, a map to them in braces), or None for a value."""
    s = shape(shape_name)
    if s["type"] == "structure":
        return shape_name
    if s["type"] == "list":
        inner = _ref(s["member"]["shape"])
        return None if inner is None else f"[{inner}]"
    if s["type"] == "map":
        inner = _ref(s["value"]["shape"])
        return None if inner is None else f"{{{inner}}}"
    return None


def generated_module(operations: list[str]) -> str:
    """``sagemaker_model.py`` for ``operations``: each one's request and response structure,
    and the members of every structure they reach."""
    import botocore

    ops: dict[str, tuple[str | None, str | None]] = {}
    structures: dict[str, dict[str, str | None]] = {}
    todo: list[str] = []
    for name in sorted(operations):
        op = operation(name)
        pair = (op.get("input", {}).get("shape"), op.get("output", {}).get("shape"))
        ops[name] = pair
        todo += [p for p in pair if p]
    while todo:
        name = todo.pop()
        if name in structures:
            continue
        members = {m: _ref(spec["shape"]) for m, spec in shape(name)["members"].items()}
        structures[name] = members
        todo += [r.strip("[]{}") for r in members.values() if r]
    q = json.dumps  # double quotes, as the formatter writes them
    lines = [
        '"""SageMaker\'s request and response members for the operations this server serves, as',
        f"botocore {botocore.__version__}'s service model ({model()['metadata']['apiVersion']})"
        " has them.",
        "",
        "Generated by ``python -m tests.aws.shapes`` (a test fails when it is stale); do not edit.",
        "The server keeps no botocore: ``sagemaker_wire`` sends only these members and tells a",
        "SageMaker field this server does not take from a misspelt one.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "# Operation -> (its request structure, its response structure).",
        "OPERATIONS: dict[str, tuple[str | None, str | None]] = {",
    ]
    for n, (i, o) in ops.items():
        pair = [q(x) if x else "None" for x in (i, o)]
        one = f"    {q(n)}: ({pair[0]}, {pair[1]}),"
        lines += (
            [one]
            if len(one) <= 100
            else [f"    {q(n)}: (", *(f"        {x}," for x in pair), "    ),"]
        )
    lines += [
        "}",
        "# Structure -> {member: the structure it holds ('[S]' a list of them, '{S}' a map to",
        "# them) or None for a value}.",
        "STRUCTURES: dict[str, dict[str, str | None]] = {",
    ]
    for name in sorted(structures):
        if not structures[name]:
            lines.append(f"    {q(name)}: {{}},")
            continue
        lines.append(f"    {q(name)}: {{")
        for m, r in structures[name].items():
            one = f"        {q(m)}: {q(r) if r else 'None'},"
            # A long line is wrapped as ruff format would (a parenthesized value).
            lines += (
                [one]
                if len(one) <= 100
                else [f"        {q(m)}: (", f"            {q(r)}", "        ),"]
            )
        lines.append("    },")
    lines += ["}", "# Structure -> its required members (where it has any).",
              "REQUIRED: dict[str, tuple[str, ...]] = {"]  # fmt: skip
    for name in sorted(structures):
        required = shape(name).get("required", [])
        if len(required) == 1:
            lines.append(f"    {q(name)}: ({q(required[0])},),")
        elif required:
            lines += [f"    {q(name)}: (", *(f"        {q(r)}," for r in required), "    ),"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def served_operations() -> list[str]:
    from orchestrator.api.aws.sagemaker import TABLE

    return [row.name for row in TABLE]


if __name__ == "__main__":
    GENERATED.write_text(generated_module(served_operations()))
    print(f"wrote {GENERATED}", file=sys.stderr)
