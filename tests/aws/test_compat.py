"""docs/sagemaker-compat.md is what ``python -m orchestrator.api.aws.compat`` writes, and the
page's lists are true to botocore's model and the operation tables."""

from __future__ import annotations

from pathlib import Path

from orchestrator.api.aws import compat
from orchestrator.api.aws.sagemaker import TABLE
from tests.aws.shapes import model

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_page_is_current() -> None:
    page = (ROOT / compat.PAGE).read_text()
    assert page == compat.render(compat.botocore_operations()), (
        "docs/sagemaker-compat.md is stale: run python -m orchestrator.api.aws.compat"
    )


def test_the_operations_are_botocore_s_read_from_its_data_files() -> None:
    assert compat.botocore_operations() == sorted(model()["operations"])


def test_without_botocore_the_page_lists_the_most_used_missing_operations() -> None:
    served = {row.name for row in TABLE}
    known = set(model()["operations"])
    assert set(compat.MOST_USED_MISSING) <= known - served
    page = compat.render(None)
    assert "install botocore" in page
    for op in compat.MOST_USED_MISSING:
        assert f"`{op}`" in page
    for row in TABLE:
        assert f"| `{row.name}` |" in page


def test_every_missing_operation_is_listed_once_in_a_group() -> None:
    page = compat.render(compat.botocore_operations())
    missing = sorted(set(model()["operations"]) - {row.name for row in TABLE})
    section = page.split("## Not supported", 1)[1].split("## What SageMaker", 1)[0]
    for op in missing:
        assert section.count(f"`{op}`") == 1, op
    assert "`CreateTrainingJob`" not in section


def test_the_module_writes_the_page(tmp_path: Path) -> None:
    out = tmp_path / "page.md"
    assert compat.main([str(out)]) == 0
    assert out.read_text() == (ROOT / compat.PAGE).read_text()
