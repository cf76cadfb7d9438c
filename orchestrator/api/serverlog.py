"""The control plane's own log: the server's Python logging, also to a rotating file under
``<logs>/control-plane/<host>.log`` (one file per host, so API replicas that share a home
keep apart), read back as the ``/orchestrator/control-plane`` log group (``api.aws.loggroups``).

Every record starts with its UTC time to the millisecond (``2026-12-03T10:18:24.123Z``): the
reader takes each line's time from there. The file rotates at ``MAX_BYTES``, keeping
``BACKUPS`` older files beside it.
"""

from __future__ import annotations

import logging
import socket
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

MAX_BYTES = 10 << 20
BACKUPS = 5
FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def log_dir(logs_dir: Path) -> Path:
    return logs_dir / "control-plane"


def log_path(logs_dir: Path, host: str | None = None) -> Path:
    return log_dir(logs_dir) / f"{host or socket.gethostname()}.log"


def formatter() -> logging.Formatter:
    f = logging.Formatter(FORMAT, DATE_FORMAT)
    f.converter = time.gmtime
    return f


def install(logs_dir: Path, *, logger: logging.Logger | None = None) -> RotatingFileHandler:
    """Add the file handler to ``logger`` (the root logger); returns it (remove it to stop)."""
    path = log_path(logs_dir)
    target = logger or logging.getLogger()
    for h in target.handlers:  # served twice in one process (tests): one handler a file
        if isinstance(h, RotatingFileHandler) and Path(h.baseFilename) == path.absolute():
            return h
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(formatter())
    handler.setLevel(logging.INFO)
    target.addHandler(handler)
    return handler
