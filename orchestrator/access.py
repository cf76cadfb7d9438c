"""Who is calling and what they may do: ``Principal`` and the one policy check, ``authorize``.

Pure (imports only the error tree and ``orchestrator.iam``), so that both front doors share
it: the management API (``orchestrator.api``) and the invocation data plane
(``orchestrator.dataplane``). How a presented key becomes a ``Principal`` is each
installation's key source (``orchestrator.api.auth.authenticate`` over the state store, or a
mounted keys file on a cluster): it resolves the key's identity, and the role the key was
issued as, into the compiled policies the principal carries.

``authorize(principal, action, resource_arn, tags=...)`` is evaluated as IAM does it (default
deny, an explicit deny wins; ``orchestrator.iam``). ``tags`` are the resource's tags, or a
function that reads them: called only when a policy has a tag condition for the action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from orchestrator.errors import PermissionDeniedError
from orchestrator.iam import (
    ALLOW,
    EXPLICIT_DENY,
    Policy,
    PolicySet,
    TagSource,
    parse_policy,
    policy_set,
    role_policies,
)

# The built-in roles of the first keys (more in ``orchestrator.iam.managed.ROLES``).
ROLES = ("admin", "invoke")


@dataclass(frozen=True)
class Principal:
    """A verified key: its id, its identity's name, the role it was issued as ("" for the
    identity's own policies) and the compiled policies it carries (by default the role's)."""

    key_id: str
    name: str
    role: str = ""
    policies: PolicySet = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    # The account (tenant) the identity belongs to: ``orchestrator.tenancy.ROOT`` ("") for the
    # server's own.
    account: str = ""

    def __post_init__(self) -> None:
        if self.policies is None:
            object.__setattr__(self, "policies", policy_set(role_policies(self.role), self.name))


def authorize(principal: Principal, action: str, resource: str, tags: TagSource = None) -> None:
    """Allow ``action`` on ``resource`` (an ARN, or ``*`` for an action on no one resource:
    lists, Search), or raise ``PermissionDeniedError`` (403)."""
    decision = principal.policies.decide(action, resource, tags)
    if decision == ALLOW:
        return
    every = principal.policies.names
    names = ", ".join(every[:5]) + (f" and {len(every) - 5} more" if len(every) > 5 else "")
    why = (
        "an explicit Deny in its policies"
        if decision == EXPLICIT_DENY
        else f"no policy of it allows this (policies: {names or 'none'})"
    )
    raise PermissionDeniedError(
        f"identity {principal.name!r} may not {action} on {resource}: {why}", field="Action"
    )


@lru_cache(maxsize=1024)
def _parsed(name: str, document: str) -> Policy:
    return parse_policy(document, name=name)


def principal_to_wire(principal: Principal) -> dict[str, Any]:
    """A principal as JSON (to a router worker): its policies as their documents."""
    return {
        "key_id": principal.key_id,
        "name": principal.name,
        "role": principal.role,
        "account": principal.account,
        "policies": [[p.name, p.document] for p in principal.policies.policies],
    }


def principal_from_wire(data: dict[str, Any]) -> Principal:
    policies = [_parsed(str(n), str(d)) for n, d in data.get("policies", [])]
    compiled = policy_set(policies, data["name"]) if "policies" in data else None
    return Principal(
        data["key_id"],
        data["name"],
        data.get("role", ""),
        compiled,  # type: ignore[arg-type]
        account=str(data.get("account", "")),
    )
