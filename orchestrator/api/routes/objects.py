"""``/api/v1/objects``: put, get, list and delete objects in the encrypted store.

The client uploads training data and source code here, so a remote server works the same as
a local one. Bodies are streamed to a temporary file, never held whole in memory.
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

from orchestrator.api.deps import allowed, plane
from orchestrator.api.service import ControlPlane
from orchestrator.objects import ObjectInfo, join_uri

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


@router.put("/{bucket}/{key:path}", dependencies=[Depends(allowed("object:put"))])
async def put_object(bucket: str, key: str, request: Request, cp: Plane) -> dict[str, object]:
    uri = join_uri(bucket, key)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=cp.settings.home)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
        info = await run_in_threadpool(cp.objects.put_file, uri, Path(tmp))
    finally:
        Path(tmp).unlink(missing_ok=True)
    return _info(info)


@router.get("/{bucket}/{key:path}", dependencies=[Depends(allowed("object:get"))])
async def get_object(bucket: str, key: str, cp: Plane) -> FileResponse:
    uri = join_uri(bucket, key)
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


@router.get("", dependencies=[Depends(allowed("object:list"))])
def list_objects(
    cp: Plane, prefix: Annotated[str, Query(description="s3://bucket/prefix")]
) -> dict[str, object]:
    return {"Objects": [_info(i) for i in cp.objects.list(prefix)]}


@router.delete("/{bucket}/{key:path}", dependencies=[Depends(allowed("object:delete"))])
def delete_object(bucket: str, key: str, cp: Plane) -> dict[str, str]:
    uri = join_uri(bucket, key)
    cp.objects.delete(uri)
    return {"Uri": uri}
