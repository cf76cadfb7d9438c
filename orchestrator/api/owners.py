"""Whose resource a derived view's row is about: the metric series, log groups and usage rows
name a resource (an endpoint, a training job, ...) but hold no account of their own, so a
caller may see one only when the resource it names belongs to the caller's account.

Ownership is read from the resources store as the system (``Record.account`` of the named
resource, whatever the caller may see), once per (kind, name) for one ``Owners`` (make one per
request). A resource that no longer exists (its series and logs outlive it) is the server's
own account's (``ROOT``: what every row from before accounts is): shown to ROOT and the
system only, never to another account.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator import tenancy
from orchestrator.store.source import Record

Find = Callable[[str, str], Record | None]


class Owners:
    """The caller's view of which named resources are its own (cached per instance)."""

    def __init__(self, find: Find) -> None:
        self._find = find
        self._owner: dict[tuple[str, str], str | None] = {}

    def owner(self, kind: str, name: str) -> str | None:
        """The account ``kind``/``name`` belongs to; None when there is no such resource."""
        key = (kind, name)
        if key not in self._owner:
            with tenancy.acting_as(None):  # ownership is read whatever the caller sees
                record = self._find(kind, name)
            self._owner[key] = None if record is None else record.account
        return self._owner[key]

    def visible(self, kind: str, name: str) -> bool:
        """Whether the caller may see what is derived from ``kind``/``name``."""
        caller = tenancy.current()
        if caller is None:
            return True
        owner = self.owner(kind, name)
        return caller == (tenancy.ROOT if owner is None else owner)


def own(record: Record | None) -> Record | None:
    """``record`` when the caller may see it, else None (as absent). The resources store
    filters by account itself; the derived views check again, so a view never depends on
    each read path of the store having done so."""
    return record if record is not None and tenancy.visible(record.account) else None
