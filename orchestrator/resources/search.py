"""SageMaker's ``Search``: the request in SageMaker's shape, its checks, and what it means. Pure.

A request (``SearchRequest``) is checked against the properties of its resource kind
(``PROPERTIES``) and compiled (``compile_search``) into a small tree of typed tests
(``Test``, ``AllOf``, ``AnyOf``, ``Nested``) and a sort (``Sort``). Two things run that tree:
the SQL store compiles it to one query (``orchestrator.store.search_sql``), and ``matches``
here evaluates it over one resource's properties (``properties_of``) for a source that cannot
run SQL (the custom resources on Kubernetes). Both read a resource's properties through
``properties_of``, the SQL store when it writes its index tables, so both give the same
answers.

Values are typed as SageMaker types them: a date is ISO-8601 or epoch seconds; a metric is a
number; a hyperparameter or a tag is compared as a number when both it and the filter's value
are numbers, as a string otherwise; ``In`` takes a comma-separated list.
"""

from __future__ import annotations

import base64
import difflib
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orchestrator.errors import ValidationError

MAX_RESULTS = 100
DEFAULT_RESULTS = 10
MAX_DEPTH = 5  # nesting of SubExpressions (SageMaker's limit is not published; ours is this)
TUNING_JOB_TAG = "orchestrator:tuning-job"


# --- the request, in SageMaker's shape --------------------------------------------------------
class FilterOperator(StrEnum):
    EQUALS = "Equals"
    NOT_EQUALS = "NotEquals"
    GREATER_THAN = "GreaterThan"
    GREATER_THAN_OR_EQUAL_TO = "GreaterThanOrEqualTo"
    LESS_THAN = "LessThan"
    LESS_THAN_OR_EQUAL_TO = "LessThanOrEqualTo"
    CONTAINS = "Contains"
    EXISTS = "Exists"
    NOT_EXISTS = "NotExists"
    IN = "In"


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


PropertyName = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class Filter(_Shape):
    Name: PropertyName
    Operator: FilterOperator | None = None
    Value: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None


class NestedFilters(_Shape):
    NestedPropertyName: PropertyName
    Filters: Annotated[list[Filter], Field(min_length=1, max_length=20)]


_NestedFilters = NestedFilters


class SearchExpression(_Shape):
    Filters: Annotated[list[Filter], Field(min_length=1, max_length=20)] | None = None
    NestedFilters: Annotated[list[_NestedFilters], Field(min_length=1, max_length=20)] | None = None
    SubExpressions: Annotated[list[SearchExpression], Field(min_length=1, max_length=20)] | None = (
        None
    )
    Operator: Literal["And", "Or"] = "And"


_SearchExpression = SearchExpression


class SearchRequest(_Shape):
    Resource: str
    SearchExpression: _SearchExpression | None = None
    SortBy: PropertyName | None = None
    SortOrder: Literal["Ascending", "Descending"] | None = None
    NextToken: Annotated[str, StringConstraints(max_length=8192)] | None = None
    MaxResults: int | None = None


# --- the properties of each kind --------------------------------------------------------------
# Where a property lives: a column every record has, one scalar field of the document, or one
# key of a family (``HyperParameters.lr``, ``Metrics.validation:accuracy``, ``Tags.team``).
Column = Literal["name", "phase", "created", "updated"]
ValueType = Literal["string", "number", "date", "free"]
Family = Literal["hyperparameters", "metrics", "tags"]
FAMILY_PREFIX: dict[str, Family] = {
    "HyperParameters": "hyperparameters",
    "Metrics": "metrics",
    "Tags": "tags",
}


@dataclass(frozen=True)
class Prop:
    """One searchable property: where it lives (``column``, a ``field`` path, or a family
    ``key``) and how its values compare."""

    name: str
    type: ValueType
    column: Column | None = None
    family: Family | Literal["fields"] | None = None
    key: str = ""
    arn: bool = False  # the ARN property: compared on the name it ends in


@dataclass(frozen=True)
class Searchable:
    """What Search knows of one kind: its name and status properties, its document fields."""

    kind: str
    name_field: str
    phase_field: str
    arn_field: str
    fields: Mapping[str, ValueType]
    families: tuple[Family, ...]
    # NestedPropertyName -> (the family it is, the member names of its items).
    nested: Mapping[str, tuple[Family, str, str]] = field(default_factory=dict)

    def properties(self) -> list[str]:
        fixed = [self.name_field, self.arn_field, self.phase_field, "CreationTime"]
        fixed += ["LastModifiedTime", *self.fields]
        return fixed + [f"{p}.<key>" for p, f in FAMILY_PREFIX.items() if f in self.families]


_TRAINING_FIELDS: dict[str, ValueType] = {
    "SecondaryStatus": "string",
    "FailureReason": "string",
    "TrainingStartTime": "date",
    "TrainingEndTime": "date",
    "TrainingTimeInSeconds": "number",
    "BillableTimeInSeconds": "number",
    "RoleArn": "string",
    "AlgorithmSpecification.TrainingImage": "string",
    "AlgorithmSpecification.AlgorithmName": "string",
    "AlgorithmSpecification.TrainingInputMode": "string",
    "ResourceConfig.InstanceType": "string",
    "ResourceConfig.InstanceCount": "number",
    "ResourceConfig.VolumeSizeInGB": "number",
    "StoppingCondition.MaxRuntimeInSeconds": "number",
    "OutputDataConfig.S3OutputPath": "string",
    "ModelArtifacts.S3ModelArtifacts": "string",
    # The tuning job a trial belongs to (from its tag ``orchestrator:tuning-job``).
    "TuningJobName": "string",
}
_TUNING_FIELDS: dict[str, ValueType] = {
    "FailureReason": "string",
    "HyperParameterTuningEndTime": "date",
    "HyperParameterTuningJobConfig.Strategy": "string",
    "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.MetricName": "string",
    "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.Type": "string",
    "HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs": "number",
    "HyperParameterTuningJobConfig.ResourceLimits.MaxParallelTrainingJobs": "number",
    "HyperParameterTuningJobConfig.TrainingJobEarlyStoppingType": "string",
    "BestTrainingJob.TrainingJobName": "string",
    "BestTrainingJob.TrainingJobStatus": "string",
    "BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric.MetricName": "string",
    "BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric.Value": "number",
    "TrainingJobStatusCounters.Completed": "number",
    "TrainingJobStatusCounters.InProgress": "number",
    "TrainingJobStatusCounters.Stopped": "number",
    "TrainingJobStatusCounters.RetryableError": "number",
    "TrainingJobStatusCounters.NonRetryableError": "number",
}
_TAGS_NESTED: dict[str, tuple[Family, str, str]] = {"Tags": ("tags", "Key", "Value")}

SEARCHABLE: dict[str, Searchable] = {
    s.kind: s
    for s in (
        Searchable(
            kind="TrainingJob",
            name_field="TrainingJobName",
            phase_field="TrainingJobStatus",
            arn_field="TrainingJobArn",
            fields=_TRAINING_FIELDS,
            families=("hyperparameters", "metrics", "tags"),
            nested={**_TAGS_NESTED, "FinalMetricDataList": ("metrics", "MetricName", "Value")},
        ),
        Searchable(
            kind="HyperParameterTuningJob",
            name_field="HyperParameterTuningJobName",
            phase_field="HyperParameterTuningJobStatus",
            arn_field="HyperParameterTuningJobArn",
            fields=_TUNING_FIELDS,
            families=("tags",),
            nested=_TAGS_NESTED,
        ),
    )
}


def searchable(kind: str, known_kinds: Sequence[str]) -> Searchable:
    """The kind's search properties; a 400 for a kind Search does not cover (or that this
    server does not have yet)."""
    s = SEARCHABLE.get(kind)
    if s is None or kind not in known_kinds:
        ready = [k for k in SEARCHABLE if k in known_kinds]
        extra = " (it is not a resource kind of this server yet)" if s is not None else ""
        raise ValidationError(
            f"Resource: {kind!r} is not searchable here{extra}; Resource must be one of "
            f"{', '.join(ready)}",
            field="Resource",
        )
    return s


def resolve(s: Searchable, name: str, where: str) -> Prop:
    """The property ``name`` of kind ``s``, or a 400 that names it and the close names."""
    columns: dict[str, tuple[Column, ValueType]] = {
        s.name_field: ("name", "string"),
        s.phase_field: ("phase", "string"),
        "CreationTime": ("created", "date"),
        "LastModifiedTime": ("updated", "date"),
    }
    if name in columns:
        column, vtype = columns[name]
        return Prop(name, vtype, column=column)
    if name == s.arn_field:
        return Prop(name, "string", column="name", arn=True)
    if name in s.fields:
        return Prop(name, s.fields[name], family="fields", key=name)
    prefix, dot, key = name.partition(".")
    family = FAMILY_PREFIX.get(prefix)
    if dot and key and family in s.families:
        assert family is not None
        return Prop(name, "number" if family == "metrics" else "free", family=family, key=key)
    known = s.properties()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValidationError(
        f"{where}: {name!r} is not a property of {s.kind}{hint} Properties: {', '.join(known)}",
        field=where,
    )


# --- what a request compiles to ---------------------------------------------------------------
@dataclass(frozen=True)
class Operand:
    """A filter's value, typed: ``text`` as given (for string comparison), ``number`` when it
    reads as one (epoch seconds for a date)."""

    text: str
    number: float | None


@dataclass(frozen=True)
class Test:
    prop: Prop
    op: FilterOperator
    values: tuple[Operand, ...] = ()  # one, several for In, none for Exists/NotExists
    on: Literal["value", "key"] = "value"  # inside a nested filter: the item's key or value


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Nested:
    """One item of a list property (a tag, a final metric) meets every test."""

    family: Family
    tests: tuple[Test, ...]


Condition = Test | AllOf | AnyOf | Nested


@dataclass(frozen=True)
class Sort:
    prop: Prop
    ascending: bool


@dataclass(frozen=True)
class CompiledSearch:
    kind: str
    condition: Condition | None
    sort: Sort
    limit: int
    after: SortKey | None  # the last key of the previous page


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_date(text: str) -> float | None:
    """ISO-8601 (a naive time is UTC) or epoch seconds, as epoch seconds."""
    number = _number(text)
    if number is not None:
        return number
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _operand(prop: Prop, text: str, where: str) -> Operand:
    if prop.type == "date":
        number = parse_date(text)
        if number is None:
            raise ValidationError(
                f"{where}: {prop.name} is a date; give ISO-8601 (2024-05-01T12:00:00Z) or epoch "
                f"seconds, not {text!r}",
                field=where,
            )
        return Operand(text, number)
    number = _number(text)
    if prop.type == "number" and number is None:
        raise ValidationError(
            f"{where}: {prop.name} is a number; give a number, not {text!r}", field=where
        )
    if prop.arn:
        text = text.rpartition("/")[2].lower()
    if prop.type == "string":
        number = None
    return Operand(text, number)


_ORDERED = {
    FilterOperator.GREATER_THAN,
    FilterOperator.GREATER_THAN_OR_EQUAL_TO,
    FilterOperator.LESS_THAN,
    FilterOperator.LESS_THAN_OR_EQUAL_TO,
}


def _test(f: Filter, prop: Prop, where: str, on: Literal["value", "key"] = "value") -> Test:
    op = f.Operator or FilterOperator.EQUALS
    if op in {FilterOperator.EXISTS, FilterOperator.NOT_EXISTS}:
        if f.Value is not None:
            raise ValidationError(
                f"{where}.Value: {op.value} takes no Value; leave it out", field=f"{where}.Value"
            )
        return Test(prop, op, (), on)
    if f.Value is None:
        raise ValidationError(
            f"{where}.Value: {op.value} needs a Value (only Exists and NotExists take none)",
            field=f"{where}.Value",
        )
    vwhere = f"{where}.Value"
    if op == FilterOperator.CONTAINS and prop.type in {"number", "date"}:
        raise ValidationError(
            f"{where}.Operator: Contains is for strings; {prop.name} is a {prop.type}",
            field=f"{where}.Operator",
        )
    if op == FilterOperator.IN:
        items = [v.strip() for v in f.Value.split(",") if v.strip()]
        if not items:
            raise ValidationError(f"{vwhere}: In takes a comma-separated list", field=vwhere)
        return Test(prop, op, tuple(_operand(prop, v, vwhere) for v in items), on)
    return Test(prop, op, (_operand(prop, f.Value, vwhere),), on)


def _expression(s: Searchable, e: SearchExpression, where: str, depth: int) -> Condition:
    if depth > MAX_DEPTH:
        raise ValidationError(
            f"{where}: SubExpressions nest {depth} deep; at most {MAX_DEPTH}", field=where
        )
    parts: list[Condition] = []
    for i, f in enumerate(e.Filters or []):
        w = f"{where}.Filters[{i}]"
        parts.append(_test(f, resolve(s, f.Name, f"{w}.Name"), w))
    for i, n in enumerate(e.NestedFilters or []):
        parts.append(_nested(s, n, f"{where}.NestedFilters[{i}]"))
    for i, sub in enumerate(e.SubExpressions or []):
        parts.append(_expression(s, sub, f"{where}.SubExpressions[{i}]", depth + 1))
    if not parts:
        raise ValidationError(
            f"{where}: give at least one of Filters, NestedFilters or SubExpressions", field=where
        )
    if len(parts) > 20:
        raise ValidationError(
            f"{where}: {len(parts)} filters, nested filters and subexpressions; at most 20 in "
            "one SearchExpression",
            field=where,
        )
    return AllOf(tuple(parts)) if e.Operator == "And" else AnyOf(tuple(parts))


def _nested(s: Searchable, n: NestedFilters, where: str) -> Nested:
    if n.NestedPropertyName not in s.nested:
        raise ValidationError(
            f"{where}.NestedPropertyName: {n.NestedPropertyName!r} is not a list property of "
            f"{s.kind}; one of {', '.join(s.nested)}",
            field=f"{where}.NestedPropertyName",
        )
    family, key_member, value_member = s.nested[n.NestedPropertyName]
    tests = []
    for i, f in enumerate(n.Filters):
        w = f"{where}.Filters[{i}]"
        member = f.Name.removeprefix(n.NestedPropertyName + ".")
        if member == key_member:
            prop = Prop(f.Name, "string", family=family)
            tests.append(_test(f, prop, w, "key"))
        elif member == value_member:
            prop = Prop(f.Name, "number" if family == "metrics" else "free", family=family)
            tests.append(_test(f, prop, w, "value"))
        else:
            allowed = [f"{n.NestedPropertyName}.{m}" for m in (key_member, value_member)]
            raise ValidationError(
                f"{w}.Name: {f.Name!r} is not a member of {n.NestedPropertyName}; one of "
                f"{', '.join(allowed)}",
                field=f"{w}.Name",
            )
    return Nested(family, tuple(tests))


def compile_search(req: SearchRequest, known_kinds: Sequence[str]) -> CompiledSearch:
    """The request checked and typed; every bad part is a 400 that names it."""
    s = searchable(req.Resource, known_kinds)
    limit = DEFAULT_RESULTS if req.MaxResults is None else req.MaxResults
    if not 1 <= limit <= MAX_RESULTS:
        raise ValidationError(
            f"MaxResults must be between 1 and {MAX_RESULTS}, not {limit}", field="MaxResults"
        )
    condition = None
    if req.SearchExpression is not None:
        condition = _expression(s, req.SearchExpression, "SearchExpression", 1)
    sort_prop = resolve(s, req.SortBy or "CreationTime", "SortBy")
    sort = Sort(sort_prop, ascending=req.SortOrder == "Ascending")
    after = decode_token(req.NextToken, sort) if req.NextToken else None
    return CompiledSearch(s.kind, condition, sort, limit, after)


# --- one resource's properties ----------------------------------------------------------------
@dataclass
class Properties:
    """What Search sees of one resource: its columns, its scalar fields (text and, for numbers
    and dates, a number), and its families' keys."""

    name: str
    phase: str
    created: float
    updated: float
    fields: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    hyperparameters: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    metrics: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    tags: dict[str, tuple[str, float | None]] = field(default_factory=dict)

    def family(self, name: Family | Literal["fields"]) -> dict[str, tuple[str, float | None]]:
        out: dict[str, tuple[str, float | None]] = getattr(self, name)
        return out


def _lookup(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


TEXT_LIMIT = 1024  # what the index keeps of a long value (a FailureReason)


def _typed(value: Any, vtype: ValueType) -> tuple[str, float | None] | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
        return when.isoformat(), when.timestamp()
    text = (str(value).lower() if isinstance(value, bool) else str(value))[:TEXT_LIMIT]
    if vtype == "date":
        return text, parse_date(text)
    if vtype == "number":
        number = _number(text)
        return None if number is None else (text, number)
    return text, (None if vtype == "string" else _number(text))


def properties_of(
    kind: str,
    name: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    phase: str,
    created: float,
    updated: float,
) -> Properties | None:
    """A resource's searchable properties (None for a kind Search does not cover)."""
    s = SEARCHABLE.get(kind)
    if s is None:
        return None
    doc = {**spec, **status}
    tags = {
        str(t.get("Key")): str(t.get("Value") or "")
        for t in spec.get("Tags") or []
        if isinstance(t, Mapping) and t.get("Key")
    }
    if s.kind == "TrainingJob" and TUNING_JOB_TAG in tags:
        doc["TuningJobName"] = tags[TUNING_JOB_TAG]
    out = Properties(name=name, phase=phase, created=created, updated=updated)
    for path, vtype in s.fields.items():
        typed = _typed(_lookup(doc, path), vtype)
        if typed is not None:
            out.fields[path] = typed
    if "tags" in s.families:
        out.tags = {k: (v, _number(v)) for k, v in tags.items()}
    if "hyperparameters" in s.families:
        for k, v in (spec.get("HyperParameters") or {}).items():
            out.hyperparameters[str(k)] = (str(v)[:TEXT_LIMIT], _number(str(v)))
    if "metrics" in s.families:
        for m in status.get("FinalMetricDataList") or []:
            number = _number(str(m.get("Value"))) if isinstance(m, Mapping) else None
            if number is not None:
                out.metrics[str(m["MetricName"])] = (str(m.get("Value")), number)
    return out


# --- the in-memory evaluator ------------------------------------------------------------------
def _column(p: Properties, column: Column) -> tuple[str, float | None]:
    if column == "name":
        return p.name, None
    if column == "phase":
        return p.phase, None
    when = p.created if column == "created" else p.updated
    return datetime.fromtimestamp(when, tz=UTC).isoformat(), when


def value_of(p: Properties, prop: Prop) -> tuple[str, float | None] | None:
    if prop.arn:  # an ARN ends in the name, lower-cased
        return p.name.lower(), None
    if prop.column is not None:
        return _column(p, prop.column)
    assert prop.family is not None
    return p.family(prop.family).get(prop.key)


def _compare(op: FilterOperator, got: tuple[str, float | None], want: Operand) -> bool:
    text, number = got
    a: Any
    b: Any
    if want.number is not None and number is not None:
        a, b = number, want.number
    else:
        a, b = text, want.text
    if op == FilterOperator.EQUALS:
        return bool(a == b)
    if op == FilterOperator.CONTAINS:
        return want.text in text
    if op == FilterOperator.GREATER_THAN:
        return bool(a > b)
    if op == FilterOperator.GREATER_THAN_OR_EQUAL_TO:
        return bool(a >= b)
    if op == FilterOperator.LESS_THAN:
        return bool(a < b)
    assert op == FilterOperator.LESS_THAN_OR_EQUAL_TO
    return bool(a <= b)


def _holds(
    op: FilterOperator, got: tuple[str, float | None] | None, values: Sequence[Operand]
) -> bool:
    """Whether a property's value (None: the resource lacks it) meets one test."""
    if op == FilterOperator.EXISTS:
        return got is not None
    if op == FilterOperator.NOT_EXISTS:
        return got is None
    if op == FilterOperator.NOT_EQUALS:
        return not _holds(FilterOperator.EQUALS, got, values)
    if got is None:
        return False
    if op == FilterOperator.IN:
        return any(_compare(FilterOperator.EQUALS, got, v) for v in values)
    return _compare(op, got, values[0])


def matches(condition: Condition | None, p: Properties) -> bool:
    if condition is None:
        return True
    if isinstance(condition, AllOf):
        return all(matches(c, p) for c in condition.parts)
    if isinstance(condition, AnyOf):
        return any(matches(c, p) for c in condition.parts)
    if isinstance(condition, Nested):
        items = p.family(condition.family)
        return any(
            all(_holds(t.op, (k, None) if t.on == "key" else v, t.values) for t in condition.tests)
            for k, v in items.items()
        )
    return _holds(condition.op, value_of(p, condition.prop), condition.values)


# --- order and pages --------------------------------------------------------------------------
# A record's place: (rank, number, text, name). Rank 0: the sort property is a number; 1: a
# string; 2: missing (last in either order). Numbers sort as numbers, strings as strings.
SortKey = tuple[int, float, str, str]


def sort_key(p: Properties, sort: Sort) -> SortKey:
    got = value_of(p, sort.prop)
    if got is None:
        return (2, 0.0, "", p.name)
    text, number = got
    if sort.prop.type == "string" or number is None:
        return (1, 0.0, text, p.name)
    return (0, number, "" if sort.prop.type == "date" else text, p.name)


def precedes(a: SortKey, b: SortKey, ascending: bool) -> bool:
    """Whether ``a`` comes before ``b`` (rank always ascending, the rest in the order)."""
    if a[0] != b[0]:
        return a[0] < b[0]
    return a[1:] < b[1:] if ascending else a[1:] > b[1:]


def encode_token(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_token(token: str, sort: Sort) -> SortKey:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(raw, list) or len(raw) != 4 or raw[0] not in (0, 1, 2):
            raise ValueError("not a search key")
        return (int(raw[0]), float(raw[1]), str(raw[2]), str(raw[3]))
    except Exception as e:
        raise ValidationError(
            "NextToken is not one this server issued for this search; pass the NextToken of "
            "the previous page unchanged (with the same SearchExpression and SortBy), or omit "
            "it for the first page",
            field="NextToken",
        ) from e


def search_in_memory(
    query: CompiledSearch, items: Sequence[tuple[Properties, Any]]
) -> tuple[list[Any], str | None]:
    """One page of ``items`` (each a resource's properties and what to return for it), for a
    source that cannot run SQL: the same order and tokens as the SQL store."""
    hits = [(sort_key(p, query.sort), item) for p, item in items if matches(query.condition, p)]
    asc = query.sort.ascending

    def order(a: tuple[SortKey, Any], b: tuple[SortKey, Any]) -> int:
        if a[0] == b[0]:
            return 0
        return -1 if precedes(a[0], b[0], asc) else 1

    hits.sort(key=functools.cmp_to_key(order))
    after = query.after
    if after is not None:
        hits = [h for h in hits if precedes(after, h[0], asc)]
    page = hits[: query.limit]
    token = encode_token(page[-1][0]) if len(hits) > query.limit else None
    return [item for _, item in page], token
