"""Endpoint traffic for the operator, read from the API pods that route it.

On a cluster the data plane runs in the API pods and the autoscaler in the operator's: the
operator asks every API pod (found by ``ORCH_KUBE__API_SELECTOR``) what it served, over the
API (``GET /api/v1/endpoints/NAME/traffic`` and ``.../fleet-health``, with the operator's API
key), and adds the answers up, so the same pure autoscaler and the same blue/green alarms run
as on a laptop, and no custom-metrics adapter is needed. When no API pod answers, the load is
unknown (``None``) and the autoscaler holds the count, as an HPA does without its metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from kubernetes import client

from orchestrator.controller.plan.types import FleetHealth, VariantLoad
from orchestrator.kube.api import call
from orchestrator.settings import KubeSettings

log = logging.getLogger("orchestrator.kube.load")
PODS_TTL = 10.0


class ApiTraffic:
    """``Telemetry`` (``controller.reconciler``) summed over the API pods."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: KubeSettings,
        *,
        namespace: str,
        api_key: str | None,
        urls: Callable[[], list[str]] | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.settings = settings
        self.namespace = namespace
        self._urls = urls or self._api_pods
        self._pods: tuple[float, list[str]] = (-PODS_TTL, [])
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers, trust_env=False)

    def _api_pods(self) -> list[str]:
        at, urls = self._pods
        if time.monotonic() - at < PODS_TTL:
            return urls
        found = call(
            "list API pods",
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=self.settings.api_selector,
        )
        urls = [
            f"http://{p['status']['podIP']}:{self.settings.api_port}"
            for p in found.get("items") or []
            if (p.get("status") or {}).get("phase") == "Running"
            and (p.get("status") or {}).get("podIP")
        ]
        self._pods = (time.monotonic(), urls)
        return urls

    def _ask(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            urls = self._urls()
        except Exception as e:
            log.warning("cannot find the API pods: %s", e)
            return []
        answers = []
        for url in urls:
            try:
                resp = self._http.get(f"{url}{path}", params=params)
                resp.raise_for_status()
                answers.append(resp.json())
            except (httpx.HTTPError, ValueError) as e:
                log.warning("traffic from %s: %s", url, e)
        return answers

    def variant_load(
        self, endpoint: str, variant: str, config: str, window_seconds: float, now: datetime
    ) -> VariantLoad | None:
        answers = self._ask(
            f"/api/v1/endpoints/{endpoint}/traffic",
            {"VariantName": variant, "EndpointConfigName": config, "Window": window_seconds},
        )
        if not answers:
            return None
        last = [a["LastInvocationTime"] for a in answers if a.get("LastInvocationTime")]
        return VariantLoad(
            invocations_per_minute=sum(float(a.get("InvocationsPerMinute", 0)) for a in answers),
            concurrency=sum(float(a.get("Concurrency", 0)) for a in answers),
            last_invocation_at=max((datetime.fromisoformat(t) for t in last), default=None),
        )

    def fleet_health(
        self, endpoint: str, config: str, since: datetime, now: datetime
    ) -> FleetHealth | None:
        answers = self._ask(
            f"/api/v1/endpoints/{endpoint}/fleet-health",
            {"EndpointConfigName": config, "Since": since.isoformat()},
        )
        if not answers:
            return None

        def worst(key: str) -> float | None:
            values = [float(a[key]) for a in answers if a.get(key) is not None]
            return max(values) if values else None

        return FleetHealth(
            invocations=sum(int(a.get("Invocations", 0)) for a in answers),
            errors_5xx=sum(int(a.get("Errors5xx", 0)) for a in answers),
            # A p99 over several pods' traffic is at most the worst pod's.
            model_latency_p99_us=worst("ModelLatencyP99"),
            overhead_latency_p99_us=worst("OverheadLatencyP99"),
        )

    def close(self) -> None:
        self._http.close()
