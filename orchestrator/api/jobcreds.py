"""Each job's own credentials: minted at its launch, revoked when it ends.

The controller's executor asks ``JobCredentials.issue`` for the variables a launch hands the
user's code (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` of a SigV4 access key and
``AWS_ENDPOINT_URL`` for the S3 gateway; ``ORCH_API_KEY``/``ORCH_ENDPOINT_URL`` for the REST
API): keys of the job's service identity (``controller.plan.credentials.job_identity``) whose
one inline policy is the job's scope (``training_job_policy``), expiring at its MaxRuntime and a
margin. Safe to kill at any line: a launch that is planned again (the backend never started
it) revokes the keys of the interrupted one and mints new ones (a backend is only asked to
launch an attempt it does not run, so no running code holds the keys replaced);
``revoke`` runs when the job's terminal status is stored, and ``sweep`` (the first pass after a
start, and every pass that ended a job) revokes the keys of every job no longer active, which
catches a revoke the controller died before. A revoked key stops working at once: the data
plane's key caches are told (``AccessKeys.revocation_listeners``).

The identities are named ``job/<kind>/<name>``: a user's identity name cannot hold ``/``
(``api.identities``), so no person's keys are ever swept as a job's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from datetime import datetime

from orchestrator import tenancy
from orchestrator.api.auth import KeyStore, new_api_key
from orchestrator.api.aws.credentials import AccessKeys
from orchestrator.controller.plan.credentials import (
    POLICY_NAME,
    credential_expiry,
    job_identity,
    job_of_identity,
    training_job_policy,
)
from orchestrator.controller.plan.types import JobLaunch
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.iam.policy import parse_policy
from orchestrator.resources.common import make_arn

TRAINING = "training"


class JobCredentials:
    def __init__(
        self,
        keys: KeyStore,
        access: AccessKeys,
        *,
        endpoint_url: str,
        region: str,
        account_id: str,
        now: Callable[[], datetime],
        ca_bundle: str | None = None,
    ) -> None:
        self.keys = keys
        self.access = access
        # Set once the server listens (the bound port is known only then).
        self.endpoint_url = endpoint_url
        self.region = region
        self.account_id = account_id
        self.now = now
        self.ca_bundle = ca_bundle

    def issue(self, launch: JobLaunch, account: str = "") -> dict[str, str]:
        """The environment that gives ``launch``'s code its job's credential (and no other).
        The job's identity and keys belong to the job's account, so its code acts there."""
        with tenancy.acting_as(account):
            return self._issue(launch, account)

    def _issue(self, launch: JobLaunch, account: str) -> dict[str, str]:
        now = self.now()
        identity = job_identity(TRAINING, launch.name)
        arn = make_arn(self.region, account or self.account_id, "training-job", launch.name)
        policy = training_job_policy(launch.spec, launch.output_uri, arn)
        parse_policy(policy, name=POLICY_NAME, where=identity)  # a bug here fails the launch
        document: dict[str, object] = {
            "ManagedPolicies": [],
            "InlinePolicies": {POLICY_NAME: policy},
            "Roles": [],
            "Job": {"Kind": TRAINING, "Name": launch.name, "Attempt": launch.attempt,
                    "Account": account},
        }  # fmt: skip
        if self.keys.get_identity(identity) is None:
            try:
                self.keys.add_identity(identity, kind="service", document=document, now=now)
            except ConflictError:
                self.keys.update_identity(identity, document)
        else:
            self.keys.update_identity(identity, document)
        self._revoke_keys(identity)  # an interrupted launch's keys: replaced
        expires = credential_expiry(launch.spec, now)
        name = f"{identity}/attempt-{launch.attempt}"
        api_key = new_api_key(
            self.keys, name=name, role="", now=now, identity=identity, expires_at=expires
        )
        record, secret = self.access.create(
            name=name, role="", now=now, identity=identity, expires_at=expires
        )
        env = {
            "AWS_ACCESS_KEY_ID": record.access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "ORCH_API_KEY": api_key,
            "ORCH_ENDPOINT_URL": self.endpoint_url,
        }
        if self.ca_bundle:
            env["AWS_CA_BUNDLE"] = env["ORCH_CA_BUNDLE"] = self.ca_bundle
        return env

    def revoke(self, kind: str, name: str) -> None:
        """Revoke every key of the job's identity (idempotent)."""
        self._revoke_keys(job_identity(kind, name))

    def sweep(self, active: Collection[str], kind: str = TRAINING) -> list[str]:
        """Revoke the keys of every ``kind`` job not in ``active``; the jobs it revoked for."""
        done: set[str] = set()
        for identity in self._live_identities():
            job = job_of_identity(identity)
            if job is not None and job[0] == kind and job[1] not in active:
                self._revoke_keys(identity)
                done.add(job[1])
        return sorted(done)

    def _live_identities(self) -> set[str]:
        live = {k.identity for k in self.keys.list_api_keys() if not k.revoked and k.identity}
        live |= {k.identity for k in self.access.list() if not k.revoked and k.identity}
        return live

    def _revoke_keys(self, identity: str) -> None:
        for key in self.keys.list_api_keys():
            if key.identity == identity and not key.revoked:
                self.keys.revoke_api_key(key.key_id)
                # The data plane's key caches (they forget any key id, API or SigV4).
                for listener in self.access.revocation_listeners:
                    listener(key.key_id)
        for access in self.access.list():
            if access.identity == identity and not access.revoked:
                # ConflictError/NotFound: revoked meanwhile (another pass, an operator).
                with contextlib.suppress(ConflictError, NotFoundError):
                    self.access.revoke(access.access_key_id)
