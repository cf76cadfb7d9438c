"""Where the control plane is and which key to use: arguments, then ORCH_* settings, then the
credentials file the first ``orch server`` run wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.settings import Settings, get_settings


@dataclass(frozen=True)
class Connection:
    endpoint_url: str
    api_key: str | None


def resolve(
    endpoint_url: str | None = None,
    api_key: str | None = None,
    settings: Settings | None = None,
) -> Connection:
    s = settings or get_settings()
    saved: dict[str, str] = {}
    path: Path = s.credentials_path
    try:
        raw = json.loads(path.read_text())
        if isinstance(raw, dict):
            saved = {k: str(v) for k, v in raw.items()}
    except (FileNotFoundError, json.JSONDecodeError, PermissionError):
        saved = {}
    key = api_key or (s.api_key.get_secret_value() if s.api_key else None) or saved.get("api_key")
    env_url_set = "endpoint_url" in s.model_fields_set
    url = endpoint_url or (s.endpoint_url if env_url_set else saved.get("endpoint_url"))
    return Connection(endpoint_url=(url or s.endpoint_url).rstrip("/"), api_key=key)
