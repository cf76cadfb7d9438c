"""Scoring one instance's share of a transform job against a model server.

``run_instance``: instance 0 writes the work plan from the input listing (unless a plan is
there from an earlier attempt); the others wait for it. Then, for each range of this
instance whose part is not written yet, in file and range order: read the range's bytes
(gzip decompressed), cut them into request bodies, send them to ``POST /invocations`` with up
to MaxConcurrentTransforms in flight, write the answers in input order into the range's part,
and assemble the file's ``.out`` once all its parts are there (``output``). A stop (SIGTERM)
finishes nothing more: the parts written stay, a rerun skips them.

Two paths make the bodies. Line input without DataProcessing, MultiRecord: the bodies are
runs of whole lines cut from the raw bytes at newlines (``reading.cut_lines``), records only
counted, and each answer is written whole. Everything else goes record by record
(``transform.records``, ``dataprocessing``, ``batching``).

A failure names the input key and the record (and line) numbers in the file, as
``FailureReason(kind="ClientError", ...)``; the first one ends the instance.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Annotated

import httpx
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import NotFoundError, OrchestratorError, ValidationError
from orchestrator.objects import ObjectStore
from orchestrator.resources.failures import (
    FailureReason,
    algorithm_error,
    client_error,
    internal_error,
)
from orchestrator.resources.transform import MAX_PAYLOAD_PRODUCT_MB, CreateTransformJobRequest
from orchestrator.settings import TransformSettings
from orchestrator.transform.batching import PayloadTooLarge, pack
from orchestrator.transform.dataprocessing import DataProcessing
from orchestrator.transform.errors import TransformDataError
from orchestrator.transform.records import RecordError, split_records
from orchestrator.transform.workplan import (
    WorkPlan,
    WorkRange,
    make_plan,
    parse_manifest,
)
from orchestrator.transformer.invoke import Answer, InvocationError, Invoker, ModelAnswerError
from orchestrator.transformer.output import assemble_if_complete
from orchestrator.transformer.reading import (
    CorruptInput,
    count_lines,
    cut_lines,
    decompress,
    line_span,
    read_bytes,
)
from orchestrator.transformer.scratch import (
    InstanceProgress,
    InstanceResult,
    Outcome,
    RangeProgress,
    TransformScratch,
)
from orchestrator.transformer.server import ExternalServer, ModelServer

__all__ = ["ExternalServer", "FileFailure", "InstanceConfig", "ModelServer", "run_instance"]

MIB = 1024 * 1024
PLAN_POLL_SECONDS = 0.2
EXECUTION_PARAMETERS_TIMEOUT = 5.0
SPOOL_BYTES = 32 * MIB  # a range's answers stay in memory up to this, then go to a temp file
_WAIT_SLICE = 0.25  # how often a wait for an answer looks at the stop flag


class InstanceConfig(BaseModel):
    """What one instance runs (``instance.json``, written by the backend)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    Name: str
    Instance: Annotated[int, Field(ge=0)]
    Attempt: Annotated[int, Field(ge=1)]
    InstanceCount: Annotated[int, Field(ge=1)]
    Spec: CreateTransformJobRequest
    ModelName: str


class FileFailure(Exception):
    """Input ``file`` cannot be scored: the job fails with ``reason``."""

    def __init__(self, file: int | None, reason: FailureReason) -> None:
        super().__init__(reason.message)
        self.file = file
        self.reason = reason


@dataclass(slots=True)
class _Work:
    """One request body of a range: records ``first .. first + count - 1`` of the range."""

    body: bytes
    first: int
    count: int
    size: int  # input bytes it stands for (progress)
    inputs: list[bytes] | None = None  # the original records, when answers are joined


@dataclass
class _RangeState:
    range: WorkRange
    offset: int  # where the range's first record begins in the (decompressed) file
    sent: int = 0
    answered: int = 0
    records: int = 0
    all_sent: bool = False
    spool: IO[bytes] = field(
        default_factory=lambda: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    )


def run_instance(
    store: ObjectStore,
    config: InstanceConfig,
    server: ModelServer,
    settings: TransformSettings,
    stop: threading.Event,
) -> InstanceResult:
    """Score this instance's ranges against ``server`` (ready already); the result to record."""
    return _Runner(store, config, server, settings, stop).run()


def log(message: str) -> None:
    print(f"transform: {message}", file=sys.stderr, flush=True)


class _Runner:
    def __init__(
        self,
        store: ObjectStore,
        config: InstanceConfig,
        server: ModelServer,
        settings: TransformSettings,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.config = config
        self.spec = config.Spec
        self.server = server
        self.settings = settings
        self.stop = stop
        self.scratch = TransformScratch(store, config.Name)
        transform_input = self.spec.TransformInput
        self.split = transform_input.SplitType
        self.compression = transform_input.CompressionType
        self.strategy = self.spec.strategy
        self.limit = self.spec.max_payload_mb * MIB
        self.assemble_lines = self.spec.TransformOutput.AssembleWith == "Line"
        self.accept = self.spec.TransformOutput.Accept or transform_input.ContentType or ""
        self.plan: WorkPlan | None = None
        self.tracker: _Tracker | None = None
        self.dp = DataProcessing()
        self.fast = False
        self.left: Counter[int] = Counter()  # this instance's ranges not written, per file
        self.ranges_per_file: Counter[int] = Counter()

    def result(
        self, outcome: Outcome, reason: FailureReason | None = None, file: int | None = None
    ) -> InstanceResult:
        return InstanceResult(
            Instance=self.config.Instance,
            Attempt=self.config.Attempt,
            Outcome=outcome,
            Failure=reason,
            File=file,
        )

    def run(self) -> InstanceResult:
        try:
            self.dp = DataProcessing.from_request(self.spec)
            plan = self._plan()
        except FileFailure as e:
            return self.result("failed", e.reason, e.file)
        except (TransformDataError, ValidationError) as e:
            return self.result("failed", client_error(e.message))
        if plan is None:
            return self.result("stopped")
        self.plan = plan
        self.ranges_per_file = Counter(r.File for r in plan.Ranges)
        # Line input without DataProcessing: bodies cut from the raw bytes (no records).
        self.fast = (
            self.split == "Line"
            and self.strategy == "MultiRecord"
            and self.dp.input_filter is None
            and not self.dp.needs_split
        )
        concurrency = self._concurrency()
        mine = plan.ranges_of(self.config.Instance)
        done = self.scratch.done_ranges()
        todo = [r for r in mine if (r.File, r.Index) not in done]
        log(
            f"instance {self.config.Instance} (attempt {self.config.Attempt}): "
            f"{len(mine)} ranges of {len(plan.Inputs)} files, {len(mine) - len(todo)} done "
            f"already; {concurrency} requests at once"
        )
        invoker = Invoker(
            self.server.url,
            content_type=self.spec.TransformInput.ContentType,
            accept=self.spec.TransformOutput.Accept,
            timeout_seconds=self.spec.client_config.InvocationsTimeoutInSeconds,
            max_retries=self.spec.client_config.InvocationsMaxRetries,
            concurrency=concurrency,
        )
        self.tracker = _Tracker(self.scratch, self.config, self.settings.progress_interval_seconds)
        self.tracker.start()
        try:
            finished = self._score(todo, invoker, concurrency)
            if finished:  # files whose ranges were all written before (by an earlier attempt)
                for file in sorted({r.File for r in mine} - {r.File for r in todo}):
                    self._assemble(file)
        except FileFailure as e:
            log(f"failed: {e.reason.render()}")
            return self.result("failed", e.reason, e.file)
        finally:
            invoker.close()
            self.tracker.close()
        return self.result("completed" if finished else "stopped")

    # --- the plan ---------------------------------------------------------------------------
    def _plan(self) -> WorkPlan | None:
        plan = self.scratch.read_plan()
        if plan is not None or self.config.Instance != 0:
            return plan or self._wait_for_plan()
        plan = make_plan(
            self._inputs(),
            self._prefix(),
            self.config.InstanceCount,
            self.settings.range_bytes,
            splittable=self.split == "Line" and self.compression == "None",
        )
        self.scratch.write_plan(plan)
        log(
            f"planned {len(plan.Ranges)} ranges of {len(plan.Inputs)} files "
            f"({plan.total_bytes} bytes) over {plan.InstanceCount} instances"
        )
        return plan

    def _prefix(self) -> str:
        source = self.spec.TransformInput.DataSource.S3DataSource
        if source.S3DataType == "S3Prefix":
            return source.S3Uri
        return parse_manifest(self._manifest_body())[0]

    def _manifest_body(self) -> bytes:
        uri = self.spec.TransformInput.DataSource.S3DataSource.S3Uri
        try:
            return self.store.get_bytes(uri)
        except NotFoundError as e:
            raise FileFailure(
                None,
                client_error(
                    f"TransformInput.DataSource.S3DataSource.S3Uri: the ManifestFile {uri} "
                    "does not exist; upload it or fix the URI"
                ),
            ) from e

    def _inputs(self) -> list[tuple[str, int]]:
        source = self.spec.TransformInput.DataSource.S3DataSource
        if source.S3DataType == "S3Prefix":
            try:
                listed = self.store.list(source.S3Uri)
            except NotFoundError:
                listed = []
            return [(info.uri, info.size) for info in listed]
        prefix, entries = parse_manifest(self._manifest_body())
        found = []
        for entry in entries:
            uri = prefix + entry
            try:
                found.append((uri, self.store.head(uri).size))
            except NotFoundError as e:
                raise FileFailure(
                    None,
                    client_error(
                        f"TransformInput.DataSource.S3DataSource.S3Uri: the ManifestFile "
                        f"{source.S3Uri} lists {entry!r}, but {uri} does not exist"
                    ),
                ) from e
        return found

    def _wait_for_plan(self) -> WorkPlan | None:
        deadline = time.monotonic() + self.settings.startup_timeout_seconds
        while not self.stop.wait(PLAN_POLL_SECONDS):
            plan = self.scratch.read_plan()
            if plan is not None:
                return plan
            if time.monotonic() > deadline:
                raise FileFailure(
                    None,
                    internal_error(
                        f"instance {self.config.Instance}: instance 0 wrote no work plan within "
                        f"{self.settings.startup_timeout_seconds:g} s"
                    ),
                )
        return None

    def _concurrency(self) -> int:
        wanted = self.spec.MaxConcurrentTransforms
        if not wanted:
            wanted = 1
            try:
                response = httpx.get(
                    f"{self.server.url}/execution-parameters",
                    timeout=EXECUTION_PARAMETERS_TIMEOUT,
                    trust_env=False,
                )
                if response.status_code == 200:
                    value = response.json().get("MaxConcurrentTransforms")
                    if isinstance(value, int) and value >= 1:
                        wanted = value
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
            payload = self.spec.max_payload_mb
            if payload:  # the container's number, kept under SageMaker's product limit
                wanted = max(1, min(wanted, MAX_PAYLOAD_PRODUCT_MB // payload))
        return wanted

    # --- scoring ----------------------------------------------------------------------------
    def _score(self, todo: list[WorkRange], invoker: Invoker, concurrency: int) -> bool:
        """Score ``todo``; False when stopped first. A range whose answers are all in is
        written once the next request is on its way, so the model is not kept waiting."""
        window: deque[tuple[_RangeState, _Work, Future[Answer]]] = deque()
        opened: list[_RangeState] = []
        ready: list[_RangeState] = []
        self.left = Counter(r.File for r in todo)
        try:
            for work_range in todo:
                if self.stop.is_set():
                    return False
                state = _RangeState(work_range, offset=work_range.Start)
                opened.append(state)
                for work in self._works(state):
                    while len(window) >= concurrency:
                        if not self._collect(window.popleft(), ready):
                            return False
                    if self.stop.is_set():
                        return False
                    state.sent += 1
                    window.append((state, work, invoker.submit(work.body)))
                    self._finish_all(ready)
                state.all_sent = True
                if state.answered == state.sent:
                    ready.append(state)
                self._finish_all(ready)
            while window:
                if not self._collect(window.popleft(), ready):
                    return False
                self._finish_all(ready)
            return True
        finally:
            for state in opened:  # the answers of ranges not finished are dropped
                state.spool.close()

    def _collect(
        self, entry: tuple[_RangeState, _Work, Future[Answer]], ready: list[_RangeState]
    ) -> bool:
        state, work, future = entry
        answer = self._wait(state, work, future)
        if answer is None:
            return False
        state.spool.write(self._output(state, work, answer))
        state.answered += 1
        state.records += work.count
        assert self.tracker is not None
        self.tracker.answered(state.range, work.size, work.count, answer.seconds)
        if state.all_sent and state.answered == state.sent:
            ready.append(state)
        return True

    def _finish_all(self, ready: list[_RangeState]) -> None:
        while ready:
            self._finish(ready.pop(0))

    def _wait(self, state: _RangeState, work: _Work, future: Future[Answer]) -> Answer | None:
        while True:
            if self.stop.is_set():
                return None
            try:
                return future.result(timeout=_WAIT_SLICE)
            except FutureTimeout:
                continue
            except ModelAnswerError as e:
                raise self._failure(state, work, str(e)) from e
            except InvocationError as e:
                why = self.server.died()
                if why is not None:
                    reason = algorithm_error(
                        f"{self._where(state, work)}: the model server exited: {why}"
                    )
                elif e.timed_out:
                    reason = client_error(f"{self._where(state, work)}: {e}")
                else:
                    reason = internal_error(f"{self._where(state, work)}: {e}")
                raise FileFailure(state.range.File, reason) from e

    def _finish(self, state: _RangeState) -> None:
        work_range = state.range
        state.spool.seek(0)
        self.scratch.write_part(
            work_range.File,
            work_range.Index,
            state.spool,  # type: ignore[arg-type]
            records=state.records,
            size=work_range.size,
        )
        state.spool.close()
        assert self.tracker is not None
        self.tracker.range_done(work_range)
        self.left[work_range.File] -= 1
        if not self.left[work_range.File]:  # this instance's last range of the file
            self._assemble(work_range.File)

    def _assemble(self, file: int) -> None:
        assert self.plan is not None
        path = self.spec.TransformOutput.S3OutputPath
        ranges = self.ranges_per_file[file]
        if assemble_if_complete(self.store, self.scratch, self.plan, file, path, ranges=ranges):
            log(f"wrote {self.plan.output_uri(file, path)}")

    # --- request bodies ---------------------------------------------------------------------
    def _works(self, state: _RangeState) -> Iterator[_Work]:
        assert self.plan is not None
        work_range = state.range
        obj = self.plan.Inputs[work_range.File]
        if self.split == "Line" and self.compression == "None":
            state.offset, data = line_span(
                self.store, obj.Uri, work_range.Start, work_range.End, obj.Size
            )
        else:
            whole = self.split == "None" and self.compression == "None"
            if whole and self.limit and obj.Size > self.limit:
                raise self._too_large(state, 0, obj.Size)
            try:
                data = decompress(self.store.get_bytes(obj.Uri), self.compression, obj.Key)
            except CorruptInput as e:
                raise FileFailure(work_range.File, client_error(str(e))) from e
            state.offset = 0
        scale = work_range.size / len(data) if data else 0.0
        if self.fast:
            first = 0
            try:
                for start, end in cut_lines(data, self.limit):
                    body = data[start:end]
                    count = count_lines(body)
                    yield _Work(body, first, count, round((end - start) * scale))
                    first += count
            except PayloadTooLarge as e:
                raise self._too_large(state, e.index, e.size) from e
            return
        yield from self._record_works(state, data, scale)

    def _record_works(self, state: _RangeState, data: bytes, scale: float) -> Iterator[_Work]:
        key = self._key(state)
        try:
            records = split_records(data, self.split)
        except RecordError as e:
            raise FileFailure(state.range.File, client_error(f"{key}: {e}")) from e
        inputs = []
        for index, record in enumerate(records):
            try:
                inputs.append(self.dp.filter_input(record))
            except TransformDataError as e:
                raise self._data_failure(state, index, e) from e
        size = len(data) * scale / len(records) if records else 0.0
        join = self.dp.needs_split
        try:
            for batch in pack(inputs, self.strategy, self.limit, self.split):
                first, count = batch.first, batch.count
                originals = records[first : first + count] if join else None
                yield _Work(batch.body, first, count, round(size * count), originals)
        except PayloadTooLarge as e:
            raise self._too_large(state, e.index, e.size) from e

    # --- answers ----------------------------------------------------------------------------
    def _output(self, state: _RangeState, work: _Work, answer: Answer) -> bytes:
        if work.inputs is None:
            body = answer.body
            if self.assemble_lines and not body.endswith(b"\n"):
                body += b"\n"
            return body
        accept = answer.content_type or self.accept
        try:
            outputs = self.dp.split_output(answer.body, work.count, accept)
        except TransformDataError as e:
            raise self._failure(state, work, e.message) from e
        lines = []
        for index, (record, output) in enumerate(zip(work.inputs, outputs, strict=True)):
            try:
                lines.append(self.dp.join_and_filter_output(record, output))
            except TransformDataError as e:
                raise self._data_failure(state, work.first + index, e) from e
        if self.assemble_lines:
            return b"".join(line + b"\n" for line in lines)
        return b"".join(lines)

    # --- failures ---------------------------------------------------------------------------
    def _key(self, state: _RangeState) -> str:
        assert self.plan is not None
        return self.plan.Inputs[state.range.File].Key

    def _records_before(self, state: _RangeState) -> int:
        """Line records of the file before the range's first (read only when a failure is
        reported: the file up to the range)."""
        if self.split != "Line" or state.offset == 0:
            return 0
        assert self.plan is not None
        uri = self.plan.Inputs[state.range.File].Uri
        lines, at = 0, 0
        while at < state.offset:
            chunk = read_bytes(self.store, uri, at, min(16 * MIB, state.offset - at))
            lines += chunk.count(b"\n")
            at += len(chunk)
        return lines

    def _where(self, state: _RangeState, work: _Work) -> str:
        return self._where_records(state, work.first, work.count)

    def _where_records(self, state: _RangeState, first: int, count: int) -> str:
        key = self._key(state)
        if self.split == "None":
            return key
        try:
            number = self._records_before(state) + first + 1
        except OrchestratorError:
            number = first + 1
        last = number + count - 1
        if count == 1:
            where = f"{key}: record {number}"
            return f"{where} (line {number})" if self.split == "Line" else where
        where = f"{key}: records {number}-{last}"
        return f"{where} (lines {number}-{last})" if self.split == "Line" else where

    def _failure(self, state: _RangeState, work: _Work, problem: str) -> FileFailure:
        return FileFailure(state.range.File, client_error(f"{self._where(state, work)}: {problem}"))

    def _data_failure(
        self, state: _RangeState, index: int, error: TransformDataError
    ) -> FileFailure:
        where = self._where_records(state, index, 1)
        return FileFailure(state.range.File, client_error(f"{where}: {error.message}"))

    def _too_large(self, state: _RangeState, index: int, size: int) -> FileFailure:
        where = self._where_records(state, index, 1)
        return FileFailure(
            state.range.File,
            client_error(
                f"{where}: the record needs {size} bytes in a request, over MaxPayloadInMB "
                f"({self.spec.max_payload_mb} MB); raise MaxPayloadInMB (at most 100) or split "
                "the input into smaller records"
            ),
        )


class _Tracker:
    """This attempt's counts, written as its progress record every ``interval`` seconds."""

    def __init__(self, scratch: TransformScratch, config: InstanceConfig, interval: float) -> None:
        self.scratch = scratch
        self.config = config
        self.interval = interval
        self.started_at = datetime.now(UTC)
        self._lock = threading.Lock()
        self._ranges: dict[tuple[int, int], list[int]] = {}  # bytes, records
        self._requests = 0
        self._model_seconds = 0.0
        self._records = 0
        self._scoring_started = time.monotonic()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="transform-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def answered(self, work_range: WorkRange, size: int, records: int, seconds: float) -> None:
        with self._lock:
            counts = self._ranges.setdefault((work_range.File, work_range.Index), [0, 0])
            counts[0] += size
            counts[1] += records
            self._requests += 1
            self._model_seconds += seconds
            self._records += records

    def range_done(self, work_range: WorkRange) -> None:
        with self._lock:
            self._ranges.pop((work_range.File, work_range.Index), None)

    def snapshot(self) -> InstanceProgress:
        with self._lock:
            elapsed = time.monotonic() - self._scoring_started
            rate = self._records / elapsed if self._requests and elapsed > 0 else None
            return InstanceProgress(
                Instance=self.config.Instance,
                Attempt=self.config.Attempt,
                UpdatedAt=datetime.now(UTC),
                StartedAt=self.started_at,
                InProgress=[
                    RangeProgress(File=f, Range=r, BytesProcessed=b, RecordsProcessed=n)
                    for (f, r), (b, n) in sorted(self._ranges.items())
                ],
                Requests=self._requests,
                ModelSeconds=self._model_seconds,
                RecordsPerSecond=rate,
            )

    def write(self) -> None:
        try:
            self.scratch.write_progress(self.snapshot())
        except (OrchestratorError, OSError) as e:  # progress is advisory: go on scoring
            log(f"cannot write the progress record: {e}")

    def _loop(self) -> None:
        while not self._closing.wait(self.interval):
            self.write()

    def close(self) -> None:
        """The last progress record; answers of ranges left unwritten are dropped from it (a
        later attempt scores those ranges again)."""
        self._closing.set()
        self._thread.join()
        with self._lock:
            self._ranges.clear()
        self.write()
