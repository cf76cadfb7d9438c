"""The floor: a bare FastAPI app on uvicorn, one worker (runs in the bare virtualenv).

The least a JSON model server can do per request: json.loads -> np.asarray ->
model.predict -> json.dumps. No validation, no metrics, no error handling, no thread pool.

    python bare_app.py --model-dir DIR --port N
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import joblib
import numpy as np
import uvicorn
from fastapi import FastAPI, Request, Response


def build(model_dir: Path) -> FastAPI:
    model = joblib.load(model_dir / "model.joblib")
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        rows = np.asarray(json.loads(await request.body()))
        out = json.dumps({"predictions": model.predict(rows).tolist()})
        return Response(out, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.model_dir),
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
