"""HTTP for feeds and pages: deadlines, byte caps, conditional GET, redirects, address checks.

``Fetcher.get`` returns a ``Fetched`` (a body) or ``NOT_MODIFIED``; every expected failure raises
a ``FetchError`` subclass with a one-line reason. Redirects are followed here, one hop at a time,
each hop's address checked at connect time by ``guard.GuardedBackend``.
"""

from __future__ import annotations

import email.utils
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from monitor.errors import BlockedAddress, FetchError, RetryLater, TooLarge
from monitor.guard import AddressPolicy, GuardedBackend, Resolver, system_resolver

REDIRECTS = {301, 302, 303, 307, 308}
MAX_ENCODINGS = 2
RETRY_AFTER_BOUNDS = (1.0, 86400.0)


@dataclass(frozen=True)
class Fetched:
    url: str  # final URL, after redirects
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


class _NotModified:
    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED: Final = _NotModified()


def check_scheme(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise BlockedAddress(f"refused {parts.scheme or 'relative'}: URL (only http and https)")
    if not parts.hostname:
        raise BlockedAddress(f"URL has no host: {url[:200]}")


def parse_retry_after(value: str | None, now: datetime) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), within sane bounds."""
    low, high = RETRY_AFTER_BOUNDS
    if not value:
        return 60.0
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 60.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, low), high)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: AddressPolicy, resolver: Resolver, max_connections: int) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=GuardedBackend(policy, resolver),
        )


class Fetcher:
    """One shared HTTP client; thread-safe; per-host concurrency limited."""

    def __init__(self, *, policy: AddressPolicy, user_agent: str, timeout: float,
                 connect_timeout: float, max_redirects: int = 5, per_host: int = 2,
                 max_connections: int = 32, resolver: Resolver = system_resolver) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_redirects = max_redirects
        self.per_host = per_host
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._hosts_lock = threading.Lock()
        self._client = httpx.Client(
            transport=_GuardedTransport(policy, resolver, max_connections),
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        with self._hosts_lock:
            sem = self._hosts.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with sem:
            yield

    def get(self, url: str, *, max_bytes: int, etag: str | None = None,
            last_modified: str | None = None, accept: str = "*/*") -> Fetched | _NotModified:
        deadline = time.monotonic() + self.timeout
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _hop in range(self.max_redirects + 1):
            check_scheme(url)
            with self._host_slot(url):
                result = self._one(url, headers, max_bytes, deadline)
            if isinstance(result, str):  # a redirect
                url = result
                continue
            return result
        raise FetchError(f"more than {self.max_redirects} redirects")

    def _one(self, url: str, headers: dict[str, str], max_bytes: int,
             deadline: float) -> Fetched | _NotModified | str:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"deadline of {self.timeout:g}s passed")
        timeout = httpx.Timeout(remaining, connect=min(self.connect_timeout, remaining))
        try:
            request = self._client.build_request("GET", url, headers=headers, timeout=timeout)
        except (httpx.InvalidURL, ValueError) as e:
            raise FetchError(f"invalid URL: {e}") from e
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as e:
            raise FetchError(f"timed out: {type(e).__name__}") from e
        except httpx.HTTPError as e:
            raise FetchError(f"connection failed: {_reason(e)}") from e
        try:
            return self._handle(url, response, max_bytes, deadline)
        finally:
            response.close()

    def _handle(self, url: str, response: httpx.Response, max_bytes: int,
                deadline: float) -> Fetched | _NotModified | str:
        status = response.status_code
        if status in REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise FetchError(f"HTTP {status} redirect without a Location")
            return str(urljoin(url, str(location).strip()))
        if status == 304:
            return NOT_MODIFIED
        if status in (429, 503):
            wait = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            raise RetryLater(f"HTTP {status}: retry after {wait:.0f}s", wait)
        if status >= 400:
            raise FetchError(f"HTTP {status} {response.reason_phrase}".strip())
        if status != 200:
            raise FetchError(f"unexpected HTTP status {status}")
        encodings = [e for e in response.headers.get("content-encoding", "").split(",") if
                     e.strip() and e.strip().lower() != "identity"]
        if len(encodings) > MAX_ENCODINGS:
            raise TooLarge(f"refused {len(encodings)} stacked content encodings")
        declared = response.headers.get("content-length", "")
        if not encodings and declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"body of {int(declared)} bytes is over the cap of {max_bytes}")
        body = self._read_capped(response, max_bytes, deadline)
        return Fetched(
            url=url, status=status, body=body,
            content_type=response.headers.get("content-type", ""),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        )

    def _read_capped(self, response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"body over the cap of {max_bytes} bytes (decoded)")
                if time.monotonic() > deadline:
                    raise FetchError(f"deadline of {self.timeout:g}s passed while reading")
                chunks.append(chunk)
        except httpx.TimeoutException as e:
            raise FetchError(f"timed out while reading: {type(e).__name__}") from e
        except httpx.DecodingError as e:
            raise FetchError(f"bad content encoding: {e}") from e
        except httpx.HTTPError as e:
            raise FetchError(f"connection broke while reading: {_reason(e)}") from e
        return b"".join(chunks)


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:300]
