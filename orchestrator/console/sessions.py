"""The console's sessions: a sealed cookie holding the API key, and a CSRF token.

A person logs in with an API key; the server answers with the cookie ``orch_session``
(HttpOnly, SameSite=Strict, Secure behind TLS) whose value is a Fernet token (AES-128-CBC and
HMAC-SHA256, from ``cryptography``) over ``{"sid", "key", "csrf"}``. Nothing of the session is
kept by the server but the ids of the sessions ended by a logout, until they would have expired;
so any API replica that holds the same sealing key can serve a session. The key is a file
(``ORCH_CONSOLE__SECRET_FILE``, default ``<config_dir>/console-secret``), made on first use.

Each request through a cookie is authenticated as the key it holds is (the key cache, the
policies, a revoked key stops the session at once). Requests that change something
(POST, PUT, PATCH, DELETE) must carry ``X-CSRF-Token`` equal to the session's token: a page
of another site can make the browser send the cookie (not with SameSite=Strict, but older
browsers and some redirects), never read the token.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from orchestrator.errors import InvalidCsrfTokenError, SessionExpiredError, ValidationError

COOKIE = "orch_session"
CSRF_HEADER = "x-csrf-token"
CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Session:
    sid: str
    key: str
    csrf: str


def load_or_create_secret(path: Path) -> bytes:
    """The sealing key at ``path`` (a Fernet key, urlsafe base64), made 0600 when absent."""
    try:
        raw = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw + b"\n")
        return raw
    try:
        if len(base64.urlsafe_b64decode(raw)) != 32:
            raise ValueError
    except ValueError:
        raise ValidationError(
            f"ORCH_CONSOLE__SECRET_FILE: {path} is not a console sealing key (32 bytes in "
            "urlsafe base64, as `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'` prints); fix or remove it",
            field="ORCH_CONSOLE__SECRET_FILE",
        ) from None
    return raw


class Sessions:
    """Seals and opens sessions; remembers the ended ones until they would expire."""

    def __init__(
        self, secret: bytes, lifetime_seconds: float, *, now: Callable[[], float] = time.time
    ) -> None:
        self._fernet = Fernet(secret)
        self.lifetime = lifetime_seconds
        self._now = now
        self._ended: dict[str, float] = {}  # sid -> when it would have expired
        self._lock = threading.Lock()

    def open_new(self, key: str) -> tuple[str, Session]:
        """A new session for ``key`` (already verified): the cookie's value and the session."""
        session = Session(secrets.token_urlsafe(16), key, secrets.token_urlsafe(24))
        doc = {"sid": session.sid, "key": session.key, "csrf": session.csrf}
        token = self._fernet.encrypt_at_time(json.dumps(doc).encode(), int(self._now()))
        return token.decode("ascii"), session

    def open(self, cookie: str) -> Session:
        """The session the cookie seals; ``SessionExpired`` when it is too old or was ended."""
        expired = SessionExpiredError(
            "the console session has expired or was ended: log in again with an API key",
            field="orch_session",
        )
        try:
            raw = self._fernet.decrypt_at_time(
                cookie.encode("ascii"), int(self.lifetime), int(self._now())
            )
            doc = json.loads(raw)
            session = Session(str(doc["sid"]), str(doc["key"]), str(doc["csrf"]))
        except (InvalidToken, UnicodeEncodeError, ValueError, KeyError, TypeError):
            raise expired from None
        with self._lock:
            if session.sid in self._ended:
                raise expired
        return session

    def end(self, session: Session) -> None:
        now = self._now()
        with self._lock:
            self._ended = {s: t for s, t in self._ended.items() if t > now}
            self._ended[session.sid] = now + self.lifetime

    @staticmethod
    def check_csrf(session: Session, method: str, presented: str | None) -> None:
        if method.upper() not in CHANGING:
            return
        if presented is None or not hmac.compare_digest(presented, session.csrf):
            raise InvalidCsrfTokenError(
                f"{method.upper()} with the console's session cookie needs the header "
                "X-CSRF-Token: the CsrfToken of POST or GET /console/session",
                field="X-CSRF-Token",
            )


def cookie_value(cookie_header: str | None) -> str | None:
    """``orch_session``'s value in a ``Cookie`` header (None when absent)."""
    if not cookie_header:
        return None
    for part in cookie_header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            return value.strip().strip('"')
    return None


def session_key_of(
    sessions: Sessions, cookie_header: str | None, csrf: str | None, method: str = "POST"
) -> str | None:
    """The API key of the session in ``cookie_header`` (None: no session cookie), checking
    the CSRF token when ``method`` changes something."""
    cookie = cookie_value(cookie_header)
    if cookie is None:
        return None
    session = sessions.open(cookie)
    Sessions.check_csrf(session, method, csrf)
    return session.key
