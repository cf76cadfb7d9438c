"""Log streams as events, without a server: pages forward and backward over logs larger than a
read, lines longer than one, held-back partial lines, the scan budget, tokens and patterns."""

from __future__ import annotations

import pytest

from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.logevents import (
    CHUNK,
    FilterPattern,
    Source,
    Window,
    backward,
    end_of,
    forward,
    merge,
    positions_token,
    read_positions_token,
    read_stream_token,
    stream_token,
)
from orchestrator.training.joblog import ListMarks, Mark


def _source(lines: list[str], *, every: int = 1, complete: bool = True, **kw: object) -> Source:
    """A log of ``lines``, the i-th written at 1000 + i // every ms (one mark per new ms)."""
    data = bytearray()
    marks: list[Mark] = []
    for i, line in enumerate(lines):
        ms = 1000 + i // every
        if not marks or marks[-1][1] != ms:
            marks.append((len(data), ms))
        data += line.encode()
    blob = bytes(data)

    def read(offset: int, limit: int) -> tuple[bytes, int]:
        chunk = blob[offset : offset + limit]
        return chunk, offset + len(chunk)

    return Source(read, ListMarks(marks), fallback_ms=500, complete=complete, **kw)  # type: ignore[arg-type]


def _all_forward(src: Source, window: Window | None = None, limit: int = 7) -> list[str]:
    out, pos = [], 0
    while True:
        page = forward(src, pos, window or Window(), limit=limit)
        if not page.events:
            return out
        out += [e.message for e in page.events]
        pos = page.position


def test_backward_pages_over_a_log_many_reads_long_match_forward() -> None:
    lines = [f"line {i} " + "x" * (i % 97) + "\n" for i in range(12_000)]  # ~800 kB
    src = _source(lines, every=3)
    forward_all = _all_forward(src, limit=1000)
    assert forward_all == [line.rstrip("\n") for line in lines]
    back, end = [], None
    while True:
        page = backward(src, end, Window(), limit=999)
        if not page.events:
            break
        back = [e.message for e in page.events] + back
        end = page.position
    assert back == forward_all
    assert end_of(src) == sum(len(line) for line in lines)


def test_a_line_longer_than_one_read_comes_back_whole_both_ways() -> None:
    long = "y" * (CHUNK * 2 + 123)
    src = _source(["short\n", long + "\n", "after\n"])
    assert _all_forward(src) == ["short", long, "after"]
    page = backward(src, None, Window(), limit=2)
    assert [e.message for e in page.events] == [long, "after"]


def test_a_last_line_without_its_newline_waits_until_the_writer_is_done() -> None:
    running = _source(["done\n", "half a li"], complete=False)
    page = forward(running, 0, Window(), limit=10)
    assert [e.message for e in page.events] == ["done"]
    assert page.position == 5  # the token stays before the partial line
    finished = _source(["done\n", "half a line"], complete=True)
    assert _all_forward(finished) == ["done", "half a line"]


def test_times_and_windows_follow_the_marks() -> None:
    src = _source([f"{i}\n" for i in range(10)], every=2)  # 1000,1000,1001,1001,...
    times = [e.ms for e in forward(src, 0, Window(), limit=10).events]
    assert times == [1000, 1000, 1001, 1001, 1002, 1002, 1003, 1003, 1004, 1004]
    assert _all_forward(src, Window(start_ms=1002, end_ms=1004)) == ["4", "5", "6", "7"]
    back = backward(src, None, Window(start_ms=1001, end_ms=1003), limit=10)
    assert [e.message for e in back.events] == ["2", "3", "4", "5"]
    unmarked = Source(src.read, ListMarks(), fallback_ms=500, complete=True)
    assert _all_forward(unmarked, Window(start_ms=501)) == []  # every line is at 500
    assert len(_all_forward(unmarked, Window(start_ms=500))) == 10


def test_hosts_are_split_by_their_tags_and_crlf_is_dropped() -> None:
    lines = ["[orchestrator] go\r\n", "[algo-1] a\n", "[algo-2] b\n", "[algo-10] c\n"]
    assert _all_forward(_source(lines, host="algo-1")) == ["[orchestrator] go", "a"]
    assert _all_forward(_source(lines, host="algo-2", untagged=False)) == ["b"]
    assert _all_forward(_source(lines, host="algo-10", untagged=False)) == ["c"]
    assert _all_forward(_source(lines)) == [line.rstrip("\r\n") for line in lines]


def test_the_scan_budget_pauses_a_merge_that_resumes_in_order() -> None:
    a = _source([f"a{i}\n" for i in range(300)])
    b = _source([f"b{i}\n" for i in range(300)])
    seen, positions = [], [0, 0]
    for _ in range(1000):
        page = merge([a, b], positions, Window(match=FilterPattern("7")), limit=50, budget=64)
        seen += [(i, e.ms, e.message) for i, e in page.events]
        positions = page.positions
        if not page.more:
            break
    expected = sorted(
        [(0, 1000 + i, f"a{i}") for i in range(300) if "7" in f"a{i}"]
        + [(1, 1000 + i, f"b{i}") for i in range(300) if "7" in f"b{i}"],
        key=lambda t: (t[1], t[0]),
    )
    assert seen == expected


def test_tokens_are_tied_to_their_stream() -> None:
    token = stream_token("f", "g\0s", 42)
    assert read_stream_token(token, "g\0s") == ("f", 42)
    for bad, stream in [(token, "g\0other"), ("f/43/" + token.split("/")[2], "g\0s"),
                        ("x/1/2", "g\0s"), ("garbage", "g\0s")]:  # fmt: skip
        with pytest.raises(AwsError) as e:
            read_stream_token(bad, stream)
        assert e.value.aws_code == "InvalidParameterException" and "nextToken" in e.value.message
    positions = positions_token("grp", {"s1": 5, "s2": 0})
    assert read_positions_token(positions, "grp") == {"s1": 5, "s2": 0}
    with pytest.raises(AwsError):
        read_positions_token(positions, "other")


def test_filter_patterns() -> None:
    assert FilterPattern("").empty
    p = FilterPattern('ERROR "disk \\"full\\"" -retry')
    assert p.required == ["ERROR", 'disk "full"'] and p.excluded == ["retry"]
    assert p('ERROR: disk "full" now')
    assert not p('ERROR: disk "full", retry')
    assert not p("ERROR: disk full")
    either = FilterPattern("?WARN ?ERROR")
    assert either("a WARN") and either("an ERROR") and not either("INFO")
