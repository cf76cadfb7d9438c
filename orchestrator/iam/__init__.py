"""Identities' permissions: policies in IAM's shape, parsed, checked and evaluated. Pure.

``parse_policy`` checks a document (errors name the statement and member); ``PolicySet``
compiles a principal's policies once and decides each (action, resource, tags) as IAM does;
``policy_set`` keeps compiled sets by their documents and user name, so that every key of one
identity shares one; ``managed`` holds the built-in managed policies and roles.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from orchestrator.iam.actions import ALL as ACTIONS
from orchestrator.iam.engine import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, PolicySet, TagSource
from orchestrator.iam.managed import MANAGED, OWNER_TAG, ROLES, managed
from orchestrator.iam.policy import Policy, check_arn, parse_policy

_COMPILED: dict[tuple[tuple[tuple[str, str], ...], str], PolicySet] = {}
_LOCK = threading.Lock()
_LIMIT = 4096


def policy_set(policies: Sequence[Policy], username: str) -> PolicySet:
    """The compiled set of ``policies`` for ``username``, compiled once and shared."""
    key = (tuple((p.name, p.document) for p in policies), username)
    found = _COMPILED.get(key)
    if found is None:
        found = PolicySet(policies, username)
        with _LOCK:
            if len(_COMPILED) >= _LIMIT:
                _COMPILED.clear()
            _COMPILED[key] = found
    return found


def role_policies(role: str) -> list[Policy]:
    """The managed policies of a built-in role (none for an unknown one)."""
    return [MANAGED[n] for n in ROLES.get(role, ())]


__all__ = [
    "ACTIONS",
    "ALLOW",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "MANAGED",
    "OWNER_TAG",
    "ROLES",
    "Policy",
    "PolicySet",
    "TagSource",
    "check_arn",
    "managed",
    "parse_policy",
    "policy_set",
    "role_policies",
]
