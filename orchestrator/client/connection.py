"""Where the control plane is and which key to use: arguments, then ORCH_* settings, then the
credentials file the first ``orch server`` run wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ValidationError
from orchestrator.settings import Settings, get_settings


@dataclass(frozen=True)
class Connection:
    endpoint_url: str
    api_key: str | None
    # The CA certificates to verify an https:// control plane with (None: the system's).
    ca_bundle: Path | None = None


def resolve(
    endpoint_url: str | None = None,
    api_key: str | None = None,
    settings: Settings | None = None,
    ca_bundle: Path | str | None = None,
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
    resolved = (url or s.endpoint_url).rstrip("/")
    # The saved CA bundle (a self-signed local server's certificate) is for the saved URL only:
    # a bundle replaces the system's CAs, which another server's certificate may need.
    saved_ca = (
        saved.get("ca_bundle") if saved.get("endpoint_url", "").rstrip("/") == resolved else None
    )
    ca = ca_bundle or s.ca_bundle or saved_ca
    if ca is saved_ca and saved_ca and not Path(saved_ca).is_file():
        raise ValidationError(
            f"{path} names the CA bundle {saved_ca} for {resolved}, and it does not exist: start "
            "`orch server` again (it rewrites the file), or pass --ca-bundle / ORCH_CA_BUNDLE",
            field="ORCH_CA_BUNDLE",
        )
    return Connection(endpoint_url=resolved, api_key=key, ca_bundle=Path(ca) if ca else None)
