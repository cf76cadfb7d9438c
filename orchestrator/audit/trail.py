"""The audit trail: calls queued by the front doors, written by one thread in batches.

A front door's cost is one ``SimpleQueue.put`` (``submit``). The writer thread turns the
calls into records, chains them (each carries the hash of the one before), and writes each
batch as a new record file, every ``flush_seconds`` or ``batch_records`` calls, whichever
comes first. Every ``digest_seconds`` it writes a digest: the SHA-256 of each record file
written since the last digest and that digest's signature, signed with the trail's own
Ed25519 key. Everything goes through the object store, so it is encrypted at rest.

On start the chain's head (last number and hash) and the last digest are read back, so a
restarted server continues the same chain. ``stop`` writes what is queued and a digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.audit import layout
from orchestrator.audit.layout import RecordFile
from orchestrator.audit.record import GENESIS, Call, canonical, event_time, seal, to_record
from orchestrator.audit.signing import SigningKey
from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.objects import ObjectStore

log = logging.getLogger("orchestrator.audit")

_STOP = object()


class _Flush:
    def __init__(self, digest: bool) -> None:
        self.digest = digest
        self.done = threading.Event()


@dataclass(frozen=True)
class LookupFilter:
    """LookupEvents' attributes: all given ones must match (exact, case-sensitive)."""

    username: str | None = None
    event_name: str | None = None
    resource_name: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    # Only the records of the caller whose account id (``userIdentity.accountId``) this is;
    # None: every account's (the server's own admins, the system). A record without one (from
    # before accounts, or of a caller no key verified) is the server's own.
    account_id: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        identity = record.get("userIdentity") or {}
        if self.account_id is not None and identity.get("accountId") != self.account_id:
            return False
        if self.username is not None and self.username not in (
            identity.get("userName"),
            identity.get("keyId"),
        ):
            return False
        if self.event_name is not None and record.get("eventName") != self.event_name:
            return False
        if self.resource_name is not None and not any(
            self.resource_name == r or str(r).endswith("/" + self.resource_name)
            for r in record.get("resources") or []
        ):
            return False
        when = event_time(record)
        if self.start is not None and when < self.start:
            return False
        return not (self.end is not None and when > self.end)


class AuditTrail:
    def __init__(
        self,
        objects: ObjectStore,
        signing_key: SigningKey,
        *,
        bucket: str,
        writer: str = "main",
        flush_seconds: float = 5.0,
        digest_seconds: float = 3600.0,
        batch_records: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.objects = objects
        self.signing_key = signing_key
        self.bucket = bucket
        if not layout.WRITER_NAME.fullmatch(writer):
            raise ValidationError(
                f"audit writer {writer!r}: use 1-128 letters, digits, '.', '_' or '-' (on a "
                "cluster, the pod's name)",
                field="ORCH_AUDIT__WRITER",
            )
        self.writer = writer
        self.flush_seconds = flush_seconds
        self.digest_seconds = digest_seconds
        self.batch_records = batch_records
        self.clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.RLock()  # the writer's state: one writer at a time
        self._thread: threading.Thread | None = None
        self._pending: list[Call] = []
        self._seq = 0  # the last record's number (0: none yet)
        self._head = GENESIS  # the last record's hash
        self._undigested: list[dict[str, Any]] = []
        self._digest_seq = 0
        self._digest_key: str | None = None
        self._digest_signature: str | None = None
        self._last_digest = clock()
        self._opened = False

    # --- the front doors' side ---------------------------------------------------------
    def submit(self, call: Call) -> None:
        self._queue.put(call)

    # --- lifecycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Make the bucket and read back the chain's head and the last digest."""
        with self._lock:
            self._open_locked()

    def _open_locked(self) -> None:
        # Until the head is read back nothing is written: a chain must not fork.
        if self._opened:
            return
        if not self.objects.bucket_exists(self.bucket):
            self.objects.create_bucket(self.bucket)
        self._recover()
        self._opened = True

    def start(self) -> None:
        """Start the writer. A store that cannot be reached yet does not stop the server:
        calls are queued, and written once the trail could be opened."""
        try:
            self.open()
        except Exception as e:
            log.error(
                "audit trail: bucket %s cannot be opened yet (%s); recording, and writing once "
                "it can (ORCH_AUDIT__BUCKET names it)",
                self.bucket,
                e,
            )
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Write everything queued and a digest over it, then end the writer."""
        thread = self._thread
        if thread is None:
            self.flush(digest=True)
            return
        self._queue.put(_STOP)
        thread.join(60)
        self._thread = None

    def flush(self, *, digest: bool = False) -> None:
        """Write every call submitted so far (and a digest when ``digest``), and wait."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            marker = _Flush(digest)
            self._queue.put(marker)
            marker.done.wait(60)
            return
        self.open()
        with self._lock:
            self._take_queued()
            self._write_records()
            if digest:
                self._write_digest()

    # --- the writer --------------------------------------------------------------------
    def _run(self) -> None:
        next_write = self.clock() + self.flush_seconds
        while True:
            timeout = max(
                0.0, min(next_write, self._last_digest + self.digest_seconds) - self.clock()
            )
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            with self._lock:
                if item is _STOP:
                    self._take_queued()
                    self._guarded(self._write_records)
                    self._guarded(self._write_digest)
                    return
                if isinstance(item, _Flush):
                    self._take_queued()
                    self._guarded(self._write_records)
                    if item.digest:
                        self._guarded(self._write_digest)
                    item.done.set()
                    continue
                if isinstance(item, Call):
                    self._pending.append(item)
                now = self.clock()
                if len(self._pending) >= self.batch_records or now >= next_write:
                    self._guarded(self._write_records)
                    next_write = now + self.flush_seconds
                if now >= self._last_digest + self.digest_seconds:
                    self._guarded(self._write_digest)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as e:  # the store may be down: keep the records, try again later
            log.error("audit trail: %s failed, retrying later", step.__name__, exc_info=e)

    def _take_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Call):
                self._pending.append(item)
            elif isinstance(item, _Flush):
                item.done.set()  # this flush covers it

    def _write_records(self) -> None:
        if not self._pending:
            return
        self._open_locked()
        seq, head = self._seq, self._head
        lines: list[bytes] = []
        for call in self._pending:
            seq += 1
            record = to_record(call)
            lines.append(seal(record, seq, head))
            head = record["hash"]
        data = b"\n".join(lines) + b"\n"
        first_ms = int(self._pending[0].time * 1000)
        last_ms = int(self._pending[-1].time * 1000)
        key = layout.record_key(self.writer, self._seq + 1, first_ms, max(first_ms, last_ms))
        self.objects.put_bytes(layout.uri(self.bucket, key), data)
        self._undigested.append(
            {
                "key": key,
                "sha256": hashlib.sha256(data).hexdigest(),
                "firstSeq": self._seq + 1,
                "lastSeq": seq,
                "lastHash": head,
            }
        )
        self._seq, self._head = seq, head
        self._pending = []

    def _write_digest(self) -> None:
        self._open_locked()
        now = self.clock()
        seq = self._digest_seq + 1
        digest: dict[str, Any] = {
            "digestSeq": seq,
            "digestTime": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "files": self._undigested,
            "lastSeq": self._seq,
            "lastHash": self._head,
            "writer": self.writer,
            "previousDigestKey": self._digest_key,
            "previousDigestSignature": self._digest_signature,
            "publicKeyFingerprint": self.signing_key.fingerprint(),
        }
        digest["signature"] = self.signing_key.sign(canonical(digest))
        key = layout.digest_key(self.writer, seq)
        self.objects.put_bytes(layout.uri(self.bucket, key), canonical(digest))
        self._digest_seq, self._digest_key = seq, key
        self._digest_signature = digest["signature"]
        self._undigested = []
        self._last_digest = now

    # --- reading back ------------------------------------------------------------------
    def record_files(self, writer: str | None = None) -> list[RecordFile]:
        """Record files in chain order: this trail's writer's (``writer``: another's; "*":
        every writer's, by writer)."""
        chosen = self.writer if writer is None else writer
        prefix = layout.RECORDS if chosen == "*" else f"{layout.RECORDS}{chosen}/"
        found = []
        for info in self.objects.list(layout.uri(self.bucket, prefix)):
            parsed = layout.parse_record_key(layout.key_of(self.bucket, info.uri))
            if parsed is not None:
                found.append(parsed)
        return sorted(found)

    def digest_keys(self, writer: str | None = None) -> list[tuple[int, str]]:
        """(number, key) of a writer's digests, in order (default: this trail's writer)."""
        chosen = self.writer if writer is None else writer
        found = []
        for info in self.objects.list(layout.uri(self.bucket, f"{layout.DIGESTS}{chosen}/")):
            key = layout.key_of(self.bucket, info.uri)
            parsed = layout.parse_digest_key(key)
            if parsed is not None:
                found.append((parsed[1], key))
        return sorted(found)

    def writers(self) -> list[str]:
        """Every writer with a record file or a digest in the bucket."""
        names = {f.writer for f in self.record_files("*")}
        for info in self.objects.list(layout.uri(self.bucket, layout.DIGESTS)):
            parsed = layout.parse_digest_key(layout.key_of(self.bucket, info.uri))
            if parsed is not None:
                names.add(parsed[0])
        return sorted(names | {self.writer})

    def read(self, key: str) -> bytes:
        return self.objects.get_bytes(layout.uri(self.bucket, key))

    def _recover(self) -> None:
        digests = self.digest_keys()
        covered = 0
        if digests:
            seq, key = digests[-1]
            try:
                last = json.loads(self.read(key))
                self._digest_seq, self._digest_key = seq, key
                self._digest_signature = last.get("signature")
                covered = int(last.get("lastSeq", 0))
            except (ValueError, NotFoundError) as e:
                log.error("audit trail: the last digest %s cannot be read: %s", key, e)
        files = self.record_files()
        for record_file in reversed(files):
            records = list(_lines(self.read(record_file.key)))
            if records:
                self._seq = int(records[-1]["seq"])
                self._head = str(records[-1]["hash"])
                break
        for record_file in files:
            if record_file.first_seq > covered:
                data = self.read(record_file.key)
                records = list(_lines(data))
                if not records:
                    continue
                self._undigested.append(
                    {
                        "key": record_file.key,
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "firstSeq": record_file.first_seq,
                        "lastSeq": int(records[-1]["seq"]),
                        "lastHash": str(records[-1]["hash"]),
                    }
                )

    def lookup(
        self, where: LookupFilter, *, max_results: int = 50, next_token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Matching records of every writer, newest first; and the token for the next page
        (None: no more). ``next_token``: where the previous page ended."""
        self.flush()
        after = _parse_token(next_token)
        start_ms = None if where.start is None else int(where.start.timestamp() * 1000)
        end_ms = None if where.end is None else int(where.end.timestamp() * 1000)
        found: list[tuple[tuple[str, str, int], dict[str, Any]]] = []
        for record_file in self.record_files("*"):
            if start_ms is not None and record_file.last_ms < start_ms:
                continue
            if end_ms is not None and record_file.first_ms > end_ms:
                continue
            for record in _lines(self.read(record_file.key)):
                order = (str(record["eventTime"]), record_file.writer, int(record["seq"]))
                if after is not None and order >= after:
                    continue
                if where.matches(record):
                    found.append((order, record))
        found.sort(key=lambda pair: pair[0], reverse=True)
        page = [record for _, record in found[:max_results]]
        if len(found) <= max_results:
            return page, None
        last = found[max_results - 1][0]
        return page, f"{last[0]}|{last[1]}|{last[2]}"

    def public_pem(self) -> str:
        return self.signing_key.public_pem()


def _parse_token(token: str | None) -> tuple[str, str, int] | None:
    if token is None:
        return None
    parts = token.split("|")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValidationError(
            f"NextToken {token!r} is not one this server gave; send the NextToken of the "
            "previous page as it came",
            field="NextToken",
        )
    return parts[0], parts[1], int(parts[2])


def _lines(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "seq" in value:
            yield value
