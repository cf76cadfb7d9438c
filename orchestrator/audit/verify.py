"""Checking the trail: every digest's signature and link, every record file against its
digest, every record's hash and its link to the one before.

The answer names the first thing found wrong, in the trail's order: a digest changed
(its signature fails), a digest removed (a number missing, or the next one's
``previousDigestSignature`` pointing elsewhere), a record file removed or changed (its
SHA-256 is not the digest's), a record changed (its hash), removed (a number missing) or
reordered (a number out of place). Record files newer than the last digest are checked by
their chain only; they are counted as undigested.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from orchestrator.audit.record import GENESIS, canonical, record_hash
from orchestrator.audit.signing import verify_signature
from orchestrator.audit.trail import AuditTrail
from orchestrator.errors import NotFoundError


@dataclass(frozen=True)
class Problem:
    kind: str  # record-changed, record-removed, record-reordered, file-removed, file-changed,
    # digest-changed, digest-removed
    where: str  # the record's number and file, or the digest's key
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"Kind": self.kind, "Where": self.where, "Message": self.message}


@dataclass
class Report:
    records: int = 0
    record_files: int = 0
    digests: int = 0
    undigested_files: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "Ok": self.ok,
            "Records": self.records,
            "RecordFiles": self.record_files,
            "Digests": self.digests,
            "UndigestedFiles": self.undigested_files,
            "FirstProblem": self.problems[0].to_dict() if self.problems else None,
            "Problems": [p.to_dict() for p in self.problems],
        }


def verify(trail: AuditTrail, public_key: Ed25519PublicKey | None = None) -> Report:
    """Check the whole trail, every writer's chain (with the trail's own key unless
    ``public_key`` is given)."""
    trail.flush()
    key = public_key or trail.signing_key.public
    report = Report()
    for writer in trail.writers():
        expected_files = _check_digests(trail, writer, key, report)
        _check_records(trail, writer, expected_files, report)
    return report


def _check_digests(
    trail: AuditTrail, writer: str, key: Ed25519PublicKey, report: Report
) -> dict[str, dict[str, Any]]:
    """The record files the digests vouch for, by key; digest problems into ``report``."""
    files: dict[str, dict[str, Any]] = {}
    previous_signature: str | None = None
    previous_key: str | None = None
    expected = 1
    for seq, digest_key in trail.digest_keys(writer):
        report.digests += 1
        try:
            digest = json.loads(trail.read(digest_key))
        except (ValueError, NotFoundError):
            report.problems.append(
                Problem("digest-changed", digest_key, f"digest {digest_key} cannot be read")
            )
            continue
        body = {k: v for k, v in digest.items() if k != "signature"}
        if not verify_signature(key, str(digest.get("signature", "")), canonical(body)):
            report.problems.append(
                Problem(
                    "digest-changed",
                    digest_key,
                    f"digest {digest_key}: its signature does not verify: it was changed "
                    "(or signed by another key)",
                )
            )
        if seq > expected:
            missing = ", ".join(f"{n:08d}" for n in range(expected, seq))
            report.problems.append(
                Problem(
                    "digest-removed",
                    digest_key,
                    f"digest(s) {missing} missing before {digest_key}: removed",
                )
            )
        elif digest.get("digestSeq") != seq:
            report.problems.append(
                Problem(
                    "digest-reordered",
                    digest_key,
                    f"digest {digest_key} holds digest number {digest.get('digestSeq')}: "
                    "moved or reordered",
                )
            )
        elif seq > 1 and (
            digest.get("previousDigestSignature") != previous_signature
            or digest.get("previousDigestKey") != previous_key
        ):
            report.problems.append(
                Problem(
                    "digest-removed",
                    digest_key,
                    f"digest {digest_key}: the previous digest it names is not "
                    f"{previous_key}: a digest before it was removed or replaced",
                )
            )
        for entry in digest.get("files") or []:
            files[str(entry.get("key"))] = entry
        previous_signature = digest.get("signature")
        previous_key = digest_key
        expected = seq + 1
    return files


def _check_records(
    trail: AuditTrail, writer: str, expected_files: dict[str, dict[str, Any]], report: Report
) -> None:
    present = trail.record_files(writer)
    present_keys = {f.key for f in present}
    for key, entry in sorted(expected_files.items(), key=lambda kv: int(kv[1]["firstSeq"])):
        if key not in present_keys:
            report.problems.append(
                Problem(
                    "file-removed",
                    key,
                    f"record file {key} (records {entry['firstSeq']}-{entry['lastSeq']}) is "
                    "in a digest but not in the store: removed",
                )
            )
    seq, head = 0, GENESIS
    for record_file in present:
        report.record_files += 1
        data = trail.read(record_file.key)
        vouched = expected_files.get(record_file.key)
        if vouched is None:
            report.undigested_files += 1
        elif hashlib.sha256(data).hexdigest() != vouched.get("sha256"):
            report.problems.append(
                Problem(
                    "file-changed",
                    record_file.key,
                    f"record file {record_file.key} is not what its digest holds: changed",
                )
            )
        records = _parsed(data)
        for index, record in enumerate(records):
            report.records += 1
            where = f"record {record.get('seq')} ({record_file.key} line {index + 1})"
            if record is _UNREADABLE:
                report.problems.append(
                    Problem("record-changed", where, f"{where} is not a record: changed")
                )
                continue
            number = int(record.get("seq", -1))
            if record_hash(record) != record.get("hash"):
                report.problems.append(
                    Problem("record-changed", where, f"{where}: its hash does not match: changed")
                )
            if number != seq + 1:
                later = {int(r.get("seq", -1)) for r in records[index + 1 :]}
                if number <= seq or (seq + 1) in later:
                    report.problems.append(
                        Problem(
                            "record-reordered",
                            where,
                            f"{where}: comes after record {seq}: out of order (reordered)",
                        )
                    )
                else:
                    gap = f"{seq + 1}" if number == seq + 2 else f"{seq + 1}-{number - 1}"
                    report.problems.append(
                        Problem(
                            "record-removed",
                            where,
                            f"record(s) {gap} missing before {where}: removed",
                        )
                    )
            elif record.get("previousHash") != head:
                report.problems.append(
                    Problem(
                        "record-changed",
                        where,
                        f"{where}: the record before it is not the one it was chained to: "
                        f"record {seq} was changed",
                    )
                )
            seq = max(seq, number)
            head = str(record.get("hash"))


_UNREADABLE: dict[str, Any] = {"seq": "?"}


def _parsed(data: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            out.append(_UNREADABLE)
            continue
        out.append(value if isinstance(value, dict) else _UNREADABLE)
    return out
