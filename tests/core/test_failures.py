"""FailureReason: typed until the status, and an encoding read back exactly (or refused)."""

from __future__ import annotations

import json

import pytest

from orchestrator.resources.failures import (
    FAILURE_KINDS,
    FORMAT,
    CorruptFailureReason,
    FailureReason,
)


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_every_kind_round_trips(kind: str) -> None:
    reason = FailureReason(kind=kind, message='line 1\nline "2" é ✓')  # type: ignore[arg-type]
    assert FailureReason.decode(reason.encode()) == reason
    assert reason.render() == f'{kind}: line 1\nline "2" é ✓'


def test_the_kinds_are_sagemakers() -> None:
    assert set(FAILURE_KINDS) == {
        "ClientError",
        "AlgorithmError",
        "InternalServerError",
        "CapacityError",
    }


@pytest.mark.parametrize("char", ["x", "é", "✓", "\n", '"'])
def test_encode_shortens_the_message_to_fit_the_bytes(char: str) -> None:
    reason = FailureReason(kind="ClientError", message=char * 10_000)
    text = reason.encode(4096)
    assert len(text.encode()) <= 4096
    back = FailureReason.decode(text)
    assert back.kind == "ClientError"
    assert reason.message.startswith(back.message)
    assert len(back.message) > 500  # shortened, not emptied


def test_render_cuts_at_sagemakers_limit() -> None:
    assert len(FailureReason(kind="AlgorithmError", message="E" * 5000).render()) == 1024


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ClientError: channel 'train': no objects", "not JSON"),  # no prefix guessing
        ("", "not JSON"),
        ("[1, 2]", "not a document of format"),
        (json.dumps({"kind": "ClientError", "message": "m"}), "not a document of format"),
        (json.dumps({"format": "other/v9", "kind": "ClientError", "message": "m"}), "format"),
        (json.dumps({"format": FORMAT, "message": "m"}), "kind: Field required"),
        (json.dumps({"format": FORMAT, "kind": "Oops", "message": "m"}), "kind: Input should be"),
        (json.dumps({"format": FORMAT, "kind": "ClientError", "message": 3}), "message"),
        (
            json.dumps({"format": FORMAT, "kind": "ClientError", "message": "m", "x": 1}),
            "x: Extra inputs",
        ),
    ],
)
def test_anything_else_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(CorruptFailureReason, match=says.replace("[", r"\[")):
        FailureReason.decode(text)


def test_a_cut_encoding_is_refused() -> None:
    text = FailureReason(kind="ClientError", message="m" * 100).encode()
    with pytest.raises(CorruptFailureReason, match="not JSON"):
        FailureReason.decode(text[:50])
