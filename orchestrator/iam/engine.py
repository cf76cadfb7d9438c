"""Evaluation as IAM does it, compiled once per principal.

Default deny; an explicit ``Deny`` that applies wins over any ``Allow``. ``PolicySet``
compiles the policies of one principal into an index by action (wildcard actions were
expanded against the catalog when parsed): for each action, the resource patterns of its
unconditional statements, split into exact ARNs (a set), prefixes (``arn...:endpoint/team-*``:
one ``str.startswith`` over a tuple) and the rest (one alternation regex); statements with a
``Condition`` or a ``NotResource`` are kept apart and looked at only when the fast part did not
decide. Resource tags are read (``tags``, a mapping or a function returning one) only when such
a statement asks for them. So a check is a dict lookup and a few C-level matches whatever the
number of policies (``benchmarks/authorization.py``).

SageMaker writes resource names lower-cased in its ARNs, so SageMaker ARN patterns are
lower-cased when compiled.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.iam.policy import Condition, Policy, Statement

Tags = Mapping[str, str]
TagSource = Tags | Callable[[], Tags] | None

ALLOW = "Allow"
EXPLICIT_DENY = "ExplicitDeny"
IMPLICIT_DENY = "ImplicitDeny"


def _substitute(pattern: str, username: str) -> str:
    return pattern.replace("${aws:username}", username)


def _normalize(pattern: str, username: str) -> str:
    pattern = _substitute(pattern, username)
    parts = pattern.split(":", 5)
    if len(parts) == 6 and parts[2] == "sagemaker":
        return pattern.lower()
    return pattern


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.DOTALL)


def _wild(text: str) -> bool:
    return any(c in text for c in "*?[")


@dataclass(frozen=True, slots=True)
class _Group:
    """Wildcard patterns that share their first five parts (``arn:aws:sagemaker:*:*``):
    the head is matched once, then the resource part against exact names, prefixes (one
    ``str.startswith`` over a tuple) and one alternation of the rest."""

    head: str  # "arn:PARTITION:SERVICE:REGION:ACCOUNT", maybe with wildcards
    head_regex: re.Pattern[str] | None  # None: the head has no wildcard
    exact: frozenset[str]
    prefixes: tuple[tuple[int, frozenset[str]], ...]  # by length: a slice, a set lookup
    regex: re.Pattern[str] | None
    heads: dict[str, bool]  # the wildcard head's answers (an installation has few heads)

    def __call__(self, head: str, resource: str) -> bool:
        if self.head_regex is None:
            if head != self.head:
                return False
        else:
            known = self.heads.get(head)
            if known is None:
                known = self.head_regex.match(head) is not None
                if len(self.heads) < 64:
                    self.heads[head] = known
            if not known:
                return False
        if resource in self.exact:
            return True
        for length, starts in self.prefixes:
            if resource[:length] in starts:
                return True
        return self.regex is not None and self.regex.match(resource) is not None


def _by_length(prefixes: list[str]) -> tuple[tuple[int, frozenset[str]], ...]:
    lengths = sorted({len(p) for p in prefixes})
    return tuple((n, frozenset(p for p in prefixes if len(p) == n)) for n in lengths)


def _alternation(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Matcher:
    """Does an ARN match any of some patterns: ``*``, exact ARNs (a set), and the rest split
    once into their head and resource parts (``_Group``)."""

    anything: bool
    exact: frozenset[str]
    groups: tuple[_Group, ...]

    @staticmethod
    def of(patterns: Iterable[str]) -> _Matcher:
        anything = False
        exact: set[str] = set()
        by_head: dict[str, tuple[set[str], list[str], list[str]]] = {}
        for p in dict.fromkeys(patterns):
            if p == "*":
                anything = True
                continue
            if not _wild(p):
                exact.add(p)
                continue
            parts = p.split(":", 5)
            if len(parts) != 6:  # "arn*": no head to split off
                parts = [p, "", "", "", "", "*"] if p.endswith("*") else [p, "", "", "", "", ""]
            head, resource = ":".join(parts[:5]), parts[5]
            names, prefixes, rest = by_head.setdefault(head, (set(), [], []))
            if not _wild(resource):
                names.add(resource)
            elif resource.endswith("*") and not _wild(resource[:-1]):
                prefixes.append(resource[:-1])
            else:
                rest.append(resource)
        groups = tuple(
            _Group(
                head,
                _regex(head) if _wild(head) else None,
                frozenset(names),
                _by_length(prefixes),
                _alternation(rest),
                {},
            )
            for head, (names, prefixes, rest) in by_head.items()
        )
        return _Matcher(anything, frozenset(exact), groups)

    def __call__(self, arn: str) -> bool:
        if self.anything or arn in self.exact:
            return True
        if not self.groups:
            return False
        parts = arn.split(":", 5)
        if len(parts) != 6:
            return False
        resource = parts[5]
        head = arn[: len(arn) - len(resource) - 1]
        for group in self.groups:  # noqa: SIM110 - a loop: no generator on the hot path
            if group(head, resource):
                return True
        return False


class _Context:
    __slots__ = ("_source", "_tags", "username")

    def __init__(self, source: TagSource, username: str) -> None:
        self._source = source
        self._tags: Tags | None = None
        self.username = username

    def tags(self) -> Tags:
        if self._tags is None:
            source = self._source
            self._tags = (source() if callable(source) else source) or {}
        return self._tags


@dataclass(frozen=True, slots=True)
class _Cond:
    """A condition compiled for one user: its values substituted, as a set and as regexes."""

    tag: str | None  # the resource tag it reads; None: aws:username
    operator: str
    if_exists: bool
    negated: bool
    values: frozenset[str]
    lowered: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    @staticmethod
    def of(c: Condition, username: str) -> _Cond:
        values = [_substitute(v, username) for v in c.values]
        return _Cond(
            c.tag, c.operator, c.if_exists, "Not" in c.operator, frozenset(values),
            frozenset(v.lower() for v in values),
            tuple(_regex(v) for v in values) if "Like" in c.operator else (),
        )  # fmt: skip

    def holds(self, ctx: _Context) -> bool:
        present = ctx.tags().get(self.tag) if self.tag is not None else ctx.username
        if self.operator == "Null":
            return (present is None) == ("true" in self.values)
        if present is None:
            # As IAM: an absent key fails a positive operator and passes a negated one.
            return self.if_exists or self.negated
        op = self.operator
        if op in ("StringEquals", "StringNotEquals"):
            hit = present in self.values
        elif op in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
            hit = present.lower() in self.lowered
        else:  # StringLike, StringNotLike
            hit = any(p.match(present) is not None for p in self.patterns)
        return hit != self.negated


@dataclass(frozen=True, slots=True)
class _Slow:
    """A statement with a Condition or a NotResource, checked one by one."""

    matcher: _Matcher
    not_resource: bool
    conditions: tuple[_Cond, ...]

    def applies(self, arn: str, ctx: _Context) -> bool:
        if self.matcher(arn) == self.not_resource:
            return False
        return all(c.holds(ctx) for c in self.conditions)


# Statements whose one condition is ``StringEquals`` on a resource tag, by tag key, then by
# value: the resource's tag value finds the few that may apply in one dict lookup.
_TagIndex = dict[str, dict[str, list[_Matcher]]]


def _indexed(index: _TagIndex, slow: tuple[_Slow, ...], arn: str, ctx: _Context) -> bool:
    if index:
        tags = ctx.tags()
        for key, by_value in index.items():
            value = tags.get(key)
            if value is not None and any(m(arn) for m in by_value.get(value, ())):
                return True
    return any(s.applies(arn, ctx) for s in slow)


@dataclass(frozen=True, slots=True)
class _Rules:
    deny: _Matcher | None
    deny_index: _TagIndex
    slow_deny: tuple[_Slow, ...]
    allow: _Matcher | None
    allow_index: _TagIndex
    slow_allow: tuple[_Slow, ...]
    tags: bool  # whether a statement reads the resource's tags


class PolicySet:
    """The compiled policies of one principal (see the module docstring)."""

    __slots__ = ("_index", "names", "policies", "tag_keys", "username")

    def __init__(self, policies: Sequence[Policy], username: str) -> None:
        self.policies = tuple(policies)
        self.names = tuple(p.name for p in policies)
        self.username = username
        # Every resource tag key a condition reads (the API stamps the owner tag on what an
        # identity creates when its policies read it).
        self.tag_keys = frozenset(
            c.tag
            for p in policies
            for st in p.statements
            for c in st.conditions
            if c.tag is not None
        )
        fast: dict[tuple[str, str], list[str]] = {}
        slow: dict[tuple[str, str], list[_Slow]] = {}
        indexed: dict[tuple[str, str], _TagIndex] = {}
        for policy in policies:
            for st in policy.statements:
                self._add(st, fast, slow, indexed, username)
        self._index: dict[str, _Rules] = {}
        actions = {a for a, _ in fast} | {a for a, _ in slow} | {a for a, _ in indexed}
        matchers: dict[tuple[str, ...], _Matcher] = {}

        def matcher(patterns: list[str] | None) -> _Matcher | None:
            if not patterns:
                return None
            key = tuple(sorted(set(patterns)))
            if key not in matchers:
                matchers[key] = _Matcher.of(key)
            return matchers[key]

        for action in actions:
            slows = slow.get((action, "Deny"), []) + slow.get((action, "Allow"), [])
            self._index[action] = _Rules(
                matcher(fast.get((action, "Deny"))),
                indexed.get((action, "Deny"), {}),
                tuple(slow.get((action, "Deny"), ())),
                matcher(fast.get((action, "Allow"))),
                indexed.get((action, "Allow"), {}),
                tuple(slow.get((action, "Allow"), ())),
                bool(indexed.get((action, "Deny")) or indexed.get((action, "Allow")))
                or any(c.tag is not None for s in slows for c in s.conditions),
            )

    @staticmethod
    def _add(
        st: Statement,
        fast: dict[tuple[str, str], list[str]],
        slow: dict[tuple[str, str], list[_Slow]],
        indexed: dict[tuple[str, str], _TagIndex],
        username: str,
    ) -> None:
        patterns = [_normalize(p, username) for p in st.resources]
        conditions = tuple(_Cond.of(c, username) for c in st.conditions)
        one = conditions[0] if len(conditions) == 1 else None
        if (
            one is not None
            and not st.not_resource
            and one.operator == "StringEquals"
            and not one.if_exists
            and one.tag is not None
        ):
            m = _Matcher.of(patterns)
            for action in st.actions:
                by_value = indexed.setdefault((action, st.effect), {}).setdefault(one.tag, {})
                for value in one.values:
                    by_value.setdefault(value, []).append(m)
        elif conditions or st.not_resource:
            item = _Slow(_Matcher.of(patterns), st.not_resource, conditions)
            for action in st.actions:
                slow.setdefault((action, st.effect), []).append(item)
        else:
            for action in st.actions:
                fast.setdefault((action, st.effect), []).extend(patterns)

    def decide(self, action: str, resource: str, tags: TagSource = None) -> str:
        """``ALLOW``, ``EXPLICIT_DENY`` or ``IMPLICIT_DENY`` for ``action`` on ``resource``."""
        rules = self._index.get(action)
        if rules is None:
            return IMPLICIT_DENY
        if rules.deny is not None and rules.deny(resource):
            return EXPLICIT_DENY
        ctx: _Context | None = None
        if rules.deny_index or rules.slow_deny:
            ctx = _Context(tags, self.username)
            if _indexed(rules.deny_index, rules.slow_deny, resource, ctx):
                return EXPLICIT_DENY
        if rules.allow is not None and rules.allow(resource):
            return ALLOW
        if rules.allow_index or rules.slow_allow:
            ctx = ctx or _Context(tags, self.username)
            if _indexed(rules.allow_index, rules.slow_allow, resource, ctx):
                return ALLOW
        return IMPLICIT_DENY

    def needs_tags(self, action: str) -> bool:
        """Whether deciding ``action`` may read the resource's tags (then the caller may
        prefer to decide off its event loop, the tags being a store read)."""
        rules = self._index.get(action)
        return rules is not None and rules.tags

    def may_ever(self, action: str) -> bool:
        """Whether some statement allows ``action`` on some resource (for lists: what a
        caller may list is then filtered, or not, by the route)."""
        rules = self._index.get(action)
        return rules is not None and (
            rules.allow is not None or bool(rules.allow_index) or bool(rules.slow_allow)
        )
