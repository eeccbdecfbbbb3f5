"""HTTP for feeds and pages: deadlines, byte caps, conditional GET, redirects, address checks.

``Fetcher.get`` returns a ``Fetched`` (a body) or ``NOT_MODIFIED``; every expected failure raises
a ``FetchError`` subclass with a one-line reason. Redirects are followed here, one hop at a time,
each hop's address checked at connect time by ``guard.GuardedBackend``.

Bodies are read raw and decoded here (gzip, deflate; at most two stacked), never more than the
cap at a time, so a compression bomb costs at most ``max_bytes`` of memory.

Proxies come from the standard environment variables (``http_proxy``, ``https_proxy``,
``all_proxy``, ``no_proxy``). The connection to the proxy goes through the same guard (a proxy on
an internal address must be opened in ``fetch.allowed_hosts``), and the target host is resolved
and checked before the request is handed to the proxy. The proxy resolves the name again itself,
so behind a proxy a rebinding DNS server has a window that a direct connection does not have.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from monitor.deadline import WATCHDOG, parse_retry_after, shutdown_of
from monitor.errors import BlockedAddress, FetchError, RetryLater, TooLarge
from monitor.guard import AddressPolicy, GuardedBackend, Resolver, system_resolver

REDIRECTS = {301, 302, 303, 307, 308}
MAX_ENCODINGS = 2
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
POOL_SHARD = 8  # idle connections kept per pool of direct connections


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


class _Decoder:
    """One content encoding, decoded incrementally and never past ``cap`` bytes in all."""

    def __init__(self, name: str, cap: int) -> None:
        self.name, self.cap, self.size = name, cap, 0
        self._wbits = ENCODINGS[name]
        self._zlib = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            try:
                piece = self._zlib.decompress(data, self.cap - self.size + 1)
            except zlib.error as e:
                if self.name == "deflate" and not self._started:  # raw deflate, no zlib header
                    self._wbits = -zlib.MAX_WBITS
                    self._zlib = zlib.decompressobj(self._wbits)
                    self._started = True
                    continue
                raise FetchError(f"bad {self.name} content encoding: {e}") from e
            self._started = True
            self.size += len(piece)
            if self.size > self.cap:
                raise TooLarge(f"body over the cap of {self.cap} bytes (decoded {self.name})")
            out.append(piece)
            data = self._zlib.unconsumed_tail
            if self._zlib.eof:
                break
        return b"".join(out)

    @property
    def finished(self) -> bool:
        return bool(self._zlib.eof)


def _proxies(env: dict[str, str]) -> dict[str, str]:
    """Proxy URL per scheme from the standard environment variables."""
    out = {}
    for scheme in ("http", "https"):
        proxy = env.get(scheme) or env.get("all")
        if proxy:
            out[scheme] = proxy if "://" in proxy else f"http://{proxy}"
    return out


def _bypassed(host: str, env: dict[str, str]) -> bool:
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(env.get("no")) and bool(bypass(host, env))


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: AddressPolicy, resolver: Resolver, max_connections: int,
                 proxy: str | None = None, max_keepalive: int | None = None) -> None:
        super().__init__(trust_env=False)
        backend = GuardedBackend(policy, resolver)
        if proxy is None:
            self._pool = httpcore.ConnectionPool(
                ssl_context=ssl.create_default_context(),
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive or max_connections,
                network_backend=backend,
            )
            return
        parts = urlsplit(proxy)
        shown = f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"  # never the password
        if parts.scheme.lower() not in ("http", "https"):
            raise FetchError(f"unsupported proxy {shown}: only http:// and https:// proxies")
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username \
            else None
        netloc = parts.hostname or ""
        netloc = f"[{netloc}]" if ":" in netloc else netloc
        self._pool = httpcore.HTTPProxy(
            proxy_url=urlunsplit((parts.scheme, f"{netloc}:{parts.port}" if parts.port
                                  else netloc, parts.path, "", "")),
            proxy_auth=auth,
            ssl_context=ssl.create_default_context(),
            proxy_ssl_context=(ssl.create_default_context()
                               if urlsplit(proxy).scheme.lower() == "https" else None),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=backend,
        )


class Fetcher:
    """One shared HTTP client; thread-safe; per-host concurrency limited."""

    def __init__(self, *, policy: AddressPolicy, user_agent: str, timeout: float,
                 connect_timeout: float, max_redirects: int = 5, per_host: int = 2,
                 max_connections: int = 32, resolver: Resolver = system_resolver,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 transport: httpx.BaseTransport | None = None) -> None:
        """``transport``: what carries the requests, instead of the guarded connection pools
        (a seam for tests of the logic above the network: validators, redirects, Retry-After,
        caps; the address guard is then the transport's business)."""
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_redirects = max_redirects
        self.per_host = per_host
        self.policy = policy
        self.resolver = resolver
        self.clock = clock  # for Retry-After dates
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._hosts_lock = threading.Lock()
        self._transport = transport
        # Direct connections are spread over several pools by host: httpcore looks at every
        # connection of a pool for each request, under one lock, which at a few dozen
        # connections and threads cost more than the requests themselves. Each pool may open
        # as many connections as there are requests at once (``max_connections``), so slow
        # hosts in one pool never make another host wait; each keeps only its share idle.
        shards = max(1, max_connections // POOL_SHARD)
        self._clients = [self._make_client(user_agent, max_connections, None,
                                           -(-max_connections // shards))
                         for _ in range(shards)]
        self._proxy_env = urllib.request.getproxies_environment()
        self._proxied = {scheme: self._make_client(user_agent, max_connections, proxy)
                         for scheme, proxy in _proxies(self._proxy_env).items()}

    def _make_client(self, user_agent: str, max_connections: int, proxy: str | None,
                     max_keepalive: int | None = None) -> httpx.Client:
        return httpx.Client(
            transport=self._transport or _GuardedTransport(self.policy, self.resolver,
                                                           max_connections, proxy,
                                                           max_keepalive),
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for client in self._proxied.values():
            client.close()

    def _client_for(self, url: str) -> httpx.Client:
        """The direct client, or the proxy's after checking the target ourselves: the proxy
        connects to it, so our connect-time check cannot see that hop."""
        parts = urlsplit(url)
        client = self._proxied.get(parts.scheme.lower())
        host = parts.hostname or ""
        if client is None or _bypassed(host, self._proxy_env):
            return self._clients[zlib.crc32(host.encode("utf-8", "replace")) % len(self._clients)]
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as e:
            raise FetchError(f"connection failed: cannot resolve {host}: {e}") from e
        self.policy.check(host, port, addresses)
        return client

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        with self._hosts_lock:
            sem = self._hosts.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with sem:
            yield

    def get(self, url: str, *, max_bytes: int, etag: str | None = None,
            last_modified: str | None = None, accept: str = "*/*") -> Fetched | _NotModified:
        """The body at ``url`` after at most ``max_redirects`` hops. The deadline counts the
        time spent on the network, all hops together; waiting for a free slot on a busy host
        does not count (every slot holder is itself bounded by its own deadline)."""
        budget = self.timeout
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _hop in range(self.max_redirects + 1):
            try:
                check_scheme(url)
            except ValueError as e:  # an unparseable URL or redirect target
                raise FetchError(f"invalid URL: {str(e)[:200]}") from e
            with self._host_slot(url):
                started = time.monotonic()
                try:
                    result = self._one(url, headers, max_bytes, started + budget)
                finally:
                    budget -= time.monotonic() - started
            if isinstance(result, str):  # a redirect
                url = result
                continue
            return result
        raise FetchError(f"more than {self.max_redirects} redirects")

    def _one(self, url: str, headers: dict[str, str], max_bytes: int,
             deadline: float) -> Fetched | _NotModified | str:
        for attempt in (1, 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(f"deadline of {self.timeout:g}s passed")
            timeout = httpx.Timeout(remaining, connect=min(self.connect_timeout, remaining))
            try:
                client = self._client_for(url)
                request = client.build_request("GET", url, headers=headers, timeout=timeout)
            except (httpx.InvalidURL, ValueError) as e:
                raise FetchError(f"invalid URL: {e}") from e
            try:
                response = client.send(request, stream=True)
                break
            except httpx.TimeoutException as e:
                raise FetchError(f"timed out: {type(e).__name__}") from e
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                # A kept-alive connection the server closed meanwhile fails before any answer:
                # a GET is sent once more, on a new connection (as browsers do).
                if attempt == 2:
                    raise FetchError(f"connection failed: {_reason(e)}") from e
            except httpx.HTTPError as e:
                raise FetchError(f"connection failed: {_reason(e)}") from e
            except (httpx.InvalidURL, ValueError, UnicodeError) as e:
                # httpx reads a redirect's Location even when not following it
                raise FetchError(f"invalid URL or redirect target: {_reason(e)}") from e
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        watched = WATCHDOG.watch(shutdown_of(sock), deadline - time.monotonic()) \
            if sock is not None else None
        try:
            return self._handle(url, response, max_bytes, deadline)
        finally:
            WATCHDOG.cancel(watched)
            response.close()

    def _handle(self, url: str, response: httpx.Response, max_bytes: int,
                deadline: float) -> Fetched | _NotModified | str:
        status = response.status_code
        if status in REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise FetchError(f"HTTP {status} redirect without a Location")
            try:
                return str(urljoin(url, str(location).strip()))
            except ValueError as e:
                raise FetchError(f"HTTP {status} redirect to an invalid URL: {e}") from e
        if status == 304:
            return NOT_MODIFIED
        if status in (429, 503):
            wait = parse_retry_after(response.headers.get("retry-after"), self.clock())
            raise RetryLater(f"HTTP {status}: retry after {wait:.0f}s", wait)
        if status >= 400:
            raise FetchError(f"HTTP {status} {response.reason_phrase}".strip())
        if status != 200:
            raise FetchError(f"unexpected HTTP status {status}")
        encodings = [e.strip().lower() for e in
                     response.headers.get("content-encoding", "").split(",")
                     if e.strip() and e.strip().lower() != "identity"]
        if len(encodings) > MAX_ENCODINGS:
            raise TooLarge(f"refused {len(encodings)} stacked content encodings")
        unknown = [e for e in encodings if e not in ENCODINGS]
        if unknown:
            raise FetchError(f"unsupported content encoding {unknown[0][:40]!r}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"body of {int(declared)} bytes is over the cap of {max_bytes}")
        decoders = [_Decoder(name, max_bytes) for name in reversed(encodings)]
        body = self._read_capped(response, max_bytes, deadline, decoders)
        return Fetched(
            url=url, status=status, body=body,
            content_type=response.headers.get("content-type", "")[:200],
            etag=_validator(response.headers.get("etag"), 1024),
            last_modified=_validator(response.headers.get("last-modified"), 256),
        )

    def _read_capped(self, response: httpx.Response, max_bytes: int, deadline: float,
                     decoders: list[_Decoder]) -> bytes:
        """Read raw bytes, decode each layer under the cap, stop at the cap or the deadline.
        Nothing partial is returned: an over-long body is an error, not a truncated document."""
        chunks: list[bytes] = []
        size = 0
        try:
            for raw in response.iter_raw():
                chunk = raw
                for decoder in decoders:
                    chunk = decoder.feed(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"body over the cap of {max_bytes} bytes (decoded)")
                if time.monotonic() > deadline:
                    raise FetchError(f"deadline of {self.timeout:g}s passed while reading")
                chunks.append(chunk)
        except httpx.TimeoutException as e:
            raise FetchError(f"timed out while reading: {type(e).__name__}") from e
        except httpx.HTTPError as e:
            if time.monotonic() >= deadline:  # the watchdog cut the connection
                raise FetchError(f"deadline of {self.timeout:g}s passed while reading") from e
            raise FetchError(f"connection broke while reading: {_reason(e)}") from e
        for decoder in decoders:
            if not decoder.finished:
                raise FetchError(f"the {decoder.name} body ends early (truncated)")
        return b"".join(chunks)


def _validator(value: str | None, limit: int) -> str | None:
    """A validator header worth sending back: present, printable and not absurdly long."""
    if not value or len(value) > limit or not value.isprintable():
        return None
    return value


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:300]
