"""The Open Inference Protocol (v2) endpoints, readiness while draining, and content types."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from orchestrator.serving import ModelHandler, build_app
from orchestrator.settings import ServingSettings

pytestmark = pytest.mark.anyio


def infer_body(rows: list[list[float]], **extra: object) -> dict[str, object]:
    flat = [v for row in rows for v in row]
    tensor = {"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}
    return {"inputs": [tensor], **extra}


async def test_server_and_model_metadata_and_health(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir), model_name="iris") as client:
        server = await client.get("/v2")
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")
        model = await client.get("/v2/models/iris")
        model_ready = await client.get("/v2/models/iris/ready")
    assert server.status_code == 200
    assert server.json()["name"] == "orchestrator"
    assert "version" in server.json()
    assert live.json() == {"live": True}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}
    assert model.json()["name"] == "iris"
    assert model_ready.json() == {"name": "iris", "ready": True}


async def test_infer_matches_the_model_and_echoes_the_id(
    model_dir: Path, iris, trained: LogisticRegression, app_client
) -> None:
    x, _ = iris
    rows = x[:6].tolist()
    async with app_client(ModelHandler.load(model_dir), model_name="iris") as client:
        response = await client.post("/v2/models/iris/infer", json=infer_body(rows, id="req-7"))
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["id"] == "req-7"
    assert document["model_name"] == "iris"
    (output,) = document["outputs"]
    assert output["name"] == "predict"
    assert output["shape"] == [6]
    assert output["datatype"] == "INT64"
    assert output["data"] == trained.predict(x[:6]).tolist()


async def test_infer_names_the_requested_output(model_dir: Path, app_client) -> None:
    body = infer_body([[5.1, 3.5, 1.4, 0.2]], outputs=[{"name": "label"}])
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.post("/v2/models/model/infer", json=body)
    assert response.status_code == 200
    assert "id" not in response.json()
    assert response.json()["outputs"][0]["name"] == "label"


async def test_unknown_model_is_404_for_every_model_route(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir), model_name="iris") as client:
        responses = [
            await client.get("/v2/models/other"),
            await client.get("/v2/models/other/ready"),
            await client.post("/v2/models/other/infer", json=infer_body([[1, 2, 3, 4]])),
        ]
    for response in responses:
        assert response.status_code == 404
        assert "'other' not found" in response.json()["error"]
        assert "'iris'" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"inputs": []}, 400, "inputs must be a non-empty list"),
        ([1, 2], 400, "JSON object"),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1] * 4}]},
            400,
            "inputs[0].datatype",
        ),
        (
            {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1] * 4}]},
            400,
            "inputs[0].shape",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a"] * 4}]},
            400,
            "inputs[0].data",
        ),
        ({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}, 400, "inputs[0].name"),
        ({"id": 5, "inputs": []}, 400, "id must be a string"),
        (
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
            400,
            "features",
        ),
    ],
)
async def test_infer_errors_are_error_objects_with_the_right_status(
    model_dir: Path, app_client, body: object, status: int, names: str
) -> None:
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.post("/v2/models/model/infer", json=body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert names in response.json()["error"]


async def test_infer_invalid_json_is_400_and_get_is_405(model_dir: Path, app_client) -> None:
    async with app_client(ModelHandler.load(model_dir)) as client:
        bad = await client.post("/v2/models/model/infer", content=b"{nope")
        get = await client.get("/v2/models/model/infer")
        unknown = await client.get("/v2/nothing")
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["error"]
    assert get.status_code == 405
    assert unknown.status_code == 404


async def test_draining_turns_readiness_to_503_but_not_liveness(model_dir: Path) -> None:
    import httpx

    app = build_app(ModelHandler.load(model_dir), settings=ServingSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
        assert (await client.get("/ping")).status_code == 200
        app.drain()
        assert (await client.get("/ping")).status_code == 503
        assert (await client.get("/v2/health/ready")).status_code == 503
        assert (await client.get("/v2/models/model/ready")).status_code == 503
        assert (await client.get("/v2/health/live")).status_code == 200
        # requests already on their way are still served
        assert (await client.post("/invocations", json=[[1, 2, 3, 4]])).status_code == 200
    app.dispatcher.close()


async def test_csv_and_npy_out_when_accept_asks(
    model_dir: Path, iris, trained: LogisticRegression, app_client
) -> None:
    x, _ = iris
    expected = trained.predict(x[:5])
    async with app_client(ModelHandler.load(model_dir)) as client:
        as_csv = await client.post(
            "/invocations", json=x[:5].tolist(), headers={"Accept": "text/csv"}
        )
        as_npy = await client.post(
            "/invocations",
            json=x[:5].tolist(),
            headers={"Accept": "application/x-npy;q=0.9, image/png"},
        )
        preferred = await client.post(
            "/invocations",
            json=x[:5].tolist(),
            headers={"Accept": "text/csv;q=0.5, application/json"},
        )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv"
    assert as_csv.text.split() == [str(v) for v in expected]
    assert as_npy.headers["content-type"] == "application/x-npy"
    assert np.load(io.BytesIO(as_npy.content)).tolist() == expected.tolist()
    assert preferred.headers["content-type"] == "application/json"


async def test_npy_in(model_dir: Path, iris, trained: LogisticRegression, app_client) -> None:
    x, _ = iris
    buffer = io.BytesIO()
    np.save(buffer, x[:3])
    async with app_client(ModelHandler.load(model_dir)) as client:
        response = await client.post(
            "/invocations",
            content=buffer.getvalue(),
            headers={"Content-Type": "application/x-npy", "Accept": "text/csv"},
        )
    assert response.status_code == 200
    assert response.text == "".join(f"{v}\n" for v in trained.predict(x[:3]))
