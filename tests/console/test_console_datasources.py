"""The console's data source pages in a real browser, against an in-process control plane on
the fake backend (``orchestrator.testing.local_control_plane``): the test takes the snapshot
the way the fake backend runs it (its job completed, ``schema.json`` and ``insights.json`` put
at the version's ``SnapshotUri``). The list with its row count; the page's source, versions,
schema with reasons, a histogram, top categories and words, the warnings; a type changed in
the schema table; a refresh followed to version 2; an edit refused by the API shown beside the
attribute it names.

One server and one data source are shared by the module (the tests run in file order)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest

from orchestrator.resources.kinds import DATA_SOURCE
from orchestrator.testing import LocalControlPlane, local_control_plane
from tests.console.conftest import PHONE, SHOTS, Pages, expect, log_in

pytestmark = pytest.mark.slow
NAME = "churn"

SCHEMA: dict[str, Any] = {
    "Version": 1,
    "RowCount": 200,
    "Files": ["part-00000.parquet"],
    "TargetAttributeName": "churned",
    "Attributes": [
        {"AttributeName": "tenure", "AttributeType": "NUMERIC", "InferredType": "NUMERIC",
         "SourceType": "int4", "Reasons": ["numbers with 48 distinct values"]},
        {"AttributeName": "plan", "AttributeType": "CATEGORICAL", "InferredType": "CATEGORICAL",
         "SourceType": "text", "Reasons": ["3 distinct values of 200 rows"]},
        {"AttributeName": "notes", "AttributeType": "TEXT", "InferredType": "TEXT",
         "SourceType": "text", "Reasons": ["190 distinct values of 200 rows, 6.1 words on average"]},
        {"AttributeName": "churned", "AttributeType": "BINARY", "InferredType": "BINARY",
         "SourceType": "bool", "Reasons": ["2 distinct values: false, true"]},
    ],
}  # fmt: skip
INSIGHTS: dict[str, Any] = {
    "RowCount": 200,
    "TargetAttributeName": "churned",
    "Attributes": [
        {"AttributeName": "tenure", "AttributeType": "NUMERIC", "MissingCount": 10,
         "MissingShare": 0.05, "InvalidCount": 2, "InvalidShare": 0.01, "DistinctCount": 48,
         "DistinctCountApproximate": False,
         "Numeric": {"Min": 1, "Max": 72, "Mean": 30.5, "Std": 20.1, "Median": 28,
                     "Histogram": {"Edges": [0, 12, 24, 36, 48, 60, 72],
                                   "Counts": [40, 35, 30, 28, 32, 23]}},
         "Categories": None, "Text": None,
         "TargetCorrelation": {"Method": "PointBiserial", "Value": -0.35}},
        {"AttributeName": "plan", "AttributeType": "CATEGORICAL", "MissingCount": 0,
         "MissingShare": 0.0, "InvalidCount": 0, "InvalidShare": 0.0, "DistinctCount": 3,
         "DistinctCountApproximate": False, "Numeric": None,
         "Categories": {"Top": [{"Value": "basic", "Count": 120}, {"Value": "pro", "Count": 60}],
                        "OtherCount": 20},
         "Text": None, "TargetCorrelation": {"Method": "CramersV", "Value": 0.5}},
        {"AttributeName": "notes", "AttributeType": "TEXT", "MissingCount": 100,
         "MissingShare": 0.5, "InvalidCount": 0, "InvalidShare": 0.0, "DistinctCount": 190,
         "DistinctCountApproximate": True, "Numeric": None, "Categories": None,
         "Text": {"MeanWords": 6.1, "TopWords": [{"Value": "slow", "Count": 31},
                                                 {"Value": "price", "Count": 22}]},
         "TargetCorrelation": None},
        {"AttributeName": "churned", "AttributeType": "BINARY", "MissingCount": 0,
         "MissingShare": 0.0, "InvalidCount": 0, "InvalidShare": 0.0, "DistinctCount": 2,
         "DistinctCountApproximate": False, "Numeric": None,
         "Categories": {"Top": [{"Value": "false", "Count": 190}, {"Value": "true", "Count": 10}],
                        "OtherCount": 0},
         "Text": None, "TargetCorrelation": None},
    ],
    "Target": {"AttributeName": "churned", "AttributeType": "BINARY", "MissingCount": 0,
               "Distribution": {"Top": [{"Value": "false", "Count": 190},
                                        {"Value": "true", "Count": 10}], "OtherCount": 0}},
    "Warnings": [
        {"AttributeName": "churned", "Code": "RareTargetClass",
         "Message": "churned: the class true has 10 of 200 rows (5.0%; warned under 10% or "
                    "50 rows)"},
        {"AttributeName": "notes", "Code": "HighMissingShare",
         "Message": "notes: 100 of 200 values missing (50.0%; warned from 30%)"},
    ],
}  # fmt: skip
# The second snapshot: the query no longer selects "plan".
SCHEMA_2 = {
    **SCHEMA,
    "Version": 2,
    "Attributes": [a for a in SCHEMA["Attributes"] if a["AttributeName"] != "plan"],
}
INSIGHTS_2 = {
    **INSIGHTS,
    "Attributes": [a for a in INSIGHTS["Attributes"] if a["AttributeName"] != "plan"],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path_factory.mktemp("console-ds")) as cp:
        yield cp


@pytest.fixture
def pages(browser: Any, server: LocalControlPlane) -> Iterator[Pages]:
    # Pages reads the server's url only: the in-process control plane has one.
    p = Pages(browser, cast(Any, server))
    yield p
    p.close()


def api(server: LocalControlPlane, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}{path}",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=30,
        **kwargs,
    )


def versions(server: LocalControlPlane) -> list[dict[str, Any]]:
    return list(server.plane.store.get(DATA_SOURCE.name, NAME).status.get("Versions") or [])


def snapshot_done(server: LocalControlPlane, schema: dict[str, Any], insights: Any) -> str:
    """The fake backend runs the latest version's snapshot job: its dataset files put where
    the job would, then the job completed."""
    job = versions(server)[-1]
    uri = job["SnapshotUri"]
    server.plane.objects.put_bytes(uri + "schema.json", json.dumps(schema).encode())
    server.plane.objects.put_bytes(uri + "insights.json", json.dumps(insights).encode())
    rows = float(schema["RowCount"])
    server.backend.complete(
        job["SnapshotJobName"], metrics={"RowCount": rows, "DataSizeInBytes": 9000}
    )
    server.controller.run_pass()
    server.controller.run_pass()
    return str(job["SnapshotJobName"])


@pytest.fixture(scope="module")
def data_source(server: LocalControlPlane) -> str:
    server.plane.objects.put_bytes(
        "s3://orchestrator/secrets/crm.json", b'{"Username": "reader", "Password": "pw"}'
    )
    made = api(server, "POST", "/api/v1/data-sources", json={
        "DataSourceName": NAME,
        "DataSpec": {"Sql": {
            "DatabaseInformation": {"Engine": "postgresql", "Host": "db.internal", "Port": 5432,
                                    "DatabaseName": "crm"},
            "SelectSqlQuery": "SELECT tenure, plan, notes, churned FROM customers",
            "DatabaseCredentials": {"SecretUri": "s3://orchestrator/secrets/crm.json"},
        }},
        "TargetAttributeName": "churned",
    })  # fmt: skip
    assert made.status_code == 201, made.text
    server.controller.run_pass()  # the data source makes its snapshot job
    server.controller.run_pass()  # which launches
    return snapshot_done(server, SCHEMA, INSIGHTS)


def test_the_list_shows_the_data_source_with_its_rows(
    pages: Pages, server: LocalControlPlane, data_source: str
) -> None:
    page = pages.new()
    log_in(page, server.api_key, "/console/#/data-sources")
    row = page.locator("table[data-kind=DataSources] tbody tr", has_text=NAME)
    row.wait_for()
    assert row.locator("[data-status]").inner_text() == "COMPLETED"
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == NAME and cells[2:4] == ["1", "200"], cells
    assert page.locator("#top nav a[href='#/data-sources']").get_attribute("aria-current") == "page"
    page.fill("input[name=NameContains]", "no-such")
    page.wait_for_selector("#list .empty")
    page.fill("input[name=NameContains]", "chu")
    row.wait_for()
    row.locator("a").click()
    page.wait_for_url(re.compile(rf"#/data-sources/{NAME}$"))
    page.locator("#schema").wait_for()


def test_the_page_shows_source_schema_insights_and_warnings(
    pages: Pages, server: LocalControlPlane, data_source: str
) -> None:
    page = pages.new()
    log_in(page, server.api_key, f"/console/#/data-sources/{NAME}")
    expect(page.locator("#ds-source")).to_have_text("postgresql://db.internal:5432/crm")
    expect(page.locator("#ds-query")).to_contain_text("SELECT tenure, plan")
    expect(page.locator("#ds-target")).to_have_text("churned")
    link = page.locator("#versions a", has_text=data_source)
    assert link.get_attribute("href") == f"#/jobs/{data_source}"
    # The schema: types (as selects), source types and the reasons.
    schema = page.locator("#schema")
    expect(schema).to_contain_text("3 distinct values of 200 rows")
    expect(schema).to_contain_text("2 distinct values: false, true")
    assert page.input_value("select[data-field='AttributeTypes.tenure']") == "NUMERIC"
    assert page.input_value("#target") == "churned"
    # The warnings, and each attribute's insights.
    warnings = page.locator("#warnings")
    expect(warnings.locator("li[data-code=RareTargetClass]")).to_contain_text(
        "the class true has 10"
    )
    expect(warnings.locator("li[data-code=HighMissingShare]")).to_be_visible()
    tenure = page.locator("article.attr[data-attribute=tenure]")
    tenure.locator("figure.chart canvas").first.wait_for()
    expect(tenure.locator("[data-share=missing]")).to_have_text("5.0%")
    expect(tenure.locator("[data-share=invalid]")).to_have_text("1.0%")
    expect(tenure.locator("[data-correlation]")).to_have_text("-0.35 (PointBiserial)")
    plan = page.locator("article.attr[data-attribute=plan]")
    bars = [t.split() for t in plan.locator("ul.hbars li").all_inner_texts()]
    assert bars == [["basic", "120"], ["pro", "60"], ["(other)", "20"]]
    notes = page.locator("article.attr[data-attribute=notes]")
    expect(notes.locator("ul.hbars")).to_contain_text("slow")
    expect(notes.locator("[data-distinct]")).to_have_text("≈190")
    expect(notes.locator(".attr-warnings")).to_contain_text("HighMissingShare")
    expect(page.locator("#target-distribution ul.hbars")).to_contain_text("true")
    # The histogram's numbers as a table.
    tenure.locator("figcaption button").click()
    assert tenure.locator("table tbody tr").count() == 6
    tenure.locator("figcaption button").click()
    # The insights from their warnings down (shot's "at" would show the section's end).
    page.locator("#insights").evaluate("el => el.scrollIntoView()")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "datasource.png"), type="png")
    # The snapshot job's own page.
    link.click()
    page.wait_for_url(re.compile(rf"#/jobs/{re.escape(data_source)}$"))
    expect(page.locator("h1")).to_have_text(data_source)


def test_the_page_fits_a_phone(pages: Pages, server: LocalControlPlane, data_source: str) -> None:
    page = pages.new(PHONE)
    log_in(page, server.api_key, f"/console/#/data-sources/{NAME}")
    page.locator("article.attr[data-attribute=tenure] figure.chart canvas").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1


def test_a_type_changed_in_the_schema_is_patched_and_marked_edited(
    pages: Pages, server: LocalControlPlane, data_source: str
) -> None:
    page = pages.new()
    log_in(page, server.api_key, f"/console/#/data-sources/{NAME}")
    plan = page.locator("select[data-field='AttributeTypes.plan']")
    plan.wait_for()
    row = page.locator("#schema tbody tr", has=plan)
    expect(row.locator("[data-edited]")).to_have_text("inferred")
    plan.select_option("TEXT")
    expect(row.locator("[data-edited=true]")).to_have_text("edited (inferred CATEGORICAL)")
    doc = api(server, "GET", f"/api/v1/data-sources/{NAME}").json()
    assert doc["AttributeTypes"] == {"plan": "TEXT"}
    assert page.input_value("select[data-field='AttributeTypes.plan']") == "TEXT"
    # The insights follow the edited type.
    expect(page.locator("article.attr[data-attribute=plan] h3 .badge")).to_have_text("TEXT")


def test_refresh_starts_version_2_and_follows_it(
    pages: Pages, server: LocalControlPlane, data_source: str
) -> None:
    page = pages.new()
    log_in(page, server.api_key, f"/console/#/data-sources/{NAME}")
    page.locator("#schema").wait_for()
    page.click("#refresh")
    expect(page.locator("#refresh-status")).to_contain_text("Version 2")
    server.controller.run_pass()  # version 2's snapshot job
    server.controller.run_pass()
    assert [v["Version"] for v in versions(server)] == [1, 2]
    status = page.locator("#refresh-status [data-status]")
    expect(status).to_have_text(re.compile(r"PENDING|INPROGRESS"))
    expect(page.locator("#ds-status [data-status]")).to_have_text(re.compile(r"PENDING|INPROGRESS"))
    job = snapshot_done(server, SCHEMA_2, INSIGHTS_2)
    expect(status).to_have_text("COMPLETED", timeout=10_000)
    expect(page.locator("#versions")).to_contain_text(job)
    # The latest completed version is shown: it has no "plan".
    expect(page.locator("#schema tbody tr")).to_have_count(3)


def test_an_edit_the_api_refuses_is_shown_beside_its_attribute(
    pages: Pages, server: LocalControlPlane, data_source: str
) -> None:
    page = pages.new()
    log_in(page, server.api_key, f"/console/#/data-sources/{NAME}")
    page.locator("#schema").wait_for()
    # Version 1 still has "plan"; the latest completed snapshot (2) does not.
    page.select_option("#version", "1")
    plan = page.locator("select[data-field='AttributeTypes.plan']")
    plan.wait_for()
    plan.select_option("CATEGORICAL")
    error = page.locator("#schema-form .field-error")
    expect(error).to_contain_text("AttributeTypes.plan")
    assert error.get_attribute("data-error-for") == "type-plan"
    # Beside the select it names, which keeps the stored type.
    assert page.locator("#schema tbody tr", has=plan).locator(".field-error").count() == 1
    assert page.input_value("select[data-field='AttributeTypes.plan']") == "TEXT"
    doc = api(server, "GET", f"/api/v1/data-sources/{NAME}").json()
    assert doc["AttributeTypes"] == {"plan": "TEXT"}


def test_a_missing_data_source_shows_the_api_error(
    pages: Pages, server: LocalControlPlane, data_source: str
) -> None:
    page = pages.new()
    log_in(page, server.api_key, "/console/#/data-sources/no-such-source")
    expect(page.locator("main .error[role=alert]")).to_contain_text("no-such-source")
