"""Policy documents in IAM's shape, parsed and checked.

::

    {"Version": "2012-10-17",
     "Statement": [{"Sid": "...", "Effect": "Allow" | "Deny",
                    "Action" | "NotAction": "sagemaker:Describe*" | [...],
                    "Resource" | "NotResource": "arn:aws:sagemaker:*:*:endpoint/a*" | [...],
                    "Condition": {"StringEquals": {"aws:ResourceTag/team": "vision"}}}]}

Every refusal is a ``ValidationError`` whose field names the statement and the member
(``Statement[2].Action``) and whose message says what to write instead. Actions are checked
against the product's catalog (``actions``): an unknown service prefix, an unknown action, a
wildcard that matches nothing. Resources are ARN patterns (``*`` any run of characters,
``?`` one) of six colon-separated parts, or ``*``. Conditions: the String operators (and
their ``IfExists`` forms) and ``Null``, on ``aws:ResourceTag/KEY`` (``sagemaker:ResourceTag/KEY``
is the same key) and ``aws:username``. ``${aws:username}`` in a resource or a condition's value
is the caller's identity name.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ValidationError
from orchestrator.iam.actions import ALL, SERVICES, canonical

VERSIONS = ("2012-10-17", "2008-10-17")
STRING_OPERATORS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
)
OPERATORS = (*STRING_OPERATORS, "Null")
ARN_SERVICES = ("sagemaker", "s3", "logs", "cloudwatch", "iam")
_MEMBERS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
_EXAMPLE_ARN = "arn:aws:sagemaker:REGION:ACCOUNT:endpoint/NAME (or * for every resource)"


@dataclass(frozen=True)
class Condition:
    operator: str  # one of OPERATORS, without IfExists
    if_exists: bool
    key: str  # "aws:ResourceTag/KEY" (canonical) or "aws:username"
    values: tuple[str, ...]

    @property
    def tag(self) -> str | None:
        """The resource tag key the condition reads, or None."""
        prefix = "aws:ResourceTag/"
        return self.key[len(prefix) :] if self.key.startswith(prefix) else None


@dataclass(frozen=True)
class Statement:
    index: int
    effect: str  # "Allow" | "Deny"
    actions: frozenset[str]  # the catalog actions it applies to (NotAction expanded too)
    resources: tuple[str, ...]  # ARN patterns
    not_resource: bool
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Policy:
    name: str
    statements: tuple[Statement, ...]
    document: str  # canonical JSON (what is stored and sent to router workers)


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", field=field)


def _strings(value: Any, field: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise _bad(field, "must be a string or a non-empty list of strings")
    return list(items)


def _expand_action(pattern: str, field: str) -> set[str]:
    if pattern == "*":
        return set(ALL)
    service, sep, name = pattern.partition(":")
    if not sep or not name or not service:
        raise _bad(
            field,
            f"action {pattern!r} is not SERVICE:ACTION: write e.g. 'sagemaker:DescribeEndpoint' "
            "or 'sagemaker:Describe*'",
        )
    if not any(c in service for c in "*?") and service.lower() not in SERVICES:
        raise _bad(
            field,
            f"action {pattern!r}: unknown service prefix {service!r}; the prefixes are "
            f"{', '.join(sorted(SERVICES))}",
        )
    if not any(c in pattern for c in "*?"):
        found = canonical(pattern)
        if found is None:
            names = [f"{service.lower()}:{n}" for n in SERVICES[service.lower()]]
            close = difflib.get_close_matches(pattern, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise _bad(
                field,
                f"unknown action {pattern!r}{hint}; `orch users actions` lists every action",
            )
        return {found}
    lowered = pattern.lower()
    matched = {a for a in ALL if fnmatch.fnmatchcase(a.lower(), lowered)}
    if not matched:
        raise _bad(field, f"action pattern {pattern!r} matches no action of this product")
    return matched


def check_arn(pattern: str, field: str) -> str:
    """``pattern`` if it is ``*`` or a well-formed ARN pattern, else a ValidationError."""
    if pattern == "*":
        return pattern
    parts = pattern.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[5]:
        raise _bad(field, f"malformed ARN {pattern!r}: expected {_EXAMPLE_ARN}")
    partition, service = parts[1], parts[2]
    if partition not in ("aws", "*"):
        raise _bad(field, f"ARN {pattern!r}: partition {partition!r} is not 'aws'")
    if not any(c in service for c in "*?") and service not in ARN_SERVICES:
        raise _bad(
            field,
            f"ARN {pattern!r}: unknown service {service!r}; resources here are of "
            f"{', '.join(ARN_SERVICES)}",
        )
    return pattern


def _condition_key(key: str, field: str) -> str:
    service, _, rest = key.partition(":")
    if service.lower() in ("aws", "sagemaker") and rest.lower().startswith("resourcetag/"):
        tag = rest[len("ResourceTag/") :]
        if not tag:
            raise _bad(field, f"condition key {key!r} names no tag: write aws:ResourceTag/KEY")
        return f"aws:ResourceTag/{tag}"
    if key.lower() == "aws:username":
        return "aws:username"
    raise _bad(
        field,
        f"unsupported condition key {key!r}: use aws:ResourceTag/KEY (or "
        "sagemaker:ResourceTag/KEY) or aws:username",
    )


def _conditions(value: Any, field: str) -> tuple[Condition, ...]:
    if not isinstance(value, dict):
        raise _bad(field, 'must be an object: {"StringEquals": {"aws:ResourceTag/K": "V"}}')
    out: list[Condition] = []
    for op, block in value.items():
        base, if_exists = (op[: -len("IfExists")], True) if op.endswith("IfExists") else (op, False)
        if base not in OPERATORS or (base == "Null" and if_exists):
            raise _bad(
                f"{field}.{op}",
                f"unknown condition operator {op!r}; use one of {', '.join(OPERATORS)} "
                "(the String ones may end in IfExists)",
            )
        if not isinstance(block, dict) or not block:
            raise _bad(f"{field}.{op}", 'must be an object of key: value(s), e.g. {"K": "V"}')
        for key, raw in block.items():
            sub = f"{field}.{op}.{key}"
            values = _strings(raw, sub)
            if base == "Null" and any(v not in ("true", "false") for v in values):
                raise _bad(sub, "Null takes 'true' (the key is absent) or 'false'")
            out.append(Condition(base, if_exists, _condition_key(key, sub), tuple(values)))
    return tuple(out)


def _statement(raw: Any, index: int, where: str) -> Statement:
    field = f"{where}Statement[{index}]"
    if not isinstance(raw, dict):
        raise _bad(field, "must be an object with Effect, Action and Resource")
    unknown = sorted(set(raw) - _MEMBERS)
    if unknown:
        raise _bad(field, f"unknown members {unknown}; a statement has {sorted(_MEMBERS)}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _bad(f"{field}.Effect", f"must be 'Allow' or 'Deny', not {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise _bad(f"{field}.Action", "give exactly one of Action and NotAction")
    if ("Resource" in raw) == ("NotResource" in raw):
        raise _bad(f"{field}.Resource", "give exactly one of Resource and NotResource")
    member = "Action" if "Action" in raw else "NotAction"
    named: set[str] = set()
    for i, p in enumerate(_strings(raw[member], f"{field}.{member}")):
        named |= _expand_action(p, f"{field}.{member}[{i}]")
    actions = frozenset(named) if member == "Action" else frozenset(set(ALL) - named)
    rmember = "Resource" if "Resource" in raw else "NotResource"
    resources = tuple(
        check_arn(p, f"{field}.{rmember}[{i}]")
        for i, p in enumerate(_strings(raw[rmember], f"{field}.{rmember}"))
    )
    conditions = _conditions(raw["Condition"], f"{field}.Condition") if "Condition" in raw else ()
    return Statement(index, effect, actions, resources, rmember == "NotResource", conditions)


def parse_policy(document: Any, *, name: str = "inline", where: str = "") -> Policy:
    """A checked ``Policy`` from a document (a dict, or its JSON text). ``where`` prefixes
    every field named in an error (``PolicyDocument.``)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as e:
            raise _bad(where.rstrip(".") or "PolicyDocument", f"is not JSON: {e}") from e
    if not isinstance(document, dict):
        raise _bad(where.rstrip(".") or "PolicyDocument", "must be an object with Statement")
    version = document.get("Version", VERSIONS[0])
    if version not in VERSIONS:
        raise _bad(f"{where}Version", f"must be '2012-10-17', not {version!r}")
    unknown = sorted(set(document) - {"Version", "Id", "Statement"})
    if unknown:
        raise _bad(where.rstrip(".") or "PolicyDocument", f"unknown members {unknown}")
    raw = document.get("Statement")
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise _bad(f"{where}Statement", "must be a statement or a non-empty list of them")
    statements = tuple(_statement(s, i, where) for i, s in enumerate(items))
    canonical_doc = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return Policy(name, statements, canonical_doc)
