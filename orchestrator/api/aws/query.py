"""The AWS query protocol (CloudWatch's older one; STS and IAM speak it too): a form-encoded
``Action`` with members flattened (``Dimensions.member.1.Name=...``), answered in XML
(``<ActionResponse><ActionResult>...``; lists as ``member``, maps as ``entry``), errors as
``<ErrorResponse>``. Shape-free: the service's handlers take the members as strings and read
them as the types they need."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsResponse


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``A.member.1.B=x`` -> ``{"A": [{"B": "x"}]}``: the query protocol's members as JSON's."""
    root: dict[Any, Any] = {}
    for key, value in pairs:
        parts = key.split(".")
        path: list[str | int] = []
        i = 0
        while i < len(parts):
            if parts[i] in ("member", "entry") and i + 1 < len(parts) and parts[i + 1].isdigit():
                path.append(int(parts[i + 1]))
                i += 2
            else:
                path.append(parts[i])
                i += 1
        node = root
        for step in path[:-1]:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):
                raise AwsError(
                    "InvalidParameterValue",
                    f"The parameter {key} conflicts with another of the same name.",
                )
            node = child
        node[path[-1]] = value
    out = _lists(root)
    assert isinstance(out, dict)
    return out


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(isinstance(k, int) for k in node):
            return [_lists(node[k]) for k in sorted(node)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def to_xml(name: str, value: Any, maps: frozenset[str] = frozenset()) -> str:
    """``value`` as the query protocol's XML: lists of ``member``, ``maps`` of ``entry``."""
    if isinstance(value, dict):
        if name in maps:
            inner = "".join(
                f"<entry><key>{escape(str(k))}</key>{to_xml('value', v, maps)}</entry>"
                for k, v in value.items()
            )
        else:
            inner = "".join(to_xml(k, v, maps) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(to_xml("member", v, maps) for v in value)
    elif isinstance(value, datetime):
        inner = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    elif isinstance(value, float):
        inner = repr(value)
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def error_xml(error: AwsError, request_id: str, xmlns: str) -> AwsResponse:
    kind = "Receiver" if error.http_status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{xmlns}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(error.aws_code)}</Code><Message>{escape(error.message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return AwsResponse(error.http_status, [("content-type", "text/xml")], body.encode())
