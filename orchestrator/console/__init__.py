"""The web console: its pages (``static/``, plain files shipped in the package, served at
``/console`` by ``orchestrator.api.routes.console``) and its sessions (``sessions``)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
