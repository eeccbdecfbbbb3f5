"""Who may read the desk: everyone on a loopback listener without a token; with ``http.token``,
a request with ``Authorization: Bearer <token>`` or the cookie the login page sets. Every
comparison takes constant time; the cookie holds an HMAC of the token, never the token."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

COOKIE = "monitor_desk"
# answered without the token
OPEN_PATHS = ("/healthz", "/login", "/static/desk.css", "/favicon.ico")


class Gate:
    def __init__(self, token: str) -> None:
        self.token = token
        self._session = hmac.new(token.encode(), b"monitor desk session v1",
                                 hashlib.sha256).hexdigest() if token else ""

    def admits(self, path: str, headers: Mapping[str, str]) -> bool:
        if not self.token or path in OPEN_PATHS:
            return True
        auth = headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer " and self.checks(auth[7:].strip()):
            return True
        try:
            jar = SimpleCookie(headers.get("Cookie") or "")
        except CookieError:
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(),
                                                          self._session.encode())

    def checks(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    def cookie(self) -> str:
        """The Set-Cookie value of a login: the session for this token, until the browser
        closes; not readable by scripts, not sent with other sites' requests but a link's."""
        return f"{COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Lax"


def local_path(target: str) -> str:
    """Where a login may send the browser next: a path of this site, else the front page. No
    control character or space (browsers drop tabs and newlines, so "/\t/evil.example" would
    become "//evil.example"; CR LF would split the header), printable ASCII only."""
    if (target.startswith("/") and not target.startswith("//") and target.isascii()
            and all(33 <= ord(c) < 127 for c in target) and "\\" not in target):
        return target
    return "/"


def loopback_host(host: str) -> bool:
    """Whether a request's Host header names loopback (a page fetched through a DNS name that
    was rebound to 127.0.0.1 names that other host)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name
    else:
        name = name.rpartition(":")[0] if ":" in name else name
    return name in ("localhost", "::1") or name.startswith("127.")
