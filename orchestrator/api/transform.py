"""Batch transform jobs' operations, independent of HTTP (``ControlPlane.transform``).

A create is checked as far as it can be before anything runs, each refusal a 400 naming the
field: what the backend can carry out (``plan.support``, and transform jobs at all), the Model
(it must exist), the DataProcessing the runner will build (the filters parse; CSV or JSON
records), the input (objects under the S3Prefix, or a ManifestFile that parses and whose every
object exists). The request's own model has already checked its bounds
(MaxConcurrentTransforms x MaxPayloadInMB, ...). Stops and deletes record
desired state for the reconciler (``controller/plan/transform.py``); logs are the backend's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from orchestrator.backends.base import TransformBackend
from orchestrator.controller.plan.support import BACKENDS
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.objects import buckets
from orchestrator.objects.uri import is_bucket_name
from orchestrator.resources.kinds import MODEL, TRANSFORM_JOB
from orchestrator.resources.transform import (
    TERMINAL_TRANSFORM_STATUSES,
    CreateTransformJobRequest,
    DescribeTransformJobResponse,
    TransformJobState,
    TransformJobStatus,
    TransformJobSummary,
)
from orchestrator.store import Record
from orchestrator.transform.dataprocessing import DataProcessing
from orchestrator.transform.workplan import S3_URI_FIELD, ManifestError, parse_manifest

if TYPE_CHECKING:
    from orchestrator.api.service import ControlPlane, ListQuery

KIND = TRANSFORM_JOB
INPUT_URI = S3_URI_FIELD
LOG_LIMIT = 4 << 20


@contextmanager
def _named(field: str) -> Iterator[None]:
    """An object URI the store refuses (a bucket name S3 does not allow), naming ``field``."""
    try:
        yield
    except ValidationError as e:
        raise ValidationError(f"{field}: {e.message}", field=field) from e


class TransformJobs:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    # --- create ------------------------------------------------------------------------------
    def create(self, req: CreateTransformJobRequest) -> tuple[str, bool]:
        if self.cp.store.find(KIND.name, req.TransformJobName) is None:
            self.check(req)
        return self.cp._create(KIND, req)

    def check(self, req: CreateTransformJobRequest) -> None:
        self.cp._check_supported(KIND.name, req)
        self._check_backend()
        if self.cp.store.find(MODEL.name, req.ModelName) is None:
            raise ValidationError(
                f"ModelName: Model {req.ModelName!r} does not exist; create it first "
                "(orch models create, or the client's create_model)",
                field="ModelName",
            )
        self._check_data_processing(req)
        self.cp.check_kms_key(req.TransformOutput.KmsKeyId, "TransformOutput.KmsKeyId")
        self.cp.check_bucket(
            req.TransformOutput.S3OutputPath, "TransformOutput.S3OutputPath", output=True
        )
        self._check_input(req)

    def _check_backend(self) -> None:
        """A backend of this product that runs no transform jobs refuses them by name (a test
        backend, as in ``plan.support``, refuses only what none does)."""
        name = self.cp.backend_name
        if name in BACKENDS and not isinstance(self.cp.backend, TransformBackend):
            raise ValidationError(
                f"TransformJobName: the {name} backend does not run transform jobs in this "
                "version; run the control plane on a backend that does",
                field="TransformJobName",
            )

    @staticmethod
    def _check_data_processing(req: CreateTransformJobRequest) -> None:
        """The filters parse (a ``JsonPathError`` names the field and the position) and the
        records they apply to are CSV or JSON: what the runner will build, built now."""
        DataProcessing.from_request(req)

    def _check_input(self, req: CreateTransformJobRequest) -> None:
        source = req.TransformInput.DataSource.S3DataSource
        uri = source.S3Uri
        if source.S3DataType == "S3Prefix":
            if not self._listed(uri):
                raise ValidationError(
                    f"{INPUT_URI}: no objects under {uri} (its bucket does not exist, is not "
                    "your account's, or holds none there); upload the data first (orch objects "
                    "put, or the client's upload) or fix the URI",
                    field=INPUT_URI,
                )
            return
        try:
            if not self._visible(uri):
                raise NotFoundError(f"bucket of {uri} does not exist")  # or is another's
            with _named(INPUT_URI):
                data = self.cp.objects.get_bytes(uri)
        except NotFoundError:
            raise ValidationError(
                f"{INPUT_URI}: no manifest at {uri} (S3DataType ManifestFile names one object, "
                "a JSON list of a prefix and keys); upload it first or fix the URI",
                field=INPUT_URI,
            ) from None
        try:
            prefix, entries = parse_manifest(data)
        except ManifestError as e:
            raise ValidationError(
                f"{INPUT_URI}: the manifest {uri} does not parse: {e.message}", field=INPUT_URI
            ) from e
        # Every object it names must exist now: one listing of its prefix, not one call each.
        listed = self._listed(prefix)
        missing = [
            (i, prefix + e) for i, e in enumerate(entries, start=1) if prefix + e not in listed
        ]
        if missing:
            number, first = missing[0]
            raise ValidationError(
                f"{INPUT_URI}: the manifest {uri} names {len(missing)} object(s) that do not "
                f"exist, the first entry {number} ({first}); upload them or fix the manifest",
                field=INPUT_URI,
            )

    def _listed(self, prefix: str) -> set[str]:
        """The URIs of the objects under ``prefix`` (none: no such bucket either, nor one of
        another account: a manifest's prefix may name any bucket)."""
        if not self._visible(prefix):
            return set()
        with _named(INPUT_URI):
            try:
                return {o.uri for o in self.cp.objects.list(prefix)}
            except NotFoundError:
                return set()

    def _visible(self, uri: str) -> bool:
        """Whether the caller may read the bucket of ``uri``: its account's (a name that is
        no bucket's is left to the store to refuse, naming the rule)."""
        bucket = uri.removeprefix("s3://").partition("/")[0]
        if not uri.startswith("s3://") or not is_bucket_name(bucket):
            return True
        return buckets.visible(self.cp.objects, bucket)

    # --- read ----------------------------------------------------------------------------------
    def describe(self, name: str) -> DescribeTransformJobResponse:
        r = self.cp.store.get(KIND.name, name)
        status = dict(r.status)
        if r.stop_requested and r.phase == TransformJobStatus.IN_PROGRESS.value:
            # Asked for: shown at once, as SageMaker does, until the controller has it.
            status["TransformJobStatus"] = TransformJobStatus.STOPPING.value
        return DescribeTransformJobResponse.model_validate(
            {
                **r.spec,
                **status,
                "TransformJobArn": self.cp.arn(KIND.name, name, r.account),
                "CreationTime": r.created_at,
                "LastModifiedTime": r.updated_at,
            }
        )

    def list_jobs(self, q: ListQuery) -> tuple[list[TransformJobSummary], str | None]:
        statuses = [s.value for s in TransformJobStatus]
        if q.StatusEquals is not None and q.StatusEquals not in statuses:
            raise ValidationError(
                f"StatusEquals must be one of {statuses}, not {q.StatusEquals!r}",
                field="StatusEquals",
            )

        def summarize(r: Record) -> TransformJobSummary:
            st = TransformJobState.model_validate(r.status)
            status = st.TransformJobStatus
            if r.stop_requested and status == TransformJobStatus.IN_PROGRESS:
                status = TransformJobStatus.STOPPING
            return TransformJobSummary(
                TransformJobName=r.name,
                TransformJobArn=self.cp.arn(KIND.name, r.name, r.account),
                CreationTime=r.created_at,
                TransformEndTime=st.TransformEndTime,
                LastModifiedTime=r.updated_at,
                TransformJobStatus=status,
                FailureReason=st.FailureReason,
            )

        return self.cp._list(KIND.name, q, summarize)

    def logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int, bool]:
        """The job's log from ``offset`` (every instance's runner and model server), the next
        offset, and whether more may come (the job is still running)."""
        r = self.cp.store.get(KIND.name, name)
        if offset < 0:
            raise ValidationError(f"offset must be >= 0, not {offset}", field="offset")
        if not 1 <= limit <= LOG_LIMIT:
            raise ValidationError(f"limit must be in 1..{LOG_LIMIT}, not {limit}", field="limit")
        backend = self.cp.backend
        if not isinstance(backend, TransformBackend):
            raise ValidationError(
                f"TransformJobName: the {self.cp.backend_name} backend runs no transform jobs, "
                f"so TransformJob {name!r} has no log here",
                field="TransformJobName",
            )
        data, nxt = backend.read_transform_logs(name, offset, limit)
        return data, nxt, r.active

    # --- stop, delete --------------------------------------------------------------------------
    def stop(self, name: str) -> None:
        r = self.cp.store.get(KIND.name, name)
        if r.phase in {TransformJobStatus.COMPLETED.value, TransformJobStatus.FAILED.value}:
            raise ConflictError(
                f"TransformJob {name!r} has already ended ({r.phase}); nothing to stop"
            )
        self.cp.store.set_flag(KIND.name, name, "stop_requested", self.cp.clock.now())
        self.cp.wake()

    def delete(self, name: str) -> None:
        r = self.cp.store.get(KIND.name, name)
        if r.phase not in {s.value for s in TERMINAL_TRANSFORM_STATUSES}:
            raise ConflictError(
                f"TransformJob {name!r} is {r.phase}; stop it first (orch transform stop {name})"
            )
        self.cp.store.set_flag(KIND.name, name, "delete_requested", self.cp.clock.now())
        self.cp.wake()
