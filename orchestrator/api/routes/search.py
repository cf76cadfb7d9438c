"""``POST /api/v1/search``: SageMaker's Search (its ``SearchRequest`` in, ``Results`` out)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from orchestrator.api.deps import allowed, plane
from orchestrator.api.service import ControlPlane
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.resources.search import SearchRequest

router = APIRouter(prefix=REST_PREFIX, tags=["Search"])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post("/search", dependencies=[Depends(allowed("search"))])
def search(body: SearchRequest, cp: Plane) -> dict[str, Any]:
    """``{"Results": [{"TrainingJob": {...}}], "NextToken": ...}``; a filter on a name the
    resource does not have, or a value of the wrong type, is a 400 naming it."""
    return cp.search(body)
