"""``/api/v1/objects``: put, get, list and delete objects in the encrypted store.

The client uploads training data and source code here, so a remote server works the same as
a local one. Bodies are streamed to a temporary file, never held whole in memory. A bucket of
another account is answered as an absent one (``objects.buckets``); a put into an absent
bucket makes it only for the server's own account (another creates its bucket first).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from orchestrator import tenancy
from orchestrator.api.deps import authorized, object_resource, plane
from orchestrator.api.service import ControlPlane
from orchestrator.errors import PermissionDeniedError
from orchestrator.objects import ObjectInfo, buckets, join_uri, parse_prefix_uri

router = APIRouter(prefix="/api/v1/objects", tags=["Object"])
Plane = Annotated[ControlPlane, Depends(plane)]


def _info(i: ObjectInfo) -> dict[str, object]:
    return {
        "Uri": i.uri,
        "Size": i.size,
        "Version": i.version,
        "Sha256": i.sha256,
        "LastModified": i.last_modified.isoformat(),
    }


def _refuse_reserved(cp: ControlPlane, bucket: str) -> None:
    # The audit trail's bucket is the server's account's: to another account, absent (404).
    if bucket == cp.settings.audit.bucket and tenancy.stamp() == tenancy.ROOT:
        raise PermissionDeniedError(
            f"bucket {bucket!r} holds the audit trail: only the server writes there (read it "
            "with `orch audit lookup`; choose another bucket for your objects)",
            field="bucket",
        )


@router.put(
    "/{bucket}/{key:path}", dependencies=[Depends(authorized("s3:PutObject", object_resource))]
)
async def put_object(bucket: str, key: str, request: Request, cp: Plane) -> dict[str, object]:
    _refuse_reserved(cp, bucket)
    uri = join_uri(bucket, key)
    if not await run_in_threadpool(buckets.writable, cp.objects, bucket):
        raise buckets.missing(bucket)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=cp.settings.home)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
        info = await run_in_threadpool(cp.objects.put_file, uri, Path(tmp))
    finally:
        Path(tmp).unlink(missing_ok=True)
    return _info(info)


@router.get(
    "/{bucket}/{key:path}", dependencies=[Depends(authorized("s3:GetObject", object_resource))]
)
async def get_object(bucket: str, key: str, cp: Plane) -> FileResponse:
    uri = join_uri(bucket, key)
    await run_in_threadpool(buckets.need, cp.objects, bucket)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=cp.settings.home)
    os.close(fd)
    try:
        # Decrypted and verified in full before the first byte is sent.
        await run_in_threadpool(cp.objects.get_file, uri, Path(tmp))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return FileResponse(
        tmp,
        media_type="application/octet-stream",
        background=BackgroundTask(lambda: Path(tmp).unlink(missing_ok=True)),
    )


@router.get("", dependencies=[Depends(authorized("s3:ListBucket", object_resource))])
def list_objects(
    cp: Plane, prefix: Annotated[str, Query(description="s3://bucket/prefix")]
) -> dict[str, object]:
    # An absent bucket lists nothing, and so (the same answer) does another account's.
    if not buckets.visible(cp.objects, parse_prefix_uri(prefix)[0]):
        return {"Objects": []}
    return {"Objects": [_info(i) for i in cp.objects.list(prefix)]}


@router.delete(
    "/{bucket}/{key:path}", dependencies=[Depends(authorized("s3:DeleteObject", object_resource))]
)
def delete_object(bucket: str, key: str, cp: Plane) -> dict[str, str]:
    _refuse_reserved(cp, bucket)
    uri = join_uri(bucket, key)
    buckets.need(cp.objects, bucket)
    cp.objects.delete(uri)
    return {"Uri": uri}
