"""The audit trail: who called what, when, from where, with what answer.

Records are append-only and hash-chained (``record``), written off the request's path in
batches to record files in the object store (``trail``), and vouched for by digests signed
with an Ed25519 key of the trail's own (``signing``); ``verify`` checks it all and names the
first record or digest that was changed, removed or reordered. The front doors (the
management API, the AWS protocols, the invocation data plane) capture ``Call``s and
``submit`` them.
"""

from orchestrator.audit.record import Call, is_secret_name, redact, to_record
from orchestrator.audit.signing import SigningKey, fingerprint, load_public, public_pem
from orchestrator.audit.trail import AuditTrail, LookupFilter
from orchestrator.audit.verify import Problem, Report, verify

__all__ = [
    "AuditTrail",
    "Call",
    "LookupFilter",
    "Problem",
    "Report",
    "SigningKey",
    "fingerprint",
    "is_secret_name",
    "load_public",
    "public_pem",
    "redact",
    "to_record",
    "verify",
]
