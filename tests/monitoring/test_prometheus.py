"""The endpoint collectors added for monitoring, through their record_* helpers."""

from __future__ import annotations

from orchestrator import metrics


def value(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_setup_time_concurrency_and_instances() -> None:
    before = value("orch_model_setup_seconds_count", endpoint="pm", variant="v") or 0.0
    metrics.record_model_setup_time("pm", "v", 3.0)
    assert value("orch_model_setup_seconds_count", endpoint="pm", variant="v") == before + 1
    metrics.record_request_started("pm", "v")
    metrics.record_request_started("pm", "v")
    metrics.record_request_finished("pm", "v")
    assert value("orch_concurrent_requests", endpoint="pm", variant="v") == 1.0
    metrics.record_request_finished("pm", "v")
    metrics.record_instance_counts({("pm", "v"): 3, ("pm", "w"): 1})
    assert value("orch_endpoint_instances", endpoint="pm", variant="v") == 3.0
    metrics.record_instance_counts({("pm", "v"): 2})
    assert value("orch_endpoint_instances", endpoint="pm", variant="w") is None
    body, _ = metrics.exposition()
    assert b"orch_model_setup_seconds_bucket" in body
