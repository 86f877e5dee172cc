"""Authentication, CSRF protection and the Host check of the dashboard.

* **Authentication** (:class:`Auth`): a bearer token (``Authorization: Bearer <token>``; a
  browser can send it as the password of basic auth, with any user name) and/or a user
  name and password (HTTP basic auth). Compared in constant time.
* **CSRF**: every state-changing request is a POST and carries a token (form field
  ``csrf_token`` or header ``X-CSRF-Token``) equal to the ``schedcore_csrf`` cookie, which
  is signed with the app's secret (so a cookie planted from a sibling domain does not
  pass) and ``SameSite=Strict``. A request authenticated by a bearer token is exempt:
  browsers never attach that header by themselves, so a foreign page cannot forge it.
  An ``Origin`` header, when present, must name this host.
* **Host check**: bound to loopback without authentication, only ``Host: localhost``,
  ``127.0.0.1`` or ``[::1]`` is served, so a DNS-rebinding page cannot reach the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

import attrs

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Auth", "CsrfSigner", "host_allowed", "is_loopback"]

CSRF_COOKIE = "schedcore_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """``[::1]:8780`` -> ``::1``; ``localhost:8780`` -> ``localhost``."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def host_allowed(host_header: str, allowed: frozenset[str] | None) -> bool:
    """Whether a request's ``Host`` names one of ``allowed`` (None: every host)."""
    if allowed is None:
        return True
    return _host_name(host_header.strip().lower()) in allowed


def origin_matches(origin: str, host_header: str) -> bool:
    """Whether an ``Origin`` header names the host the request was sent to."""
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host_header.strip().lower()


@attrs.frozen(kw_only=True, repr=False)
class Auth:
    """Who may use the dashboard: a bearer ``token``, and/or ``username`` with ``password``."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ValueError("basic auth needs both a user name and a password")
        for name in ("token", "password"):
            value = getattr(self, name)
            if value is not None and len(value) < 8:
                raise ValueError(f"the {name} must be at least 8 characters")

    def __repr__(self) -> str:  # never the secrets themselves
        return f"Auth(token={'set' if self.token else None}, username={self.username!r})"

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.username is not None

    def check(self, authorization: str | None) -> str | None:
        """How the ``Authorization`` header authenticates: ``"bearer"``, ``"basic"`` or None (it does not)."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token is not None:
            return "bearer" if _same(value, self.token) else None
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not sep:
            return None
        if self.token is not None and _same(password, self.token):
            return "basic"
        if self.username is not None and self.password is not None:
            # Both compared every time, so the timing says nothing about which one was wrong.
            user_ok = _same(user, self.username)
            password_ok = _same(password, self.password)
            if user_ok and password_ok:
                return "basic"
        return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class CsrfSigner:
    """Makes and checks CSRF tokens: ``<random>.<hmac of it under the secret>``."""

    def __init__(self, secret: bytes | None = None) -> None:
        # A random secret by default: tokens then last as long as the process, which is
        # what a single dashboard needs (several processes behind one name need one secret).
        self._secret = secret or secrets.token_bytes(32)

    def new(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str | None) -> bool:
        if not token or token.count(".") != 1:
            return False
        nonce, signature = token.split(".")
        return hmac.compare_digest(signature.encode("ascii", "replace"), self._sign(nonce).encode("ascii"))

    def matches(self, cookie: str | None, submitted: str | None) -> bool:
        """The submitted token is the (valid) one of the cookie."""
        return self.valid(cookie) and submitted is not None and _same(submitted, cookie or "")

    def _sign(self, nonce: str) -> str:
        digest = hmac.new(self._secret, nonce.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
