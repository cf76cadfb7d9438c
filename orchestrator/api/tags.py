"""Tags of any resource, found by its ARN: added, overwritten, removed, listed.

A resource's tags live where its create put them, in its spec's ``Tags`` (so a Describe, a
custom resource and ``kubectl get -o yaml`` show the same ones, and there is no second copy to
keep in step). A tag change rewrites the spec with the version it read (a lost race reads
again) and leaves the resource to the reconciler as it was: tags play no part in what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from orchestrator import tenancy
from orchestrator.clock import Clock
from orchestrator.errors import (
    ConflictError,
    LimitExceededError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from orchestrator.iam import OWNER_TAG
from orchestrator.resources.common import Tag
from orchestrator.resources.kinds import KINDS
from orchestrator.settings import Settings
from orchestrator.store import DesiredState, ListFilter, Record

MAX_TAGS = 50
# The tag keys SageMaker keeps for itself (a user may not set or remove them).
RESERVED_TAG_PREFIX = "aws:"


class ResourceTags:
    def __init__(self, store: DesiredState, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    def find_by_arn(self, arn: str) -> Record:
        """The resource an ARN of this server names (its name is lower-cased in the ARN, as
        SageMaker writes it), or ``NotFoundError``. An ARN of another account's resource (its
        account id not the caller's, ``orchestrator.tenancy``) is not found, exactly as an
        absent one."""
        s = self.settings
        mine = tenancy.arn_account(tenancy.current() or tenancy.ROOT, s.account_id)
        prefix = f"arn:aws:sagemaker:{s.region}:{mine}:"
        head = f"arn:aws:sagemaker:{s.region}:"
        account, _, rest = arn[len(head) :].partition(":") if arn.startswith(head) else ("", "", "")
        if not tenancy.ACCOUNT_ID.match(account):
            rest = ""
        slug, _, name = rest.partition("/")
        kind = next((k for k in KINDS.values() if k.arn_slug == slug), None)
        if kind is None or not name:
            raise ValidationError(
                f"ResourceArn {arn!r} names no resource this server keeps: expected {prefix}"
                f"<{'|'.join(k.arn_slug for k in KINDS.values())}>/<name>",
                field="ResourceArn",
            )
        found = None
        if account == mine or tenancy.current() is None:
            found = self.store.find(kind.name, name) or self._named_alike(kind.name, name)
        if found is not None and tenancy.arn_account(found.account, s.account_id) != account:
            found = None  # another account's resource: as absent
        if found is None:
            raise NotFoundError(f"{kind.name} of ARN {arn!r} does not exist", field="ResourceArn")
        return found

    def _named_alike(self, kind: str, lowered: str) -> Record | None:
        """The resource whose name, lower-cased, is ``lowered`` (a name with capitals)."""
        token: str | None = None
        while True:
            page = ListFilter(limit=100, name_contains=lowered, next_token=token)
            records, token = self.store.list(kind, page)
            found = next((r for r in records if r.name.lower() == lowered), None)
            if found is not None or token is None:
                return found

    def tags_of(self, kind: str, name: str) -> list[Tag]:
        spec = KINDS[kind].spec.model_validate(self.store.get(kind, name).spec)
        return list(getattr(spec, "Tags", []))

    def add_tags(self, kind: str, name: str, tags: Sequence[Tag]) -> list[Tag]:
        """Add or overwrite tags (by key) of an existing resource; its spec holds them."""
        self._check_tag_keys([t.Key for t in tags], "Tags")

        def change(current: list[Tag]) -> list[Tag]:
            given = {t.Key: t for t in tags}
            merged = [given.pop(t.Key, t) for t in current] + list(given.values())
            if len(merged) > MAX_TAGS:
                raise LimitExceededError(
                    f"{kind} {name!r} would have {len(merged)} tags; the limit is {MAX_TAGS}: "
                    "remove some first (DeleteTags)"
                )
            return merged

        self._edit_tags(kind, name, change)
        return list(tags)

    def delete_tags(self, kind: str, name: str, keys: Sequence[str]) -> None:
        self._check_tag_keys(keys, "TagKeys")
        gone = set(keys)
        self._edit_tags(kind, name, lambda current: [t for t in current if t.Key not in gone])

    @staticmethod
    def _check_tag_keys(keys: Sequence[str], field: str) -> None:
        reserved = sorted(k for k in keys if k.lower().startswith(RESERVED_TAG_PREFIX))
        if OWNER_TAG in keys:
            raise ValidationError(
                f"{field}: the tag {OWNER_TAG!r} is set by the server when a resource is made "
                "(its creator); it cannot be added, changed or removed",
                field=field,
            )
        if reserved:
            raise ValidationError(
                f"{field}: tag keys starting with {RESERVED_TAG_PREFIX!r} are reserved: {reserved}",
                field=field,
            )

    def _edit_tags(self, kind: str, name: str, change: Callable[[list[Tag]], list[Tag]]) -> None:
        """Rewrite the spec's Tags (the one place they live, on every source); the reconciler
        has no part in it, so the resource is left to it as it was."""
        for _ in range(20):  # the controller writes the status often: re-read on a conflict
            record = self.store.get(kind, name)
            spec = KINDS[kind].spec.model_validate(record.spec)
            tagged = spec.model_copy(update={"Tags": change(list(getattr(spec, "Tags", [])))})
            try:
                self.store.update_spec(
                    record, tagged.model_dump(mode="json"), status=record.status,
                    now=self.clock.now(), reconcile=False,
                )  # fmt: skip
            except ConflictError:
                continue
            return
        raise UnavailableError(
            f"{kind} {name!r} changed too often to be tagged; retry", retry_after=1
        )

    # --- by ARN (REST) ---------------------------------------------------------------------
    def add_by_arn(self, arn: str, tags: Sequence[Tag]) -> list[Tag]:
        record = self.find_by_arn(arn)
        return self.add_tags(record.kind, record.name, tags)

    def delete_by_arn(self, arn: str, keys: Sequence[str]) -> None:
        record = self.find_by_arn(arn)
        self.delete_tags(record.kind, record.name, keys)

    def list_by_arn(
        self, arn: str, max_results: int = MAX_TAGS, next_token: str | None = None
    ) -> tuple[list[Tag], str | None]:
        """One page of the resource's tags (in the order they were added) and the token of
        the next page (None on the last): the token is where the next page starts."""
        if not 1 <= max_results <= 100:
            raise ValidationError(
                f"MaxResults must be in 1..100, not {max_results}", field="MaxResults"
            )
        start = 0
        if next_token is not None:
            if not next_token.isdigit():
                raise ValidationError(
                    f"NextToken {next_token!r} is not a token a ListTags answer gave; "
                    "leave it out to start from the first page",
                    field="NextToken",
                )
            start = int(next_token)
        record = self.find_by_arn(arn)
        tags = self.tags_of(record.kind, record.name)
        page = tags[start : start + max_results]
        end = start + len(page)
        return page, (str(end) if end < len(tags) else None)
