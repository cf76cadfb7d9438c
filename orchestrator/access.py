"""Who is calling and what they may do: ``Principal`` and the one policy check, ``authorize``.

Pure (imports only the error tree), so that both front doors share it: the management API
(``orchestrator.api``) and the invocation data plane (``orchestrator.dataplane``). How a
presented key becomes a ``Principal`` is each installation's key source
(``orchestrator.api.auth.authenticate`` over the state store today).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import PermissionDeniedError

ROLES = ("admin", "invoke")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: str


def authorize(principal: Principal, action: str) -> None:
    """The one place policies plug in. Today: admins do everything, others only invoke."""
    if principal.role == "admin":
        return
    if principal.role == "invoke" and action == "endpoint:invoke":
        return
    raise PermissionDeniedError(f"role {principal.role!r} may not {action}")
