"""The events of CloudWatch Logs streams, read from byte logs: lines, their times, pages, tokens.

A stream is a ``Source``: a log read by byte offset (a backend's ``read_job_logs`` or
``read_replica_log``), its time marks (``training.joblog``) and ``fallback_ms``, the time a
line gets when no mark covers it (a log kept without marks: Kubernetes pod logs, replica
logs). Every line is one event; its ``timestamp`` is its mark's time and so is its
``ingestionTime`` (a line reaches the log when it is written: there is no later ingestion).
Times never decrease along a log, so a page is a forward or backward walk from a byte offset,
and ``startTime`` is a binary search over the marks, not a scan.

Pages are bounded like CloudWatch's (``limit`` events, 1 MB of messages counted as CloudWatch
counts them: the UTF-8 message plus 26 bytes), and so is the scanning behind them
(``SCAN_BUDGET`` bytes: lines of other hosts, older than ``startTime`` or not matching the
filter cost reading). A token is the byte offset where the next page starts, with a check
that ties it to its stream: polling with it again reads only what was written since, and
returns the same token and no events while nothing was. A last line without its newline is
held back until it has one, or until its writer is done (``complete``).

``FilterPattern`` is CloudWatch's pattern syntax for unstructured events, the term part:
``ERROR`` (a term the message must contain, case-sensitive), ``"exact phrase"``, several
terms (all of them), ``?ERROR ?WARN`` (any of them) and ``-term`` (must not contain).
JSON (``{ $.level = ... }``), space-delimited (``[ip, ...]``) and regular-expression
(``%...%``) patterns are refused, saying so.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.api.aws.errors import AwsError
from orchestrator.training.joblog import HOST_TAG, Marks, first_offset_at, mark_at

CHUNK = 256 << 10
MAX_PAGE_BYTES = 1 << 20
EVENT_OVERHEAD = 26  # bytes CloudWatch counts per event beside its message
SCAN_BUDGET = 32 << 20
MAX_EVENTS = 10_000

Read = Callable[[int, int], tuple[bytes, int]]


@dataclass(frozen=True)
class Event:
    offset: int  # where its line starts in the log
    end: int  # where the next line starts
    ms: int
    message: str

    @property
    def size(self) -> int:
        return len(self.message.encode()) + EVENT_OVERHEAD


@dataclass(frozen=True)
class StreamInfo:
    name: str
    first_ms: int
    last_ms: int


@dataclass
class Source:
    """One stream's lines: ``host`` keeps only the lines tagged ``[host] `` (tag removed) and,
    with ``untagged``, the lines without a tag; ``host=None`` keeps every line as it is."""

    read: Read
    marks: Marks
    fallback_ms: int
    complete: bool = False
    host: str | None = None
    untagged: bool = True

    @property
    def before_marks_ms(self) -> int:
        """The time of lines no mark covers (older than every mark, so times stay ordered)."""
        return min(self.fallback_ms, self.marks[0][1]) if len(self.marks) else self.fallback_ms

    def time_at(self, offset: int) -> int:
        k = mark_at(self.marks, offset)
        return self.marks[k][1] if k >= 0 else self.before_marks_ms

    @property
    def last_ms(self) -> int:
        """The time of the newest line (its mark), or the fallback."""
        return self.marks[len(self.marks) - 1][1] if len(self.marks) else self.fallback_ms

    def select(self, raw: bytes) -> str | None:
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        if self.host is None:
            return text
        m = HOST_TAG.match(text)
        if m is None:
            return text if self.untagged else None
        return text[m.end() :] if m.group(1) == self.host else None

    def close(self) -> None:
        self.marks.close()


def read_exact(read: Read, offset: int, size: int) -> bytes:
    parts: list[bytes] = []
    while size > 0:
        data, _ = read(offset, size)
        if not data:
            break
        parts.append(data)
        offset += len(data)
        size -= len(data)
    return b"".join(parts)


class _Times:
    """The times of lines met in offset order: a walk along the marks."""

    def __init__(self, src: Source, offset: int) -> None:
        self.src = src
        self._k = mark_at(src.marks, offset)
        self._n = len(src.marks)

    def at(self, offset: int) -> int:
        marks = self.src.marks
        while self._k + 1 < self._n and marks[self._k + 1][0] <= offset:
            self._k += 1
        return marks[self._k][1] if self._k >= 0 else self.src.before_marks_ms


class Cursor:
    """A source's events from a byte offset on, each with its time."""

    def __init__(self, src: Source, offset: int) -> None:
        self.src = src
        self.start = offset
        self.pos = offset  # where the next line not yet returned starts
        self._buf = b""
        self._buf_at = offset
        self._eof = False
        self._times = _Times(src, offset)

    def next_line(self) -> tuple[int, bytes] | None:
        """(offset, the line without its newline), or None past the last whole line."""
        while True:
            i = self._buf.find(b"\n", self.pos - self._buf_at)
            if i >= 0:
                start = self.pos
                raw = self._buf[start - self._buf_at : i]
                self.pos = self._buf_at + i + 1
                return start, raw
            if self._eof:
                break
            data, _ = self.src.read(self._buf_at + len(self._buf), CHUNK)
            if not data:
                self._eof = True
                continue
            self._buf = self._buf[self.pos - self._buf_at :] + data
            self._buf_at = self.pos
        rest = self._buf[self.pos - self._buf_at :]
        if rest and self.src.complete:
            start, self.pos = self.pos, self.pos + len(rest)
            self._buf, self._buf_at = b"", self.pos
            return start, rest
        return None

    def next(self) -> Event | None:
        while (line := self.next_line()) is not None:
            start, raw = line
            message = self.src.select(raw)
            if message is not None:
                return Event(start, self.pos, self._times.at(start), message)
        return None


@dataclass(frozen=True)
class Window:
    """What a query asks for: a time window (``startTime`` inclusive, ``endTime`` exclusive, in
    epoch ms) and a pattern."""

    start_ms: int | None = None
    end_ms: int | None = None
    match: Callable[[str], bool] | None = None

    def empty_for(self, src: Source) -> bool:
        """True when no line of an unmarked log (all at ``fallback_ms``) can be in it."""
        if len(src.marks):
            return False
        t = src.fallback_ms
        return (self.start_ms is not None and t < self.start_ms) or (
            self.end_ms is not None and t >= self.end_ms
        )

    def begin(self, src: Source, offset: int) -> int:
        """Where to start reading forward from ``offset``: past the lines older than
        ``start_ms`` (a binary search over the marks)."""
        if self.start_ms is None or not len(src.marks) or self.start_ms <= src.before_marks_ms:
            return offset
        at = first_offset_at(src.marks, self.start_ms)
        return max(offset, at if at is not None else src.marks[len(src.marks) - 1][0])


@dataclass
class Page:
    events: list[Event]
    position: int  # forward: where the next page starts; backward: where the earlier one ends
    more: bool  # stopped with lines left to read (limit, size or scan budget)


class _Reader:
    """The events of one source in a window, one at a time (``head``)."""

    def __init__(self, src: Source, offset: int, window: Window) -> None:
        self.window = window
        self.done = window.empty_for(src)
        self.cursor = Cursor(src, window.begin(src, offset))
        self.head: Event | None = None
        self._stop: int | None = None

    @property
    def position(self) -> int:
        if self.head is not None:
            return self.head.offset
        return self._stop if self._stop is not None else self.cursor.pos

    def advance(self, over_budget: Callable[[], bool]) -> None:
        w = self.window
        while self.head is None and not self.done:
            if over_budget():
                return  # paused: neither an event nor the end
            ev = self.cursor.next()
            if ev is None:
                self.done = True
            elif w.start_ms is not None and ev.ms < w.start_ms:
                continue
            elif w.end_ms is not None and ev.ms >= w.end_ms:
                self.done, self._stop = True, ev.offset
            elif w.match is None or w.match(ev.message):
                self.head = ev


def forward(src: Source, offset: int, window: Window, *, limit: int, need_one: bool = True) -> Page:
    """Events from ``offset`` on. ``need_one``: do not stop for the scan budget before an
    event is found (GetLogEvents: an empty page means caught up to its callers)."""
    page = merge([src], [offset], window, limit=limit, need_one=need_one)
    return Page([ev for _, ev in page.events], page.positions[0], page.more)


@dataclass
class Merged:
    events: list[tuple[int, Event]]  # (index of the source, event), oldest first
    positions: list[int]
    done: list[bool]  # read to its end (or to the window's)
    more: bool


def merge(
    sources: list[Source],
    offsets: list[int],
    window: Window,
    *,
    limit: int,
    need_one: bool = False,
    budget: int = SCAN_BUDGET,
) -> Merged:
    """The events of several sources in time order (FilterLogEvents), from per-source offsets.
    A source paused by the scan budget stops the merge (its next event may be older than the
    others'), so the order holds across pages."""
    readers = [_Reader(s, o, window) for s, o in zip(sources, offsets, strict=True)]
    out: list[tuple[int, Event]] = []

    def over_budget() -> bool:
        scanned = sum(r.cursor.pos - r.cursor.start for r in readers)  # lines passed over
        return (not need_one or bool(out)) and scanned >= budget

    heap: list[tuple[int, int, int]] = []
    for i, r in enumerate(readers):
        r.advance(over_budget)
        if r.head is not None:
            heap.append((r.head.ms, i, r.head.offset))
    heapq.heapify(heap)
    size = 0
    while heap and len(out) < limit and size < MAX_PAGE_BYTES:
        if any(r.head is None and not r.done for r in readers):
            break  # one is paused
        _, i, _ = heapq.heappop(heap)
        r = readers[i]
        assert r.head is not None
        out.append((i, r.head))
        size += r.head.size
        r.head = None
        r.advance(over_budget)
        if r.head is not None:
            heapq.heappush(heap, (r.head.ms, i, r.head.offset))
    done = [r.head is None and r.done for r in readers]
    return Merged(out, [r.position for r in readers], done, not all(done))


def end_of(src: Source) -> int:
    """Where the log's last whole line ends (read from the last mark: the tail only)."""
    start = src.marks[len(src.marks) - 1][0] if len(src.marks) else 0
    cursor = Cursor(src, start)
    while cursor.next_line() is not None:
        pass
    return cursor.pos


def backward(src: Source, end: int | None, window: Window, *, limit: int) -> Page:
    """The last ``limit`` events before ``end`` (None: the end of the log), oldest first.
    Reads windows of the log backwards from ``end``: the tail only, however long the log."""
    hi = end_of(src) if end is None else end
    if window.empty_for(src):
        return Page([], hi, False)
    if window.end_ms is not None and len(src.marks):
        at = first_offset_at(src.marks, window.end_ms)
        if at is not None:
            hi = min(hi, at)
    found: list[Event] = []  # newest first
    size, span, stopped = 0, CHUNK, False
    while hi > 0 and len(found) < limit and size < MAX_PAGE_BYTES and not stopped:
        lo = max(0, hi - span)
        data = read_exact(src.read, lo, hi - lo)
        first = 0
        if lo > 0:
            i = data.find(b"\n")
            if i < 0 or lo + i + 1 >= hi:
                span *= 2  # the line before ``hi`` starts before the window: widen it
                continue
            first = i + 1
        times = _Times(src, lo + first)
        events, pos = [], first
        while pos < len(data):  # the whole lines of [lo + first, hi)
            nl = data.find(b"\n", pos)
            nxt = len(data) if nl < 0 else nl + 1
            message = src.select(data[pos : len(data) if nl < 0 else nl])
            if message is not None:
                events.append(Event(lo + pos, lo + nxt, times.at(lo + pos), message))
            pos = nxt
        for ev in reversed(events):
            if window.end_ms is not None and ev.ms >= window.end_ms:
                continue
            if window.start_ms is not None and ev.ms < window.start_ms:
                stopped = True  # and so is every line before it
                break
            if window.match is None or window.match(ev.message):
                found.append(ev)
                size += ev.size
                if len(found) >= limit or size >= MAX_PAGE_BYTES:
                    break
        hi, span = lo + first, CHUNK
    found.reverse()
    position = found[0].offset if found else hi
    return Page(found, position, hi > 0 and not stopped)


# --- tokens --------------------------------------------------------------------------------
def _check(*parts: object) -> str:
    text = "\0".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def stream_token(kind: str, stream: str, offset: int) -> str:
    """``f/OFFSET/CHECK`` (forward) or ``b/...`` (backward), tied to ``stream``."""
    return f"{kind}/{offset}/{_check(kind, stream, offset)}"


def read_stream_token(token: str, stream: str) -> tuple[str, int]:
    kind, _, rest = token.partition("/")
    offset, _, check = rest.partition("/")
    if kind in ("f", "b") and offset.isdigit() and check == _check(kind, stream, int(offset)):
        return kind, int(offset)
    raise AwsError(
        "InvalidParameterException",
        f"nextToken: {token[:80]!r} is not a token of log stream {stream!r}; use the "
        "nextForwardToken or nextBackwardToken of an earlier GetLogEvents on that stream",
    )


def event_id(stream: str, offset: int) -> str:
    """FilterLogEvents' ``eventId``: digits, as CloudWatch's, unique per stream and line."""
    return f"{int(_check(stream), 16):015d}{offset:020d}"


def opaque_token(scope: str, value: object) -> str:
    """A page token holding ``value`` (JSON), tied to ``scope`` (the query it continues)."""
    body = json.dumps(value, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{payload}.{_check(scope, body)}"


def read_opaque_token(token: str, scope: str, what: str) -> object:
    payload, _, check = token.partition(".")
    try:
        body = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        if check == _check(scope, body):
            return json.loads(body)
    except ValueError:
        pass
    raise AwsError(
        "InvalidParameterException",
        f"nextToken: {token[:80]!r} is not a token of {what}; use the nextToken of the "
        "previous page with the same parameters, or omit it for the first page",
    )


def positions_token(group: str, positions: dict[str, int]) -> str:
    return opaque_token("filter\0" + group, sorted(positions.items()))


def read_positions_token(token: str, group: str) -> dict[str, int]:
    what = f"FilterLogEvents on {group!r}"
    pairs = read_opaque_token(token, "filter\0" + group, what)
    if isinstance(pairs, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and type(p[1]) is int
        for p in pairs
    ):
        return {str(p[0]): int(p[1]) for p in pairs}
    raise AwsError("InvalidParameterException", f"nextToken: not a token of {what}")


# --- filter patterns -----------------------------------------------------------------------
_TERM = re.compile(r'\s*([?-]?)("(?:[^"\\]|\\.)*"|[^\s"]+)')
_PATTERN_HELP = 'use terms (ERROR), "quoted phrases", ?alternatives (?ERROR ?WARN) and -exclusions'


class FilterPattern:
    """A filter pattern's terms (see the module docstring); call it on a message."""

    def __init__(self, text: str) -> None:
        self.required: list[str] = []
        self.any_of: list[str] = []
        self.excluded: list[str] = []
        text = text.strip()
        if text[:1] in ("{", "[", "%"):
            kind = {"{": "JSON", "[": "space-delimited", "%": "regular-expression"}[text[0]]
            raise AwsError(
                "InvalidParameterException",
                f"filterPattern: {kind} patterns are not supported here; {_PATTERN_HELP}",
            )
        pos = 0
        while pos < len(text):
            m = _TERM.match(text, pos)
            if m is None:
                raise AwsError(
                    "InvalidParameterException",
                    f"filterPattern: an unterminated quote at character {pos + 1}; {_PATTERN_HELP}",
                )
            pos = m.end()
            sign, term = m.group(1), m.group(2)
            if term.startswith('"'):
                term = re.sub(r"\\(.)", r"\1", term[1:-1])
            {"": self.required, "?": self.any_of, "-": self.excluded}[sign].append(term)
            pos += len(text[pos:]) - len(text[pos:].lstrip())
        if self.any_of and (self.required or self.excluded):
            raise AwsError(
                "InvalidParameterException",
                "filterPattern: ?alternatives cannot be mixed with other terms here; use only "
                "?terms (any of them) or only terms and -exclusions (all of them)",
            )

    @property
    def empty(self) -> bool:
        return not (self.required or self.any_of or self.excluded)

    def __call__(self, message: str) -> bool:
        if self.any_of:
            return any(t in message for t in self.any_of)
        return all(t in message for t in self.required) and not any(
            t in message for t in self.excluded
        )
