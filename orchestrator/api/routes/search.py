"""``POST /api/v1/search``: SageMaker's Search (its ``SearchRequest`` in, ``Results`` out)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Response

from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.resources.kinds import REST_PREFIX
from orchestrator.resources.search import SearchRequest

router = APIRouter(prefix=REST_PREFIX, tags=["Search"])
Plane = Annotated[ControlPlane, Depends(plane)]


# A page is up to 100 whole Describe documents: FastAPI's generic encoder (jsonable_encoder,
# recursive Python) took ~16 ms of a 57 ms search of 100 records over 100,000 jobs
# (benchmarks/tuning_search.py); orjson writes the same JSON (UTC times with a Z, as pydantic
# does) in a fraction of that.
_JSON = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


@router.post("/search", dependencies=[Depends(authorized("sagemaker:Search"))])
def search(body: SearchRequest, cp: Plane) -> Response:
    """``{"Results": [{"TrainingJob": {...}}], "NextToken": ...}``; a filter on a name the
    resource does not have, or a value of the wrong type, is a 400 naming it."""
    return Response(orjson.dumps(cp.search(body), option=_JSON), media_type="application/json")
