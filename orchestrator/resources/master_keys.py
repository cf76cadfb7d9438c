"""Master key versions and the re-wrap, as the REST API shows them (``/api/v1/master-keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from orchestrator.resources.common import Output


class MasterKeyVersionSummary(Output):
    """``State``: ``active`` wraps new data keys, ``enabled`` only unwraps, ``retired`` is
    destroyed. ``Objects``: how many objects' data keys it wrapped at the last finished
    re-wrap pass (exact, counted now, when the status is asked with ``Census``);
    ``ObjectsThisPass``: counted so far by the pass that runs."""

    KeyId: str
    Key: str | None = None  # the logical key (KmsKeyId) it is a version of; None: the default
    State: Literal["active", "enabled", "retired"]
    CreationTime: datetime | None = None
    RetirementTime: datetime | None = None
    Objects: int | None = None
    ObjectsThisPass: int = 0


class RewrapProgressSummary(Output):
    """The last (or the running) re-wrap pass. ``Done``/``Total``: objects visited / in the
    store when it started; ``Pending``: another pass is wanted and will run."""

    State: Literal["idle", "running", "done"]
    Pending: bool
    PassId: str | None = None
    StartTime: datetime | None = None
    EndTime: datetime | None = None
    Done: int = 0
    Total: int = 0
    Rewrapped: int = 0
    Resealed: int = 0
    AlreadyCurrent: int = 0
    Raced: int = 0
    Gone: int = 0
    Unreadable: int = 0
    Errors: list[str] = []


class MasterKeyStatusResponse(Output):
    ActiveKeyId: str
    Versions: list[MasterKeyVersionSummary]
    Rewrap: RewrapProgressSummary


class MasterKeyVersionResponse(Output):
    """What rotate (the new version) and retire (the retired one) answer."""

    Version: MasterKeyVersionSummary
