"""Where the trail lies in the object store: one chain per writer, under one bucket.

Each server process that records (one on a laptop; each API pod on a cluster) keeps its own
chain, named by ``writer``, so that writers never interleave one chain:
``records/<writer>/<first seq>-<first ms>-<last ms>.jsonl`` (one record a line, in chain
order; the name tells the first record's number and the time range the file covers, so
lookups skip files outside theirs) and ``digests/<writer>/<seq>.json`` (one signed digest
each).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.objects import join_uri

RECORDS = "records/"
DIGESTS = "digests/"
_RECORD_NAME = re.compile(r"records/([A-Za-z0-9._-]+)/(\d{12})-(\d+)-(\d+)\.jsonl$")
_DIGEST_NAME = re.compile(r"digests/([A-Za-z0-9._-]+)/(\d{8})\.json$")
WRITER_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True, order=True)
class RecordFile:
    writer: str
    first_seq: int
    first_ms: int
    last_ms: int
    key: str


def record_key(writer: str, first_seq: int, first_ms: int, last_ms: int) -> str:
    return f"{RECORDS}{writer}/{first_seq:012d}-{first_ms}-{last_ms}.jsonl"


def digest_key(writer: str, seq: int) -> str:
    return f"{DIGESTS}{writer}/{seq:08d}.json"


def parse_record_key(key: str) -> RecordFile | None:
    m = _RECORD_NAME.search(key)
    if m is None:
        return None
    return RecordFile(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), key)


def parse_digest_key(key: str) -> tuple[str, int] | None:
    m = _DIGEST_NAME.search(key)
    return None if m is None else (m.group(1), int(m.group(2)))


def uri(bucket: str, key: str) -> str:
    return join_uri(bucket, key)


def key_of(bucket: str, object_uri: str) -> str:
    return object_uri.removeprefix(f"s3://{bucket}/")
