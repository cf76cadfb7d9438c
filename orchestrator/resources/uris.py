"""What a URI in a spec may name: an ``s3://`` object of the store (and, for the fields that
take one, a ``file://`` path of the server's host).

The checks every front door shares, because they run when a spec is parsed (REST, the
SageMaker wire, a custom resource read by the operator): a scheme other than ``s3://`` (or
``file://`` where allowed) is refused naming the fix, since nothing here fetches ``http://``,
``https://``, ``ftp://`` or ``gs://`` data; an ``s3://`` bucket that spells an IP address
(``s3://127.0.0.1/x``, ``s3://0x7f000001/x``) is refused, as S3 refuses such bucket names: a
bucket is a name in the object store, never a host. Whether a caller may use ``file://`` at
all (admins on a local control plane, with ``ORCH_ALLOW_FILE_URIS``) is the API's check
(``orchestrator.api.inputs``): it depends on who asks.
"""

from __future__ import annotations

from orchestrator.netguard import ip_literal, refusal

UPLOAD_HINT = (
    "put the data in the object store (`orch objects put`, the client's upload, or an S3 "
    "client against this server) and give its s3:// URI"
)


def check_uri(value: object, *, file_ok: bool) -> object:
    """``value`` unchanged when its scheme may be read here, else ``ValueError`` saying what to
    give instead (pydantic names the field). Non-strings are left to the type check."""
    if not isinstance(value, str):
        return value
    scheme, sep, rest = value.partition("://")
    if not sep:
        allowed = "s3://bucket/key (or file:///path)" if file_ok else "s3://bucket/key"
        raise ValueError(f"must be a URI, {allowed}; {UPLOAD_HINT}")
    scheme = scheme.lower()
    if scheme == "s3":
        bucket = rest.partition("/")[0]
        ip = ip_literal(bucket) if bucket else None
        if ip is not None:
            why = refusal(ip)
            raise ValueError(
                f"the bucket {bucket!r} is an IP address ({ip}{', ' + why if why else ''}); "
                "a bucket is a name in the object store, never a host"
            )
        return value
    if scheme == "file":
        if not file_ok:
            raise ValueError(
                "file:// is not accepted here: this field names a place in the object store; "
                "give an s3:// URI (s3://bucket/prefix)"
            )
        return value
    if scheme in ("http", "https"):
        raise ValueError(f"{scheme}:// URIs are not fetched here; {UPLOAD_HINT}")
    raise ValueError(
        f"{scheme}:// URIs are not read here: only s3:// URIs into the object store"
        f"{' (and file:// on a local server, for admins)' if file_ok else ''}; {UPLOAD_HINT}"
    )


def storage_uri(value: object) -> object:
    """``s3://`` or ``file://`` (channels, model artifacts)."""
    return check_uri(value, file_ok=True)


def s3_uri(value: object) -> object:
    """``s3://`` only (outputs, checkpoints, transform data)."""
    return check_uri(value, file_ok=False)
