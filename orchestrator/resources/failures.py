"""Why a training job failed: SageMaker's category and a message, typed until the status. Pure.

SageMaker's ``FailureReason`` is one string, ``"AlgorithmError: ..."``. Here the category is a
field from where the failure is seen (the supervisor, an in-pod step, the observation of a
Kubernetes Job) through result files, termination messages, ``ObservedJob`` and the planner,
which renders it as SageMaker's string only when it writes the status (``render``). Nothing
reads a category back out of a message.

Categories (SageMaker's): ``ClientError`` (the request or its data is wrong: a missing channel,
an entry point not in the source), ``AlgorithmError`` (the user's code failed), ``CapacityError``
(the instances asked for cannot be had), ``InternalServerError`` (ours: an upload failed, a
supervisor died, a step said something unreadable). ``RetryStrategy`` retries only the last.

Where a failure crosses a process boundary as text (a Kubernetes container's termination
message), ``encode`` writes a self-describing JSON document that ``decode`` reads back exactly,
or refuses with ``CorruptFailureReason``.
"""

from __future__ import annotations

import json
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

FailureKind = Literal["ClientError", "AlgorithmError", "InternalServerError", "CapacityError"]
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)
# How the user's code ended, where the backend knows: it exited with its code, a signal
# killed it, or it ran out of memory (an OOM kill, or the process backend's memory limit
# hit). An out-of-memory failure stays an ``AlgorithmError`` whose message starts
# ``OutOfMemory:`` (SageMaker's categories are fixed); the kind travels beside it.
ExitKind = Literal["exit", "signal", "oom"]
OUT_OF_MEMORY = "OutOfMemory"
# What SageMaker keeps of a FailureReason.
REASON_LIMIT = 1024
# The ``format`` of an encoded reason; a reader refuses any other.
FORMAT = "orchestrator.dev/failure-reason/v1"


class CorruptFailureReason(ValueError):
    """A text that should hold an encoded failure reason does not."""


class FailureReason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FailureKind
    message: str

    def render(self, limit: int = REASON_LIMIT) -> str:
        """SageMaker's string: ``"<kind>: <message>"``, cut to ``limit`` characters."""
        return f"{self.kind}: {self.message}"[:limit]

    def encode(self, limit_bytes: int | None = None) -> str:
        """A JSON document ``decode`` reads back; the message is shortened (never the JSON) so
        that the UTF-8 text fits ``limit_bytes`` (Kubernetes keeps 4096 bytes of a
        termination message and cuts the rest)."""

        def text(n: int) -> str:
            doc = {"format": FORMAT, "kind": self.kind, "message": self.message[:n]}
            return json.dumps(doc, ensure_ascii=False)

        def fits(n: int) -> bool:
            return limit_bytes is None or len(text(n).encode()) <= limit_bytes

        if fits(len(self.message)):
            return text(len(self.message))
        if not fits(0):
            raise ValueError(f"limit_bytes={limit_bytes} cannot hold an encoded reason")
        low, high = 0, len(self.message)  # fits(low), not fits(high)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if fits(mid) else (low, mid)
        return text(low)

    @classmethod
    def decode(cls, text: str) -> FailureReason:
        """The reason ``encode`` wrote; ``CorruptFailureReason`` for anything else."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise CorruptFailureReason(f"not JSON ({e.msg} at character {e.pos})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CorruptFailureReason(f"not a document of format {FORMAT!r}")
        try:
            return cls.model_validate({k: v for k, v in doc.items() if k != "format"})
        except PydanticValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}"
                for err in e.errors()
            )
            raise CorruptFailureReason(problems) from e


def client_error(message: str) -> FailureReason:
    return FailureReason(kind="ClientError", message=message)


def algorithm_error(message: str) -> FailureReason:
    return FailureReason(kind="AlgorithmError", message=message)


def internal_error(message: str) -> FailureReason:
    return FailureReason(kind="InternalServerError", message=message)


def capacity_error(message: str) -> FailureReason:
    return FailureReason(kind="CapacityError", message=message)


__all__ = [
    "FAILURE_KINDS",
    "FORMAT",
    "OUT_OF_MEMORY",
    "REASON_LIMIT",
    "CorruptFailureReason",
    "ExitKind",
    "FailureKind",
    "FailureReason",
    "algorithm_error",
    "capacity_error",
    "client_error",
    "internal_error",
]
