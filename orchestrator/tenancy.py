"""Tenancy: the account (tenant) a request acts for.

Every resource, bucket, alarm and identity belongs to one account. The server's own account
is ``ROOT`` (the empty string: what every row and custom resource from before accounts
holds); its ARNs carry ``settings.account_id``. Another account has a 12-digit id of its own,
made by ``orch accounts create``.

The front doors (the management API, the SageMaker and S3 wire, the data plane) set the
caller's account for the request with ``acting_as`` once the key is verified; the stores read
``current()`` and show a caller only its own account's rows, answering for another account's
resource exactly as for an absent one. ``current()`` is ``None`` outside a request (the
controller, the operator, a test's direct call): the system sees every account.

Pure: no I/O, no imports but the standard library.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

ROOT = ""
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")

_current: ContextVar[str | None] = ContextVar("orchestrator_account", default=None)


def current() -> str | None:
    """The caller's account (``ROOT`` for the server's own), or ``None`` for the system."""
    return _current.get()


def enter(account: str) -> Token[str | None]:
    """Act for ``account`` from here on in this context (a request's task); ``leave`` undoes."""
    return _current.set(account)


def leave(token: Token[str | None]) -> None:
    _current.reset(token)


@contextmanager
def acting_as(account: str | None) -> Iterator[None]:
    """Act for ``account`` (``None``: as the system) inside the block."""
    token = _current.set(account)
    try:
        yield
    finally:
        _current.reset(token)


def visible(owner: str) -> bool:
    """Whether the caller may see something ``owner`` holds: its own account's, or the
    system's view of everything."""
    caller = _current.get()
    return caller is None or caller == owner


def stamp() -> str:
    """The account a new resource made now belongs to: the caller's (the system's: ROOT)."""
    return _current.get() or ROOT


def arn_account(account: str, server_account_id: str) -> str:
    """The 12 digits an ARN of ``account`` carries."""
    return account or server_account_id


def new_account_id(taken: set[str], server_account_id: str) -> str:
    """A fresh 12-digit id, neither taken nor the server's own."""
    while True:
        candidate = f"{secrets.randbelow(10**12):012d}"
        if candidate not in taken and candidate != server_account_id:
            return candidate
