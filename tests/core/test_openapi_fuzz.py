"""The OpenAPI document tells the truth: schemathesis, every check, against a live server.

``st run --checks all`` with a fixed seed and a bounded number of examples per operation; it
fails on any response the document does not declare (status, media type, headers, body), any
schema-valid request refused or schema-violating one accepted (but where
``openapi_fuzz.toml`` names a rule JSON Schema cannot state), a 405 without ``Allow``, and any
server error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.testing import local_control_plane

CONFIG = Path(__file__).with_name("openapi_fuzz.toml")
EXAMPLES = 8
SEED = 16


def _st() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    return found


# About 7,500 requests (the coverage phase's boundary cases, over 57 operations, are most):
# half a minute to two, as loaded as the machine is.
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    # The key's rate limit is off here: thousands of requests a minute would otherwise mostly
    # be answered 429, leaving the checks behind it untried. The document still declares the
    # 429 (with Retry-After) on every operation behind a key, as the limit is on by default;
    # tests/core/test_ratelimit.py holds the limit itself to its answers.
    with local_control_plane(tmp_path, rate_limits={"api_requests_per_second": 0}) as cp:
        cmd = [
            _st(),
            "--config-file",
            str(CONFIG),
            "run",
            f"{cp.url}/openapi.json",
            "-H",
            f"Authorization: Bearer {cp.api_key}",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "2",
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
            str(tmp_path / "report"),
        ]
        env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false"}
        run = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False
        )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]


def test_the_document_declares_keys_and_the_error_shape(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as cp:
        doc = httpx.get(f"{cp.url}/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (orch_...)",
    }
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    assert set(doc["components"]["schemas"]["Error"]["required"]) == {"code", "message"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    describe = doc["paths"]["/api/v1/training-jobs/{name}"]["get"]
    assert describe["security"] == [{"bearer": []}, {"apiKeyHeader": []}]
    assert set(describe["responses"]) == {"200", "400", "401", "403", "404", "429", "500", "503"}
    # the key's rate limit: a 429 with Retry-After on every operation behind a key
    assert describe["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    create = doc["paths"]["/api/v1/models"]["post"]["responses"]
    assert {"200", "201", "409", "429"} <= set(create)
    assert "422" not in create
    assert create["503"]["headers"]["Retry-After"]["required"] is True
    # a create's 429 may be a quota (LimitExceededError), which has no Retry-After
    assert create["429"]["headers"]["Retry-After"]["required"] is False
    schemas = doc["components"]["schemas"]
    user = schemas["CreateUserRequest"]["properties"]
    assert user["Roles"]["items"]["enum"] == ["admin", "data-scientist", "invoke", "read-only"]
    assert "ReadOnly" in user["ManagedPolicies"]["items"]["enum"]
    expires = schemas["CreateKeyRequest"]["properties"]["ExpiresInSeconds"]["anyOf"][0]
    assert expires["minimum"] == 1
    assert expires["maximum"] == 100 * 365 * 86400
    invoke = doc["paths"]["/endpoints/{name}/invocations"]["post"]
    assert {"401", "404", "413", "503", "default"} <= set(invoke["responses"])
    assert "/endpoints/{name}/v2/models/{model}/infer" in doc["paths"]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert "401" not in doc["paths"]["/healthz"]["get"]["responses"]


def test_405_names_every_method_of_the_path(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as cp:
        auth = {"Authorization": f"Bearer {cp.api_key}"}
        r = httpx.request("PUT", f"{cp.url}/api/v1/endpoints/e1", headers=auth)
        health = httpx.request("DELETE", f"{cp.url}/healthz")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, PATCH, DELETE"
    assert r.json() == {
        "code": "MethodNotAllowed",
        "message": "PUT is not allowed here; use GET, PATCH, DELETE",
    }
    assert health.status_code == 405
    assert health.headers["allow"] == "GET"
