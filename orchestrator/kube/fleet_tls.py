"""Serving certificates for the fleets on a cluster (``ORCH_SERVING__REPLICA_TLS=true``): the
I/O half of ``kube.replica_tls``.

``ensure_ca()`` (the operator's start) makes the replica CA Secret once, when absent, and
checks the one there. Each pass, ``refresh()`` lists the namespace's serving-certificate
Secrets once (by label) and forgets the CA read in the pass before; ``serving_tls(...)`` then
reads the CA once per pass (a missing or malformed CA Secret: a ``ValidationError`` naming it
and the fix, which fails the endpoint needing it with that message), plans the fleet's
certificate against the clock (``replica_tls.plan_certificate``) and creates or replaces its
Secret when the plan says so.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client

from orchestrator.clock import Clock
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.kube import replica_tls as rt
from orchestrator.kube.api import call
from orchestrator.kube.objects import LABEL_MANAGED
from orchestrator.settings import KubeSettings
from orchestrator.tls import PemPair, issue_pem, load_ca_pem, new_ca_pem

log = logging.getLogger("orchestrator.kube.fleet_tls")


class FleetCertificates:
    def __init__(
        self, core: client.CoreV1Api, namespace: str, settings: KubeSettings, clock: Clock
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.settings = settings
        self.clock = clock
        self._secrets: dict[str, dict[str, Any]] | None = None
        self._ca: tuple[PemPair, str] | None = None

    @property
    def ca_name(self) -> str:
        return self.settings.replica_ca_secret

    def ensure_ca(self) -> None:
        """Make the replica CA Secret when there is none (AlreadyExists: another operator
        made it first), then check the one there: a malformed one is said here, and fails
        each endpoint that needs it with the fix (not the operator: it runs everything else)."""
        if self._read(self.ca_name) is None:
            body = rt.ca_secret(self.ca_name, self.namespace, new_ca_pem(now=self.clock.now()))
            with contextlib.suppress(ConflictError):
                call(
                    f"create Secret {self.ca_name}",
                    self.core.create_namespaced_secret,
                    self.namespace,
                    body,
                )
                log.info("made the replica CA Secret %s/%s", self.namespace, self.ca_name)
        self._ca = None
        try:
            self.ca()
        except ValidationError as e:
            log.warning("%s", e.message)

    def refresh(self) -> None:
        selector = f"{LABEL_MANAGED}=orchestrator,{rt.LABEL_SERVING_CERT}=true"
        found = call(
            "list Secret", self.core.list_namespaced_secret, self.namespace, label_selector=selector
        )
        self._secrets = {s["metadata"]["name"]: s for s in found.get("items") or []}
        self._ca = None

    def ca(self) -> tuple[PemPair, str]:
        """The CA pair and its key id, read once per pass."""
        if self._ca is None:
            pair = rt.read_ca(self._read(self.ca_name), self.ca_name, self.namespace)
            self._ca = pair, load_ca_pem(pair, rt.ca_source(self.ca_name, self.namespace))
        return self._ca

    def serving_tls(
        self,
        fleet_object: str,
        labels: dict[str, str],
        owner: Callable[[], dict[str, Any] | None],
    ) -> rt.ServingTls:
        """The fleet's serving certificate, issued or re-issued as its plan says."""
        name = rt.serving_secret_name(fleet_object)
        names = rt.serving_names(fleet_object, self.namespace, self.settings.cluster_domain)
        current = self._secret(name)
        ca, ca_key_id = self.ca()
        now = self.clock.now()
        plan = rt.plan_certificate(
            names,
            rt.observed_certificate(current),
            exists=current is not None,
            ca_key_id=ca_key_id,
            now=now,
        )
        if plan.action == "keep" and current is not None:
            return rt.ServingTls(name, rt.secret_fingerprint(current))
        leaf = issue_pem(
            ca,
            names,
            source=rt.ca_source(self.ca_name, self.namespace),
            days=rt.CERT_DAYS,
            now=now,
        )
        body = rt.serving_secret(name, self.namespace, labels, owner(), leaf=leaf, ca_cert=ca.cert)
        core, ns = self.core, self.namespace
        if current is None:
            with contextlib.suppress(ConflictError):
                call(f"create Secret {name}", core.create_namespaced_secret, ns, body)
        else:
            log.info("re-issuing the serving certificate %s: %s", name, plan.reason)
            patch = {
                "metadata": {"annotations": body["metadata"]["annotations"]},
                "data": body["data"],
            }
            call(f"update Secret {name}", core.patch_namespaced_secret, name, ns, patch)
        if self._secrets is not None:
            self._secrets[name] = body
        return rt.ServingTls(name, rt.fingerprint_of(leaf.cert))

    def remove(self, fleet_object: str) -> None:
        name = rt.serving_secret_name(fleet_object)
        with contextlib.suppress(NotFoundError):
            call(f"delete Secret {name}", self.core.delete_namespaced_secret, name, self.namespace)
        if self._secrets is not None:
            self._secrets.pop(name, None)

    def _secret(self, name: str) -> dict[str, Any] | None:
        if self._secrets is not None:
            return self._secrets.get(name)
        return self._read(name)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = call(
                f"get Secret {name}", self.core.read_namespaced_secret, name, self.namespace
            )
        except NotFoundError:
            return None
        return found


__all__ = ["FleetCertificates"]
