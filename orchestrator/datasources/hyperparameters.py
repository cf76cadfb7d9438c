"""The snapshot job's hyperparameters, both ways. Stdlib only: the control plane imports it.

A SageMaker hyperparameter value is at most 2500 characters, so a longer query travels in
pieces ``query.0``, ``query.1``, ... joined in order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from orchestrator.errors import ValidationError

MAX_VALUE_CHARS = 2500
SOURCES = ("sql", "s3")
ENGINES = ("postgresql", "mysql")
FORMATS = ("CSV", "Parquet")


@dataclass(frozen=True)
class SnapshotParams:
    source: Literal["sql", "s3"]
    data_source: str
    version: int
    target: str | None = None
    compute_statistics: bool = True
    # sql
    engine: Literal["postgresql", "mysql"] | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    connect_timeout: int = 10
    query: str | None = None
    # s3
    format: Literal["CSV", "Parquet"] | None = None


def _unwrap(value: object) -> str:
    """One pair of JSON quotes stripped (the SageMaker SDK sends ``'"abc"'``)."""
    text = str(value)
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text[1:-1]
        return decoded if isinstance(decoded, str) else text[1:-1]
    return text


def _bad(key: str, message: str) -> ValidationError:
    return ValidationError(
        f"snapshot hyperparameter {key}: {message}", field=f"HyperParameters.{key}"
    )


def _required(raw: Mapping[str, str], key: str) -> str:
    if key not in raw or not _unwrap(raw[key]).strip():
        raise _bad(key, "is required and was not given")
    return _unwrap(raw[key]).strip()


def _int(raw: Mapping[str, str], key: str, default: int | None = None, low: int = 0) -> int:
    if key not in raw and default is not None:
        return default
    text = _required(raw, key)
    try:
        value = int(text)
    except ValueError:
        raise _bad(key, f"{text!r} is not an integer; give a whole number") from None
    if value < low:
        raise _bad(key, f"{value} is below {low}; give at least {low}")
    return value


def _choice(raw: Mapping[str, str], key: str, choices: tuple[str, ...]) -> str:
    text = _required(raw, key)
    if text not in choices:
        raise _bad(key, f"{text!r} is not one of {', '.join(choices)}")
    return text


def _query(raw: Mapping[str, str]) -> str:
    if "query" in raw:
        query = _unwrap(raw["query"])
    else:
        pieces: list[str] = []
        while f"query.{len(pieces)}" in raw:
            pieces.append(_unwrap(raw[f"query.{len(pieces)}"]))
        stray = sorted(
            k
            for k in raw
            if k.startswith("query.") and k[6:] not in {str(i) for i in range(len(pieces))}
        )
        if stray:
            raise _bad(
                stray[0],
                f"query pieces must be numbered from query.0 without gaps "
                f"(found query.0 to query.{len(pieces) - 1})",
            )
        query = "".join(pieces)
    if not query.strip():
        raise _bad(
            "query",
            "is required for a sql source: give the SELECT to snapshot "
            "(or query.0, query.1, ... for a long one)",
        )
    return query


def parse_snapshot_hyperparameters(raw: Mapping[str, str]) -> SnapshotParams:
    """The parameters of a snapshot job, checked; a bad key is a ValidationError naming it."""
    source = _choice(raw, "source", SOURCES)
    data_source = _required(raw, "data_source")
    version = _int(raw, "version", low=1)
    target = _unwrap(raw["target"]).strip() if "target" in raw else ""
    stats_text = _unwrap(raw.get("compute_statistics", "true")).strip().lower()
    if stats_text not in ("true", "false"):
        raise _bad("compute_statistics", f"{stats_text!r} is not true or false")
    common = SnapshotParams(
        source="s3",
        data_source=data_source,
        version=version,
        target=target or None,
        compute_statistics=stats_text == "true",
    )
    if source == "s3":
        return replace(
            common, format="CSV" if _choice(raw, "format", FORMATS) == "CSV" else "Parquet"
        )
    engine = _choice(raw, "engine", ENGINES)
    port = _int(raw, "port", low=1)
    if port > 65535:
        raise _bad("port", f"{port} is above 65535")
    return replace(
        common,
        source="sql",
        engine="postgresql" if engine == "postgresql" else "mysql",
        host=_required(raw, "host"),
        port=port,
        database=_required(raw, "database"),
        connect_timeout=_int(raw, "connect_timeout", default=10, low=1),
        query=_query(raw),
    )


def snapshot_hyperparameters(params: SnapshotParams) -> dict[str, str]:
    """The hyperparameters that ``parse_snapshot_hyperparameters`` reads back as ``params``."""
    out = {
        "source": params.source,
        "data_source": params.data_source,
        "version": str(params.version),
        "compute_statistics": "true" if params.compute_statistics else "false",
    }
    if params.target:
        out["target"] = params.target
    if params.source == "s3":
        out["format"] = params.format or "CSV"
        return out
    out.update(
        engine=str(params.engine),
        host=str(params.host),
        port=str(params.port),
        database=str(params.database),
        connect_timeout=str(params.connect_timeout),
    )
    query = params.query or ""
    if len(query) <= MAX_VALUE_CHARS:
        out["query"] = query
    else:
        for i in range(0, len(query), MAX_VALUE_CHARS):
            out[f"query.{i // MAX_VALUE_CHARS}"] = query[i : i + MAX_VALUE_CHARS]
    return out
