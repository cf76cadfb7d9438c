"""The custom resources of one namespace as the desired-state source (``store.DesiredState``).

On a cluster the API server is the store: the REST API, the Python client and the CLI create,
read, list, update, stop and delete ``TrainingJob``, ``Model``, ``EndpointConfig`` and
``Endpoint`` resources here, and the operator reconciles the same objects, so ``kubectl get``
and ``orch ... list`` always show the same things.

- Documents are converted between the API's PascalCase and the resources' camelCase
  (``convert``); the name field is ``metadata.name``.
- Creates are idempotent: the same spec again returns the existing resource, a different one
  is a ``ConflictError`` (409), as on the SQL store. Specs are compared as validated models,
  so what ``kubectl apply`` wrote and what the client sent compare equal when they mean the same.
- Status goes through the status subresource; spec, status and finalizer writes carry the
  ``resourceVersion`` they read, so a write that lost a race fails (409, ``ConflictError``)
  and the caller reads again; nothing is overwritten.
- A stop is the annotation ``orchestrator.dev/stop: "true"``; a delete is a real delete that
  the finalizer ``orchestrator.dev/cleanup`` holds until the reconciler has cleaned up.
- Held requests for a variant at zero are the annotation ``orchestrator.dev/demand`` (variant
  -> when), written by the API pods and read by the operator (``Demand``).
- The account a resource belongs to (``orchestrator.tenancy``) is the label
  ``orchestrator.dev/account`` (none: the server's own). As on the SQL store, a caller sees
  only its own account's resources: another's answers exactly as an absent one, and a create
  of a name another account holds as a duplicate of one's own (names are the objects' names,
  unique in the namespace).
"""

from __future__ import annotations

import builtins
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pydantic
from kubernetes import client

from orchestrator import tenancy
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.kube.api import call
from orchestrator.kube.convert import (
    API_GROUP,
    API_VERSION,
    FREE_FORM_MAPS,
    camel,
    to_camel,
    to_pascal,
)
from orchestrator.kube.observe import parse_time
from orchestrator.resources.kinds import KINDS, Kind
from orchestrator.store.source import Flag, ListFilter, Record, page_of

FINALIZER = "orchestrator.dev/cleanup"
STOP_ANNOTATION = "orchestrator.dev/stop"
# A spot training job asked to give its capacity back (removed once it is requeued).
PREEMPT_ANNOTATION = "orchestrator.dev/preempt"
DEMAND_ANNOTATION = "orchestrator.dev/demand"
ACCOUNT_LABEL = "orchestrator.dev/account"


def camel_path(path: str) -> str:
    """An API field path as the custom resource's (``ResourceConfig.InstanceCount`` ->
    ``spec.resourceConfig.instanceCount``); keys of free-form maps stay as written."""
    if not path or path == "(body)":
        return "spec"
    out: list[str] = []
    free = False
    for segment in path.split("."):
        head, bracket, rest = segment.partition("[")
        name = head if free else camel(head)
        free = head in FREE_FORM_MAPS
        out.append(name + (bracket + rest if bracket else ""))
    return "spec." + ".".join(out)


def camel_error(error: ValidationError) -> ValidationError:
    """The error with each ``Path: problem`` part naming the resource's own field path."""
    parts = []
    for part in error.message.split("; "):
        path, sep, text = part.partition(": ")
        if sep and " " not in path:
            parts.append(f"{camel_path(path)}: {text}")
        else:
            parts.append(part)
    field = camel_path(error.field) if error.field else "spec"
    return ValidationError("; ".join(parts), field=field)


def _prune(doc: Any) -> Any:
    """Without null values: what a merge patch leaves stored (to compare with what is)."""
    if isinstance(doc, dict):
        return {k: _prune(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_prune(v) for v in doc]
    return doc


def _merge_patch(old: Any, new: Any) -> Any:
    """A JSON merge patch (RFC 7386) turning ``old`` into ``new``: removed keys become null."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: _merge_patch(old.get(k), v) for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


class CustomResources:
    """``DesiredState`` over the custom resources of ``namespace``."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        # The last custom resource seen per (kind, name): finalizers and annotations, which a
        # Record does not carry, for claim/release and the demand annotation.
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}

    # --- conversion ----------------------------------------------------------------------------
    def record(self, kind: Kind, cr: dict[str, Any]) -> Record:
        meta = cr.get("metadata") or {}
        name = str(meta.get("name", ""))
        self._seen[(kind.name, name)] = cr
        raw_spec = cr.get("spec")
        spec = to_pascal(raw_spec) if isinstance(raw_spec, dict) else {}
        spec[kind.name_field] = name
        status = to_pascal(cr.get("status") or {})
        status.pop("ObservedGeneration", None)
        phase = kind.phase_of(status)
        deleting = bool(meta.get("deletionTimestamp"))
        created = parse_time(meta.get("creationTimestamp")) or datetime.now(UTC)
        stamps = [
            t
            for t in (parse_time(m.get("time")) for m in meta.get("managedFields") or [])
            if t is not None
        ]
        annotations = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        return Record(
            kind=kind.name,
            name=name,
            uid=str(meta.get("uid", "")),
            spec=spec,
            status=status,
            phase=phase,
            active=deleting or kind.active(phase, status),
            stop_requested=str(annotations.get(STOP_ANNOTATION, "")).lower() == "true",
            delete_requested=deleting,
            created_at=created,
            updated_at=max(stamps, default=created),
            version=str(meta.get("resourceVersion", "")),
            preempt_requested=str(annotations.get(PREEMPT_ANNOTATION, "")).lower() == "true",
            account=str(labels.get(ACCOUNT_LABEL) or tenancy.ROOT),
        )

    def _body(self, kind: Kind, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in spec.items() if k != kind.name_field}
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        account = tenancy.stamp()
        if account != tenancy.ROOT:
            meta["labels"] = {ACCOUNT_LABEL: account}
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": kind.name,
            "metadata": meta,
            "spec": _prune(to_camel(doc)),
        }

    # --- calls -----------------------------------------------------------------------------------
    def _list(self, kind: Kind) -> list[dict[str, Any]]:
        """Every resource of the kind the caller may see (the system: all of them)."""
        found = call(
            f"list {kind.crd_plural}",
            self.custom.list_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            self.namespace,
            kind.crd_plural,
        )
        items: list[dict[str, Any]] = list(found.get("items") or [])
        if tenancy.current() is None:
            return items
        return [cr for cr in items if tenancy.visible(_account_of(cr))]

    def _get(self, kind: Kind, name: str) -> dict[str, Any]:
        cr: dict[str, Any] = call(
            f"get {kind.name} {name}",
            self.custom.get_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            self.namespace,
            kind.crd_plural,
            name,
        )
        return cr

    def _patch(
        self, kind: Kind, name: str, body: dict[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        fn = (
            self.custom.patch_namespaced_custom_object_status
            if status
            else self.custom.patch_namespaced_custom_object
        )
        cr: dict[str, Any] = call(
            f"patch {kind.name} {name}",
            fn,
            API_GROUP,
            API_VERSION,
            self.namespace,
            kind.crd_plural,
            name,
            body,
            _content_type="application/merge-patch+json",
        )
        return cr

    @staticmethod
    def _race(record: Record) -> ConflictError:
        return ConflictError(f"{record.kind} {record.name!r} changed while being updated")

    # --- DesiredState ----------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Record:
        k = KINDS[kind]
        try:
            cr = self._get(k, name)
        except NotFoundError:
            raise NotFoundError(f"{kind} {name!r} does not exist") from None
        if not tenancy.visible(_account_of(cr)):  # another account's: as absent
            raise NotFoundError(f"{kind} {name!r} does not exist")
        return self.record(k, cr)

    def find(self, kind: str, name: str) -> Record | None:
        try:
            return self.get(kind, name)
        except NotFoundError:
            return None

    def list(self, kind: str, page: ListFilter) -> tuple[builtins.list[Record], str | None]:
        k = KINDS[kind]
        return page_of((self.record(k, cr) for cr in self._list(k)), page)

    def list_active(self, kind: str) -> builtins.list[Record]:
        k = KINDS[kind]
        return [r for r in (self.record(k, cr) for cr in self._list(k)) if r.active]

    def count_by_phase(self, kind: str) -> dict[str, int]:
        k = KINDS[kind]
        counts: dict[str, int] = {}
        for cr in self._list(k):
            phase = self.record(k, cr).phase
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def create(
        self,
        kind: str,
        name: str,
        spec: dict[str, Any],
        status: dict[str, Any],
        *,
        phase: str,
        active: bool,
        now: datetime,
    ) -> tuple[Record, bool]:
        """Create the resource (its status is the operator's to write; until then a describe
        shows the kind's initial status). Same spec again: the existing one."""
        k = KINDS[kind]
        body = self._body(k, name, spec)
        try:
            cr = call(
                f"create {kind} {name}",
                self.custom.create_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                k.crd_plural,
                body,
            )
        except ConflictError:
            existing = self.find(kind, name)  # None: another account's, a duplicate all the same
            if (
                existing is not None
                and _same_spec(k, existing.spec, spec)
                and not existing.delete_requested
            ):
                return existing, False
            raise ConflictError(
                f"{kind} {name!r} already exists with a different spec; pick another name "
                "or delete the existing one first",
            ) from None
        return self.record(k, cr), True

    def update_spec(
        self,
        record: Record,
        spec: dict[str, Any],
        *,
        status: dict[str, Any],
        now: datetime,
        phase: str | None = None,
        reconcile: bool = True,
    ) -> Record:
        """A merge patch of the spec, then the status if it changed. The phase is read from the
        status itself, and the operator's watch sees every spec change (``reconcile`` has
        nothing to mark here)."""
        if not tenancy.visible(record.account):
            raise NotFoundError(f"{record.kind} {record.name!r} does not exist")
        k = KINDS[record.kind]
        old = self._body(k, record.name, record.spec)["spec"]
        new = self._body(k, record.name, spec)["spec"]
        body = {"metadata": {"resourceVersion": record.version}, "spec": _merge_patch(old, new)}
        try:
            cr = self._patch(k, record.name, body)
        except ConflictError:
            raise self._race(record) from None
        updated = self.record(k, cr)
        if status != record.status:
            updated = self.update_status(
                updated, status, phase=k.phase_of(status), active=True, now=now
            )
        return updated

    def update_status(
        self, record: Record, status: dict[str, Any], *, phase: str, active: bool, now: datetime
    ) -> Record:
        k = KINDS[record.kind]
        doc = to_camel(status)
        seen = self._seen.get((record.kind, record.name))
        if seen is not None and _prune(doc) == _prune(seen.get("status") or {}):
            # Nothing changes (the phase and ``active`` are read from the status itself).
            return record
        body: dict[str, Any] = {"status": doc}
        if record.version:
            body["metadata"] = {"resourceVersion": record.version}
        try:
            cr = self._patch(k, record.name, body, status=True)
        except ConflictError:
            raise self._race(record) from None
        return self.record(k, cr)

    def set_flag(
        self, kind: str, name: str, flag: Flag, now: datetime, *, value: bool = True
    ) -> Record:
        k = KINDS[kind]
        if tenancy.current() is not None:
            self.get(kind, name)  # another account's: NotFoundError, as for an absent one
        if flag == "delete_requested":
            self._delete(k, name)
            return self.get(kind, name) if k.reconciled else self._gone(k, name)
        annotation = PREEMPT_ANNOTATION if flag == "preempt_requested" else STOP_ANNOTATION
        if not value and flag != "preempt_requested":
            raise ValueError(f"{flag} cannot be withdrawn")
        # null removes the annotation (a JSON merge patch).
        mark = "true" if value else None
        cr = self._patch(k, name, {"metadata": {"annotations": {annotation: mark}}})
        return self.record(k, cr)

    def _gone(self, kind: Kind, name: str) -> Record:
        raise NotFoundError(f"{kind.name} {name!r} does not exist")

    def _delete(self, kind: Kind, name: str) -> None:
        try:
            call(
                f"delete {kind.name} {name}",
                self.custom.delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                kind.crd_plural,
                name,
            )
        except NotFoundError:
            raise NotFoundError(f"{kind.name} {name!r} does not exist") from None

    def delete(self, kind: str, name: str) -> None:
        if tenancy.current() is not None:
            self.get(kind, name)  # another account's: NotFoundError, as for an absent one
        self._delete(KINDS[kind], name)

    def claim(self, record: Record) -> Record:
        return self._finalizer(record, present=True)

    def release(self, record: Record) -> None:
        with contextlib.suppress(NotFoundError):  # already gone
            self._finalizer(record, present=False)

    def _finalizer(self, record: Record, *, present: bool) -> Record:
        k = KINDS[record.kind]
        cr = self._seen.get((record.kind, record.name)) or self._get(k, record.name)
        current = list((cr.get("metadata") or {}).get("finalizers") or [])
        if (FINALIZER in current) == present:
            return record
        wanted = [*current, FINALIZER] if present else [f for f in current if f != FINALIZER]
        body = {"metadata": {"finalizers": wanted, "resourceVersion": record.version}}
        try:
            return self.record(k, self._patch(k, record.name, body))
        except ConflictError:
            raise self._race(record) from None

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # --- demand (requests held for a variant at zero) ---------------------------------------------
    def demand_of(self, endpoint: str) -> dict[str, datetime]:
        """When each variant of the endpoint last had a request held, from the last listing."""
        cr = self._seen.get(("Endpoint", endpoint)) or {}
        raw = ((cr.get("metadata") or {}).get("annotations") or {}).get(DEMAND_ANNOTATION)
        try:
            doc = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return {}
        out: dict[str, datetime] = {}
        for variant, at in doc.items() if isinstance(doc, dict) else ():
            when = parse_time(at)
            if when is not None:
                out[str(variant)] = when
        return out

    def request_replicas(self, endpoint: str, variant: str, now: datetime) -> None:
        """Say that a request is held for ``variant`` (the operator scales it from zero)."""
        k = KINDS["Endpoint"]
        current = self.demand_of(endpoint)
        current[variant] = now
        doc = {v: t.isoformat() for v, t in current.items()}
        self._patch(
            k, endpoint, {"metadata": {"annotations": {DEMAND_ANNOTATION: json.dumps(doc)}}}
        )


def _account_of(cr: dict[str, Any]) -> str:
    labels = (cr.get("metadata") or {}).get("labels") or {}
    return str(labels.get(ACCOUNT_LABEL) or tenancy.ROOT)


def _same_spec(kind: Kind, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two specs mean the same (compared as validated models: defaults filled in)."""
    try:
        left: dict[str, Any] = kind.spec.model_validate(a).model_dump(mode="json")
        right: dict[str, Any] = kind.spec.model_validate(b).model_dump(mode="json")
        return left == right
    except pydantic.ValidationError:
        same: bool = _prune(a) == _prune(b)
        return same
