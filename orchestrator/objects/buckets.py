"""Buckets by account: which the caller sees, who may create a name, and an account's own.

Every bucket belongs to one account (the store records it: ``ObjectStore.bucket_owner``); one
with no owner recorded (made by a put, or from before accounts) is the server's own
(``tenancy.ROOT``). Names are server-wide, as S3's are across accounts: a name another account
holds cannot be created, and the answer says so (S3's ``BucketAlreadyExists``).

Everything else answers for a bucket of another account exactly as for an absent one: the
front doors (the S3 wire, ``/api/v1/objects``, the URIs a create names) ask ``visible`` and
raise their own "no such bucket". The system (``tenancy.current()`` is ``None``: the
controller, the runtimes) sees every bucket.

A bucket that does not exist can be written into by a put (the store makes it, the server's
own): only the server's account may do that (``writable``); another account creates its
bucket first, or uses its default bucket (``default_bucket``, made with the account; its name,
``orchestrator-<account id>``, no other account may create).
"""

from __future__ import annotations

import builtins
import re
from enum import Enum

from orchestrator import tenancy
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.objects.store import BucketInfo, ObjectStore
from orchestrator.objects.uri import check_bucket, is_bucket_name

DEFAULT_PREFIX = "orchestrator-"
_DEFAULT = re.compile(rf"^{DEFAULT_PREFIX}([0-9]{{12}})$")


class Created(Enum):
    """What ``create`` did (S3's answers: 200, ``BucketAlreadyOwnedByYou``,
    ``BucketAlreadyExists``)."""

    CREATED = "created"
    YOURS = "yours"  # the caller's account holds it already
    TAKEN = "taken"  # another account holds the name


def visible(store: ObjectStore, bucket: str) -> bool:
    """Whether ``bucket`` exists and is the caller's account's (the system: any)."""
    if not is_bucket_name(bucket):
        return False
    owner = store.bucket_owner(bucket)
    return owner is not None and tenancy.visible(owner)


def writable(store: ObjectStore, bucket: str) -> bool:
    """Whether the caller may write into ``bucket``: its account's, or absent and the caller
    the server's own account (a put makes such a bucket, and makes it the server's)."""
    if not is_bucket_name(bucket):
        return False
    owner = store.bucket_owner(bucket)
    if owner is None:
        return tenancy.stamp() == tenancy.ROOT
    return tenancy.visible(owner)


def missing(bucket: str, field: str = "bucket") -> NotFoundError:
    """The one answer for a bucket that is absent or another account's."""
    return NotFoundError(f"bucket {bucket} does not exist", field=field)


def need(store: ObjectStore, bucket: str, field: str = "bucket") -> None:
    """``missing`` unless ``bucket`` is ``visible``."""
    if not visible(store, bucket):
        raise missing(bucket, field)


def listed(store: ObjectStore) -> builtins.list[BucketInfo]:
    """The buckets the caller sees: its account's (the system: all)."""
    return [b for b in store.list_buckets() if tenancy.visible(b.account)]


def reserved_for(bucket: str) -> str | None:
    """The account whose default bucket ``bucket`` is named as, if it is one."""
    m = _DEFAULT.match(bucket)
    return m[1] if m else None


def create(store: ObjectStore, bucket: str) -> Created:
    """Create ``bucket`` for the caller's account (``tenancy.stamp``). Another account's
    default bucket's name (``orchestrator-<its id>``) is taken even before it is made."""
    account = tenancy.stamp()
    reserved = reserved_for(bucket)
    if reserved is not None and reserved != account:
        return Created.TAKEN
    if store.create_bucket(bucket, account):
        return Created.CREATED
    owner = store.bucket_owner(bucket)
    # Deleted again between the two calls: try once more rather than report a phantom.
    if owner is None and store.create_bucket(bucket, account):
        return Created.CREATED
    return Created.YOURS if owner == account else Created.TAKEN


def default_bucket(account: str) -> str:
    """The bucket an account's data goes to by default: ``orchestrator-<account id>``."""
    name = f"{DEFAULT_PREFIX}{account}"
    check_bucket(name)
    return name


def make_default_bucket(store: ObjectStore, account: str) -> str:
    """Make ``account``'s default bucket, its own (already made: fine); its name. For
    ``orch accounts create``; ``ConflictError`` only when another account holds the name
    (one made by name before the account existed, by the system)."""
    name = default_bucket(account)
    with tenancy.acting_as(account):
        result = create(store, name)
    if result is Created.TAKEN:
        raise ConflictError(
            f"bucket {name}, account {account}'s default, is held by another account: "
            "empty and delete it there, then make the account's bucket again",
            field="bucket",
        )
    return name
