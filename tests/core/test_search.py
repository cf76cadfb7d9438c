"""Search: the SQL query and the in-memory evaluator agree (SQLite and PostgreSQL), the index
follows every write, old stores are backfilled, bad input is a 400 naming it, the readable
language, and the REST route through the client."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from test_store import pg_url  # noqa: F401 - the PostgreSQL fixture

from orchestrator.api import search as searching
from orchestrator.errors import ValidationError
from orchestrator.resources.search import SearchRequest, compile_search
from orchestrator.resources.search_syntax import parse_expression
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.store import ListFilter, Record, StateStore
from orchestrator.store.tables import SEARCH_TABLES
from orchestrator.testing import local_control_plane, training_job_spec

KINDS = ["TrainingJob", "Model"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        s = StateStore(request.getfixturevalue("pg_url"))
        with s.engine.begin() as conn:
            for table in ["resources", *(t.name for t in SEARCH_TABLES.values())]:
                conn.execute(text(f"DELETE FROM {table}"))
    yield s
    s.close()


def _job(i: int, rnd: random.Random) -> tuple[dict[str, Any], dict[str, Any], str]:
    spec = CreateTrainingJobRequest.model_validate(training_job_spec(
        f"Job-{i:02d}",
        AlgorithmSpecification={"TrainingImage": "linear-learner", "TrainingInputMode": "File"},
        HyperParameters={"lr": rnd.choice(["0.1", "0.10", "0.01", "x"]), "opt": rnd.choice(["adam", "sgd"])},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": rnd.choice([1, 2])},
        Tags=[{"Key": "team", "Value": rnd.choice(["a", "b", "B"])}] if i % 3 else [],
    )).model_dump(mode="json")  # fmt: skip
    metrics = [{"MetricName": "acc", "Value": rnd.random(), "Timestamp": "2024-01-01T00:00:00Z"}]
    if i % 5 == 0:
        metrics.append({"MetricName": "loss", "Value": rnd.random(), "Timestamp": "2024-01-01T00:00:00Z"})  # fmt: skip
    status = {
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "TrainingStartTime": f"2024-01-01T00:00:{i:02d}Z",
        "FinalMetricDataList": metrics if i % 4 else [],
    }
    return spec, status, rnd.choice(["Completed", "Failed", "Stopped"])


def _fill(store: StateStore, n: int = 30) -> None:
    rnd = random.Random(7)
    for i in range(n):
        spec, status, phase = _job(i, rnd)
        store.create(
            "TrainingJob", spec["TrainingJobName"], spec, status, phase=phase, active=False,
            now=datetime.fromtimestamp(1_700_000_000 + (i * 7) % 13, tz=UTC),
        )  # fmt: skip


class _Listing:
    """A source that can only list (as the custom resources on Kubernetes)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def list(self, kind: str, page: ListFilter) -> tuple[list[Record], str | None]:
        return self.store.list(kind, page)


def _all_pages(source: Any, req: SearchRequest) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        query = compile_search(req.model_copy(update={"NextToken": token}), KINDS)
        page, token = searching.run(source, query)
        names += [r.name for r in page]
        if not token:
            return names


EXPRESSIONS: list[dict[str, Any]] = [
    {"Filters": [{"Name": "Metrics.acc", "Operator": "GreaterThan", "Value": "0.5"}]},
    {"Filters": [{"Name": "Metrics.acc", "Operator": "LessThanOrEqualTo", "Value": "0.5"},
                 {"Name": "Metrics.loss", "Operator": "Exists"}]},
    {"Filters": [{"Name": "HyperParameters.lr", "Operator": "Equals", "Value": "0.1"}]},
    {"Filters": [{"Name": "HyperParameters.lr", "Operator": "GreaterThan", "Value": "a"}]},
    {"Filters": [{"Name": "HyperParameters.lr", "Operator": "In", "Value": "0.01, x"}]},
    {"Filters": [{"Name": "Tags.team", "Operator": "NotEquals", "Value": "a"},
                 {"Name": "TrainingJobStatus", "Operator": "In", "Value": "Completed,Stopped"}]},
    {"Operator": "Or", "Filters": [{"Name": "Tags.team", "Operator": "NotExists"}],
     "SubExpressions": [{"Filters": [{"Name": "TrainingJobName", "Operator": "Contains", "Value": "1"}]}]},
    {"NestedFilters": [{"NestedPropertyName": "Tags", "Filters": [
        {"Name": "Tags.Key", "Value": "team"}, {"Name": "Tags.Value", "Value": "b"}]}]},
    {"NestedFilters": [{"NestedPropertyName": "FinalMetricDataList", "Filters": [
        {"Name": "FinalMetricDataList.MetricName", "Value": "acc"},
        {"Name": "FinalMetricDataList.Value", "Operator": "GreaterThan", "Value": "0.3"}]}]},
    {"Filters": [{"Name": "CreationTime", "Operator": "GreaterThanOrEqualTo", "Value": "2023-11-14T22:13:25Z"},
                 {"Name": "TrainingStartTime", "Operator": "LessThan", "Value": "1704067215"}]},
    {"Filters": [{"Name": "ResourceConfig.InstanceCount", "Operator": "GreaterThan", "Value": "1"},
                 {"Name": "TrainingJobArn", "Value": "arn:aws:sagemaker:r:1:training-job/job-02"}],
     "Operator": "Or"},
]  # fmt: skip
SORTS = [
    (None, None), ("Metrics.acc", "Descending"), ("Metrics.loss", "Ascending"),
    ("HyperParameters.lr", "Ascending"), ("Tags.team", "Descending"),
    ("TrainingJobName", "Ascending"), ("TrainingStartTime", "Descending"),
    ("ResourceConfig.InstanceCount", "Ascending"), ("TrainingJobStatus", "Descending"),
]  # fmt: skip


def test_sql_and_the_in_memory_evaluator_give_the_same_pages(store: StateStore) -> None:
    _fill(store)
    everyone = 0
    for expression in EXPRESSIONS:
        for sort_by, order in SORTS:
            req = SearchRequest(
                Resource="TrainingJob", SearchExpression=expression, SortBy=sort_by,
                SortOrder=order, MaxResults=4,
            )  # fmt: skip
            in_sql = _all_pages(store, req)
            assert in_sql == _all_pages(_Listing(store), req), (expression, sort_by)
            assert len(set(in_sql)) == len(in_sql)
            everyone += len(in_sql)
    assert everyone > 0


def test_a_filter_selects_what_it_says(store: StateStore) -> None:
    _fill(store)
    acc = {
        r.name: m["Value"]
        for r in store.list("TrainingJob", ListFilter(limit=100))[0]
        for m in r.status["FinalMetricDataList"]
        if m["MetricName"] == "acc"
    }
    req = SearchRequest(
        Resource="TrainingJob", SearchExpression=EXPRESSIONS[0], SortBy="Metrics.acc",
        SortOrder="Descending", MaxResults=100,
    )  # fmt: skip
    want = sorted((n for n, v in acc.items() if v > 0.5), key=lambda n: -acc[n])
    assert _all_pages(store, req) == want
    # Numbers as numbers: "0.1" and "0.10" are the same learning rate.
    lr = SearchRequest(Resource="TrainingJob", SearchExpression=EXPRESSIONS[2], MaxResults=100)
    found = {r.name for r in store.list("TrainingJob", ListFilter(limit=100))[0]
             if r.spec["HyperParameters"]["lr"] in {"0.1", "0.10"}}  # fmt: skip
    assert set(_all_pages(store, lr)) == found and found


def test_the_index_follows_status_spec_and_delete(store: StateStore) -> None:
    spec = {"TrainingJobName": "j", "HyperParameters": {"lr": "0.1"}}
    record, _ = store.create(
        "TrainingJob", "j", spec, {}, phase="InProgress", active=True, now=datetime.now(UTC)
    )
    req = SearchRequest(
        Resource="TrainingJob",
        SearchExpression={"Filters": [{"Name": "Metrics.acc", "Operator": "GreaterThan", "Value": "0.9"}]},
    )  # fmt: skip
    query = compile_search(req, KINDS)
    assert store.search(query)[0] == []
    metrics = [{"MetricName": "acc", "Value": 0.95, "Timestamp": "2024-01-01T00:00:00Z"}]
    record = store.update_status(
        record, {"FinalMetricDataList": metrics}, phase="Completed", active=False,
        now=datetime.now(UTC),
    )  # fmt: skip
    assert [r.name for r in store.search(query)[0]] == ["j"]
    by_lr = compile_search(
        SearchRequest(
            Resource="TrainingJob",
            SearchExpression={"Filters": [{"Name": "HyperParameters.lr", "Value": "0.5"}]},
        ),
        KINDS,
    )
    assert store.search(by_lr)[0] == []
    record = store.update_spec(
        record, {**spec, "HyperParameters": {"lr": "0.5"}}, status=record.status,
        now=datetime.now(UTC), reconcile=False,
    )  # fmt: skip
    assert [r.name for r in store.search(by_lr)[0]] == ["j"]
    assert [r.name for r in store.search(query)[0]] == ["j"]  # status rows kept
    store.delete("TrainingJob", "j")
    with store.engine.begin() as conn:
        for table in SEARCH_TABLES.values():
            assert conn.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one() == 0


def test_a_store_from_before_search_is_backfilled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = StateStore(url)
    _fill(store, 10)
    with store.engine.begin() as conn:  # as an old store: no index rows
        for table in SEARCH_TABLES.values():
            conn.execute(table.delete())
    store.close()
    reopened = StateStore(url)
    try:
        req = SearchRequest(Resource="TrainingJob", SearchExpression=EXPRESSIONS[0])
        assert _all_pages(reopened, req) == _all_pages(_Listing(reopened), req) != []
    finally:
        reopened.close()


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"SearchExpression": {"Filters": [{"Name": "Metrics.acc", "Operator": "Exists"}]}, "SortBy": "TrainingJobNmae"},
     "SortBy", "did you mean TrainingJobName"),
    ({"SearchExpression": {"Filters": [{"Name": "TrainingJobStatu", "Value": "Completed"}]}},
     "SearchExpression.Filters[0].Name", "did you mean TrainingJobStatus"),
    ({"SearchExpression": {"Filters": [{"Name": "Metrics.acc", "Operator": "GreaterThan", "Value": "high"}]}},
     "SearchExpression.Filters[0].Value", "is a number"),
    ({"SearchExpression": {"Filters": [{"Name": "CreationTime", "Operator": "LessThan", "Value": "yesterday"}]}},
     "SearchExpression.Filters[0].Value", "ISO-8601"),
    ({"SearchExpression": {"Filters": [{"Name": "Tags.team", "Operator": "Exists", "Value": "x"}]}},
     "SearchExpression.Filters[0].Value", "takes no Value"),
    ({"SearchExpression": {"Filters": [{"Name": "Tags.team", "Operator": "Like", "Value": "x"}]}},
     "SearchExpression.Filters.0.Operator", "Equals"),
    ({"SearchExpression": {"Filters": [{"Name": "Tags.t", "Value": "x"}] * 21}},
     "SearchExpression.Filters", "20"),
    ({"MaxResults": 101}, "MaxResults", "between 1 and 100"),
    ({"MaxResults": 0}, "MaxResults", "between 1 and 100"),
    ({"NextToken": "not-a-token"}, "NextToken", "NextToken"),
    ({"Resource": "Model"}, "Resource", "not searchable"),
    ({"Resource": "HyperParameterTuningJob"}, "Resource", "not a resource kind of this server"),
    ({"SearchExpression": {}}, "SearchExpression", "at least one"),
    ({"SearchExpression": {"NestedFilters": [{"NestedPropertyName": "Tags", "Filters": [{"Name": "Tags.Colour", "Value": "x"}]}]}},
     "SearchExpression.NestedFilters[0].Filters[0].Name", "Tags.Key"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "words"), BAD)
def test_bad_input_is_a_400_naming_it(body: dict[str, Any], field: str, words: str) -> None:
    from orchestrator.resources.validation import parse_spec

    with pytest.raises(ValidationError) as e:
        req = parse_spec(SearchRequest, {"Resource": "TrainingJob", **body})
        compile_search(req, KINDS)
    assert e.value.status_code == 400
    assert (e.value.field or "").replace("[", ".").replace("]", "") == field.replace(
        "[", "."
    ).replace("]", "")
    assert words in e.value.message


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    expression: dict[str, Any] = {"Filters": [{"Name": "Tags.a", "Value": "1"}]}
    for _ in range(6):
        expression = {"SubExpressions": [expression]}
    req = SearchRequest(Resource="TrainingJob", SearchExpression=expression)
    with pytest.raises(ValidationError, match="nest"):
        compile_search(req, KINDS)


# --- the readable language ---------------------------------------------------------------------
def test_the_readable_language() -> None:
    assert parse_expression("Metrics.validation:accuracy > 0.95 and HyperParameters.optimizer = adam") == {
        "Operator": "And",
        "Filters": [
            {"Name": "Metrics.validation:accuracy", "Operator": "GreaterThan", "Value": "0.95"},
            {"Name": "HyperParameters.optimizer", "Operator": "Equals", "Value": "adam"},
        ],
    }  # fmt: skip
    assert parse_expression("Tags.team exists") == {"Filters": [{"Name": "Tags.team", "Operator": "Exists"}]}  # fmt: skip
    assert parse_expression("TrainingJobStatus in Completed,Stopped")["Filters"][0] == {
        "Name": "TrainingJobStatus", "Operator": "In", "Value": "Completed,Stopped",
    }  # fmt: skip
    got = parse_expression("(Tags.t = 'a b' or Tags.t not exists) and TrainingJobName contains x")
    assert got == {
        "Operator": "And",
        "Filters": [{"Name": "TrainingJobName", "Operator": "Contains", "Value": "x"}],
        "SubExpressions": [{"Operator": "Or", "Filters": [
            {"Name": "Tags.t", "Operator": "Equals", "Value": "a b"},
            {"Name": "Tags.t", "Operator": "NotExists"}]}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("source", "at", "words"),
    [
        ("Metrics.acc 0.9", 13, "expected an operator"),
        ("Metrics.acc > ", 15, "expected a value"),
        ("(Tags.a = 1", 12, "expected ')'"),
        ("Tags.a = 1 Tags.b = 2", 12, "expected 'and', 'or' or the end"),
        ("Tags.a not 1", 12, "expected 'exists'"),
        ("", 1, "empty"),
        ("Tags.a = 'x", 10, "unexpected character"),
    ],
)
def test_parse_errors_point_at_the_position(source: str, at: int, words: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_expression(source)
    assert f"at position {at}" in e.value.message and words in e.value.message
    assert e.value.message.splitlines()[-1] == "  " + " " * (at - 1) + "^"


# --- the REST route, through the client --------------------------------------------------------
def test_search_over_rest_with_the_client(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as local:
        _fill(local.plane.store)  # type: ignore[arg-type]
        resp = local.client.search(
            "Metrics.acc > 0.5 and TrainingJobStatus in Completed,Failed,Stopped",
            sort_by="Metrics.acc", sort_order="Descending", max_results=3,
        )  # fmt: skip
        jobs = [r["TrainingJob"] for r in resp["Results"]]
        assert len(jobs) == 3 and resp["NextToken"]
        values = [next(m["Value"] for m in j["FinalMetricDataList"] if m["MetricName"] == "acc") for j in jobs]  # fmt: skip
        assert values == sorted(values, reverse=True) and min(values) > 0.5
        assert jobs[0]["TrainingJobArn"].endswith("/" + jobs[0]["TrainingJobName"].lower())
        assert "Tags" in jobs[0] and "CreationTime" in jobs[0]
        more = local.client.search(
            "Metrics.acc > 0.5", sort_by="Metrics.acc", sort_order="Descending",
            max_results=3, next_token=resp["NextToken"],
        )  # fmt: skip
        assert not {r["TrainingJob"]["TrainingJobName"] for r in more["Results"]} & {
            j["TrainingJobName"] for j in jobs
        }
        with pytest.raises(ValidationError) as e:
            local.client.search("Metrics.acc > high")
        assert e.value.field == "SearchExpression.Filters[0].Value"
        with pytest.raises(ValidationError, match="did you mean HyperParameters"):
            local.client.search({"Filters": [{"Name": "HyperParameter.lr", "Value": "1"}]})


@pytest.mark.parametrize("size", [1, 7])
def test_pages_cross_from_numbers_to_strings_to_missing_values(
    store: StateStore, size: int
) -> None:
    # Each sort rank (numbers, then values that read as none, then records without the
    # property) is its own query; a page that ends inside one, at its end, or spans several
    # must give the evaluator's order, ties by name, with no record twice or left out.
    _fill(store)
    for sort_by, order in [("Metrics.loss", "Descending"), ("HyperParameters.lr", "Ascending"),
                           ("HyperParameters.lr", "Descending"), ("Tags.team", "Ascending")]:  # fmt: skip
        for expression in [None, EXPRESSIONS[5]]:
            req = SearchRequest(
                Resource="TrainingJob", SearchExpression=expression, SortBy=sort_by,
                SortOrder=order, MaxResults=size,
            )  # fmt: skip
            in_sql = _all_pages(store, req)
            assert in_sql == _all_pages(_Listing(store), req), (sort_by, order, expression)
            assert len(in_sql) == len(set(in_sql))
    everyone = _all_pages(
        store, SearchRequest(Resource="TrainingJob", SortBy="Metrics.loss", MaxResults=size)
    )
    assert len(everyone) == 30  # the missing ones come last, not dropped


def _index_rows(store: StateStore, name: str) -> dict[str, set[tuple[Any, ...]]]:
    with store.engine.begin() as conn:
        return {
            family: {
                tuple(row)
                for row in conn.execute(
                    text(f"SELECT key, text, num FROM {table.name} WHERE name = :n"), {"n": name}
                )
            }
            for family, table in SEARCH_TABLES.items()
        }


def test_a_status_write_rewrites_only_what_changed_and_leaves_the_index_as_a_fresh_one(
    store: StateStore, tmp_path: Path
) -> None:
    """Status writes that add, change and remove fields and metrics: the index rows are those
    a store indexing the final documents from scratch has."""
    rnd = random.Random(3)
    spec, _, _ = _job(1, rnd)
    name = spec["TrainingJobName"]
    record, _ = store.create(
        "TrainingJob", name, spec, {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Pending"},
        phase="InProgress", active=True, now=datetime.fromtimestamp(1_700_000_000, tz=UTC),
    )  # fmt: skip
    acc = {"MetricName": "acc", "Value": 0.5, "Timestamp": "2024-01-01T00:00:00Z"}
    loss = {"MetricName": "loss", "Value": 2.0, "Timestamp": "2024-01-01T00:00:00Z"}
    statuses = [
        ({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"}, "InProgress"),
        ({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
          "TrainingStartTime": "2024-01-01T00:00:01Z", "FinalMetricDataList": [acc, loss]},
         "InProgress"),
        ({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
          "TrainingStartTime": "2024-01-01T00:00:01Z", "FinalMetricDataList": [{**acc, "Value": 0.9}]},
         "InProgress"),
        ({"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed",
          "FailureReason": "AlgorithmError: exit 1"}, "Failed"),
    ]  # fmt: skip
    for i, (status, phase) in enumerate(statuses, start=1):
        record = store.update_status(
            record, status, phase=phase, active=True,
            now=datetime.fromtimestamp(1_700_000_000 + i, tz=UTC),
        )  # fmt: skip
        fresh = StateStore(f"sqlite:///{tmp_path / f'fresh-{i}.db'}")
        fresh.create(
            "TrainingJob", name, spec, record.status, phase=phase, active=True,
            now=datetime.fromtimestamp(1_700_000_000, tz=UTC),
        )  # fmt: skip
        assert _index_rows(store, name) == _index_rows(fresh, name), status
        fresh.close()
    assert _index_rows(store, name)["metrics"] == set()
    assert ("FailureReason", "AlgorithmError: exit 1", None) in _index_rows(store, name)["fields"]
