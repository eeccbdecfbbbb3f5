"""RELIABILITY.md, the network and document rows, against real loopback servers.

Each test names the row it covers. Tests that go through storage run on SQLite and PostgreSQL
(``db_url``). Names other than IP literals are answered by an injected resolver, so nothing here
ever asks a real DNS server or reaches an outside address; refused addresses are refused before
any connection is made.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import resource
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import func, select

from monitor import config, health
from monitor.deadline import parse_retry_after
from monitor.errors import BlockedAddress, FeedError, FetchError, RetryLater, TooLarge
from monitor.feeds import MAX_ENTRIES, MAX_TITLE, parse, trim_entries
from monitor.fetch import NOT_MODIFIED, Fetched, Fetcher
from monitor.guard import AddressPolicy
from monitor.service import Service
from monitor.store.tables import Alert, Article, Feed, FeedEntry
from tests import builders
from tests.conftest import Clock, Mailbox, Route, Web, free_port, shared_corpus, write_config

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WAGNER = ("Russian mercenaries of the Wagner Group arrived in Bamako this week, officials in the "
          "Malian capital said, as France reduces its Barkhane force in the north.")


def resolver(host: str, port: int) -> list[str]:
    """What getaddrinfo answers for IP literals (legacy IPv4 spellings included) and localhost,
    without asking DNS; *.invalid fails like NXDOMAIN; any other name answers a documentation
    address (192.0.2.1), which the guard refuses as not public."""
    bare = host.strip("[]")
    try:
        socket.inet_pton(socket.AF_INET6, bare)
        return [bare]
    except OSError:
        pass
    try:
        return [socket.inet_ntoa(socket.inet_aton(bare))]  # "2130706433", "0x7f.1", "127.1"
    except OSError:
        pass
    if bare.rstrip(".").lower() == "localhost":
        return ["127.0.0.1", "::1"]
    if host.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ["192.0.2.1"]


def rss(items: list[dict[str, str]], title: str = "Wire", extra: str = "") -> bytes:
    return builders.rss(items, title=title, extra=extra, date=None)


Make = Callable[..., Service]


@pytest.fixture
def make_service(tmp_path: Path, web: Web) -> Iterator[Callable[..., Service]]:
    """Services on the injected resolver (and a clock when given), closed after the test;
    keyword arguments other than the named ones set [fetch] keys."""
    made: list[Service] = []

    def make(db_url: str, feeds: list[str], *, smtp_port: int | None = None,
             clock: Clock | None = None, extra: str = "", allowed: list[str] | None = None,
             **fetch: Any) -> Service:
        path = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds,
                            smtp_port=smtp_port, slack_url=None, seeds=False,
                            allowed=[f"127.0.0.1:{web.port}", *(allowed or [])], extra=extra,
                            fetch={"timeout": 2, **fetch})
        svc = Service(config.load(path), clock=clock or Clock(), resolver=resolver)
        made.append(svc)
        svc.prepare()
        return svc

    yield make
    for svc in made:
        svc.close()


def feed_row(svc: Service, url: str) -> Feed:
    with svc.sessions() as session:
        row = session.scalars(select(Feed).where(Feed.url == url)).one()
        session.expunge(row)
        return row


def count(svc: Service, model: Any, *where: Any) -> int:
    with svc.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- hostile answers -------------------------------------------------------------------------

STOP = threading.Event()


@pytest.fixture(autouse=True)
def _release_stalled_handlers() -> Iterator[None]:
    STOP.clear()
    yield
    STOP.set()


def stall(h: BaseHTTPRequestHandler) -> None:
    """Accept and never answer."""
    STOP.wait(30)


def drip(h: BaseHTTPRequestHandler) -> None:
    """Answer, then send the body one byte at a time, never finishing in time."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                  b"Content-Length: 100000\r\n\r\n")
    h.wfile.flush()
    for byte in b"<rss>" * 20000:
        if STOP.wait(0.25):
            return
        h.wfile.write(bytes([byte]))
        h.wfile.flush()


def endless_chunked(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"<item>" + b"x" * 65536 + b"</item>"
    while not STOP.is_set():
        h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


def endless_until_close(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n")
    while not STOP.is_set():
        h.wfile.write(b"<rss>" * 10000)


def short_body(h: BaseHTTPRequestHandler) -> None:
    """Promise 5,000 bytes, send 100 and hang up."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"<" * 100)


def huge_length(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\n" + b"<rss>" * 100)


def gzip_bomb(size: int, layers: int = 1) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    body = b"".join(comp.compress(block) for _ in range(size >> 20)) + comp.flush()
    for _ in range(layers - 1):
        body = gzip.compress(body)
    return body


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
                  + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.encode()
                             for i in range(1, 10)).replace(b"&lol0;", b"&lol;")
                  + b']><rss version="2.0"><channel><title>&lol9;</title></channel></rss>')
BIG_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "' + b"A" * 100_000 + b'">]>'
              b'<rss version="2.0"><channel><title>x</title>'
              + b"<item><title>&big;</title></item>" * 2000 + b"</channel></rss>")
XXE = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       b'<rss version="2.0"><channel><title>&xxe;</title></channel></rss>')
POISON_PAGE = (b"<html><body><article>" + b"<p>word word word word</p>" * 150_000
               + b"</article></body></html>")  # 3.9 MB; about 14 s of trafilatura here


# -- the network, the documents: all at once beside a normal feed -----------------------------


DEAD_PORT = free_port()  # nothing listens there


def hostile_url(web: Web, path: str) -> str:
    return {"/refused": f"http://127.0.0.1:{DEAD_PORT}/feed",
            "/dns": "http://feeds.nxdomain.invalid/rss"}.get(path) or web.url(path)


@pytest.fixture
def hostile_web(web: Web) -> Web:
    r = web.routes
    r["/stall"] = Route(action=stall)
    r["/drip"] = Route(action=drip)
    r["/endless"] = Route(action=endless_chunked)
    r["/endless-close"] = Route(action=endless_until_close)
    r["/huge-length"] = Route(action=huge_length)
    r["/short"] = Route(action=short_body)
    r["/bomb"] = Route(200, gzip_bomb(200 << 20), {"Content-Encoding": "gzip"})
    r["/bomb2"] = Route(200, gzip_bomb(64 << 20, layers=2), {"Content-Encoding": "gzip, gzip"})
    r["/stacked"] = Route(200, gzip.compress(gzip.compress(gzip.compress(b"<rss/>"))),
                          {"Content-Encoding": "gzip, gzip, gzip"})
    r["/loop"] = Route(302, b"", {"Location": "/loop"})
    r["/to-internal"] = Route(302, b"", {"Location": f"http://[::ffff:127.0.0.1]:{web.port}/x"})
    r["/to-metadata"] = Route(302, b"", {"Location": "http://169.254.169.254/latest/meta-data"})
    r["/to-file"] = Route(302, b"", {"Location": "file:///etc/passwd"})
    r["/x"] = Route(200, rss([{"title": "Wagner secret", "guid": "s"}]))
    r["/laughs"] = Route(200, BILLION_LAUGHS)
    r["/big-entity"] = Route(200, BIG_ENTITY)
    r["/xxe"] = Route(200, XXE)
    r["/html"] = Route(200, b"<html><body><p>Wagner</p></body></html>",
                       {"Content-Type": "text/html"})
    r["/json"] = Route(200, b'{"items": [{"title": "Wagner"}]}',
                       {"Content-Type": "application/json"})
    r["/empty"] = Route(200, b"")
    r["/truncated"] = Route(200, rss([{"title": "Wagner in Mali", "guid": "t"}])[:-30])
    r["/busy"] = Route(503, b"busy", {"Retry-After": "7200"})
    # the normal feed, with links that must never be fetched and pages that must not stop it
    r["/poison"] = Route(200, POISON_PAGE, {"Content-Type": "text/html"})
    r["/huge-page"] = Route(200, b"<html>" + b"<p>x</p>" * 1_000_000, {"Content-Type": "text/html"})
    links = {
        "js": "javascript:alert(document.cookie)", "file": "file:///etc/passwd",
        "data": "data:text/html,<script>alert(1)</script>", "ftp": "ftp://files.example/x",
        "meta": "http://169.254.169.254/latest/meta-data/", "lan": "http://10.1.2.3/",
        "poison": web.url("/poison"), "huge": web.url("/huge-page"),
    }
    places = ["Gao", "Kidal", "Mopti", "Timbuktu", "Sikasso", "Kayes", "Segou", "Menaka"]
    r["/normal"] = Route(200, rss([
        {"title": f"Wagner story {k}", "link": v, "guid": f"n-{k}",
         "text": f"Fighters of the Wagner Group were seen in {place} on day {i}, residents of "
                 f"{place} told the {k} desk."}
        for i, ((k, v), place) in enumerate(zip(links.items(), places, strict=True))],
        title="Normal Wire"), {"Content-Type": "application/rss+xml"})
    return web


HOSTILE = {  # path -> what the feed's stored error must say
    "/refused": "connection failed", "/dns": "cannot resolve", "/stall": "timed out",
    "/drip": "deadline", "/huge-length": "over the cap", "/endless": "cap",
    "/endless-close": "cap", "/short": "connection",
    "/bomb": "cap", "/bomb2": "cap", "/stacked": "3 stacked content encodings",
    "/loop": "more than 5 redirects", "/to-internal": "internal address",
    "/to-metadata": "internal address", "/to-file": "refused file",
    "/laughs": "declares XML entities", "/big-entity": "declares XML entities",
    "/xxe": "declares XML entities", "/html": "not a feed", "/json": "not a feed",
    "/empty": "empty body", "/truncated": "ends early", "/busy": "HTTP 503: retry after 7200s",
}


def test_hostile_feeds_fail_alone_and_the_normal_feed_alerts(
        tmp_path: Path, db_url: str, hostile_web: Web, smtp: tuple[Mailbox, int],
        make_service: Make) -> None:
    """Every network and document row at once: each hostile feed fails with its own one-line
    reason and backs off; the normal feed's alerts go out; the cycle ends in bounded time and
    memory; nothing partial is stored; refused addresses are never requested."""
    web = hostile_web
    box, port = smtp
    clock = Clock()
    extra = ("[documents]\ntimeout = 3\n[poll]\ninterval = '15m'\n")
    svc = make_service(db_url, [hostile_url(web, p) for p in [*HOSTILE, "/normal"]],
                  smtp_port=port, clock=clock, extra=extra, feed_max_bytes=2_000_000,
                  allowed=[f"127.0.0.1:{DEAD_PORT}"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    results = svc.cycle(ignore_schedule=True)
    elapsed = time.monotonic() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    by_url = {r.url: r for r in results}
    for path, reason in HOSTILE.items():
        result = by_url[hostile_url(web, path)]
        assert result.status == "failed" and reason in result.error, (path, result.error)
        assert "\n" not in result.error
        row = feed_row(svc, hostile_url(web, path))
        assert row.error_count == 1 and reason in (row.last_error or "")
        assert row.next_check_at is not None and row.next_check_at > NOW + timedelta(minutes=5)
    busy = feed_row(svc, web.url("/busy"))
    assert busy.next_check_at is not None and busy.next_check_at >= NOW + timedelta(hours=2)

    normal = by_url[web.url("/normal")]
    assert normal.status == "ok" and normal.new == 8 and normal.alerts == 8
    assert web.hits("/x") == 0  # the internal redirect target was never requested
    assert count(svc, Article) == 8  # nothing from any hostile feed, nothing partial
    with svc.sessions() as session:
        stored = {a.guid: a for a in session.scalars(select(Article))}
    for key in ("js", "file", "data", "ftp", "meta", "lan", "poison", "huge"):
        article = stored[f"n-{key}"]
        assert article.text_source == "summary" and "Wagner Group" in article.text
        assert article.duplicate_of_id is None
    assert "not an http(s) URL" in (stored["n-js"].fetch_error or "")
    assert "internal address" in (stored["n-meta"].fetch_error or "")
    assert "extraction stopped after 3s" in (stored["n-poison"].fetch_error or "")
    assert "cap" in (stored["n-huge"].fetch_error or "")

    assert len(box.messages) == 1
    text = box.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # each article once (the eight alike reports are one story, under one heading)
    assert len(re.findall(r"^\d+\. Wagner story", text, re.M)) == 8
    assert "(no web link)" in text
    assert "javascript:" not in text and "file:" not in text  # only http(s) links in digests
    assert elapsed < 30, f"cycle took {elapsed:.1f}s"
    assert grown_mib < 150, f"the daemon grew by {grown_mib:.0f} MiB"


# -- the network, row by row -----------------------------------------------------------------


OPEN: list[Fetcher] = []


@pytest.fixture(autouse=True)
def _close_fetchers() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def fetcher(*, allowed: list[str] | None = None, timeout: float = 5.0,
            connect_timeout: float = 2.0, resolve: Any = resolver) -> Fetcher:
    f = Fetcher(policy=AddressPolicy.from_settings(False, allowed or []), user_agent="test/1",
                timeout=timeout, connect_timeout=connect_timeout, resolver=resolve)
    OPEN.append(f)
    return f


def _raw_server(script: Callable[[int, socket.socket], object]) -> int:
    """A loopback server that hands its n-th connection to ``script(n, conn)``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for n in range(4):
            conn, _ = listener.accept()
            with conn:
                script(n, conn)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def _read_request(conn: socket.socket, requests: list[bytes]) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        data += chunk
    requests.append(data)
    return True


def test_a_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_new_one() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
    requests: list[bytes] = []

    def script(n: int, conn: socket.socket) -> None:
        if n == 0:  # answers one request, reads the next and hangs up without a word
            _read_request(conn, requests)
            conn.sendall(answer)
            _read_request(conn, requests)
        elif _read_request(conn, requests):
            conn.sendall(answer)

    port = _raw_server(script)
    f = fetcher(allowed=[f"127.0.0.1:{port}"])
    for _ in range(2):
        got = f.get(f"http://127.0.0.1:{port}/", max_bytes=100)
        assert isinstance(got, Fetched) and got.body == b"ok"
    assert len(requests) == 3  # the second GET went out twice: once on each connection


def test_a_server_that_always_hangs_up_is_a_reason_after_one_retry() -> None:
    requests: list[bytes] = []
    port = _raw_server(lambda _n, conn: _read_request(conn, requests))
    with pytest.raises(FetchError, match=r"connection failed: .*disconnected"):
        fetcher(allowed=[f"127.0.0.1:{port}"]).get(f"http://127.0.0.1:{port}/", max_bytes=100)
    assert len(requests) == 2


def test_connection_refused_and_dns_failure_are_reasons() -> None:
    port = free_port()
    with pytest.raises(FetchError, match="connection failed"):
        fetcher(allowed=[f"127.0.0.1:{port}"]).get(f"http://127.0.0.1:{port}/", max_bytes=100)
    with pytest.raises(FetchError, match="cannot resolve"):
        fetcher().get("http://nowhere.invalid/feed", max_bytes=100)


@pytest.mark.parametrize("action", [stall, drip])
def test_a_total_deadline_ends_stalled_and_dripping_servers(web: Web, action: Any) -> None:
    web.routes["/slow"] = Route(action=action)
    f = fetcher(allowed=[f"127.0.0.1:{web.port}"], timeout=1.0)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out|deadline"):
        f.get(web.url("/slow"), max_bytes=1_000_000)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("path,action", [("/chunked", endless_chunked),
                                         ("/close", endless_until_close)])
def test_endless_bodies_stop_at_the_cap(web: Web, path: str, action: Any) -> None:
    web.routes[path] = Route(action=action)
    with pytest.raises(TooLarge, match="cap of 1000000"):
        fetcher(allowed=[f"127.0.0.1:{web.port}"]).get(web.url(path), max_bytes=1_000_000)


def test_a_lying_content_length_is_an_error_not_a_short_document(web: Web) -> None:
    web.routes["/short"] = Route(action=short_body)
    with pytest.raises(FetchError, match="connection"):
        fetcher(allowed=[f"127.0.0.1:{web.port}"]).get(web.url("/short"), max_bytes=100_000)


def test_compression_bombs_cost_at_most_the_cap(web: Web) -> None:
    import tracemalloc

    web.routes["/bomb"] = Route(200, gzip_bomb(256 << 20), {"Content-Encoding": "gzip"})
    web.routes["/deflate"] = Route(200, zlib.compress(b"\0" * (64 << 20)),
                                   {"Content-Encoding": "deflate"})
    web.routes["/ok2"] = Route(200, gzip.compress(gzip.compress(b"<rss>fine</rss>")),
                               {"Content-Encoding": "gzip, gzip"})
    web.routes["/br"] = Route(200, b"\x1b\x03\x00", {"Content-Encoding": "br"})
    f = fetcher(allowed=[f"127.0.0.1:{web.port}"])
    tracemalloc.start()
    try:
        for path in ("/bomb", "/deflate"):
            with pytest.raises(TooLarge):
                f.get(web.url(path), max_bytes=2_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12_000_000, f"peak {peak} bytes for a 2 MB cap"
    got = f.get(web.url("/ok2"), max_bytes=1000)
    assert isinstance(got, Fetched) and got.body == b"<rss>fine</rss>"
    with pytest.raises(FetchError, match="unsupported content encoding 'br'"):
        f.get(web.url("/br"), max_bytes=1000)


def test_failing_for_hours_backs_off_capped_never_dropped_then_resets(
        tmp_path: Path, db_url: str, web: Web, make_service: Make) -> None:
    """5xx for a day and a half (injected clock), then 200."""
    good = rss([{"title": "Wagner back", "guid": "b", "text": WAGNER, "link": "ftp://x/1"}])
    web.routes["/flaky"] = [Route(500, b"oops")] * 40 + [Route(200, good)]
    clock = Clock()
    svc = make_service(db_url, [web.url("/flaky")], clock=clock,
                  extra="[poll]\ninterval = '15m'\nmax_backoff = '2h'\n")
    delays = []
    while True:
        results = svc.poll()
        assert len(results) == 1
        row = feed_row(svc, web.url("/flaky"))
        assert row.active and row.next_check_at is not None
        if results[0].status == "ok":
            break
        delays.append((row.next_check_at - clock.now).total_seconds())
        clock.now = row.next_check_at
    assert len(delays) == 40 and clock.now - NOW > timedelta(hours=36)
    assert 0.8 * 900 <= delays[0] <= 1.2 * 900
    assert 0.8 * 1800 <= delays[1] <= 1.2 * 1800
    assert max(delays) <= 7200 and min(delays[5:]) >= 0.8 * 7200
    assert len({round(d) for d in delays[5:]}) > 5  # jittered, not in lockstep
    assert row.error_count == 0 and row.last_success_at == clock.now
    assert row.next_check_at <= clock.now + timedelta(seconds=1.05 * 900)
    assert count(svc, Article) == 1


@pytest.mark.parametrize("header,expected", [
    ("120", 120), ("0", 1), ("-5", 60), ("soon", 60), ("99999999999", 86400),
    ("Mon, 02 Nov 2026 10:00:00 GMT", 3600), ("Sun, 01 Nov 2026 10:00:00 GMT", 1),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 86400), ("x" * 10_000, 60),
])
def test_retry_after_is_honoured_within_bounds(header: str, expected: float) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_429_with_retry_after_delays_the_next_check(
        tmp_path: Path, db_url: str, web: Web, make_service: Make) -> None:
    web.routes["/limited"] = Route(429, b"slow down", {"Retry-After": "Mon, 02 Nov 2026 "
                                                                        "12:00:00 GMT"})
    svc = make_service(db_url, [web.url("/limited")])
    result = svc.poll()[0]
    assert result.status == "failed" and "HTTP 429" in result.error
    row = feed_row(svc, web.url("/limited"))
    assert row.next_check_at == NOW + timedelta(hours=3)
    with pytest.raises(RetryLater):
        fetcher(allowed=[f"127.0.0.1:{web.port}"]).get(web.url("/limited"), max_bytes=100)


def test_conditional_get_sends_validators_and_gets_not_modified(web: Web) -> None:
    web.routes["/feed"] = Route(200, b"<rss/>", {"ETag": '"e1"', "Last-Modified": "x" * 300})
    f = fetcher(allowed=[f"127.0.0.1:{web.port}"])
    got = f.get(web.url("/feed"), max_bytes=1000)
    assert isinstance(got, Fetched) and got.etag == '"e1"'
    assert got.last_modified is None  # absurd validators are not kept
    assert f.get(web.url("/feed"), max_bytes=1000, etag='"e1"') is NOT_MODIFIED
    assert web.requests[0][2]["User-Agent"] == "test/1"


def test_redirect_chains_stop_after_five_hops(web: Web) -> None:
    for i in range(7):
        web.routes[f"/hop{i}"] = Route(302, b"", {"Location": f"/hop{i + 1}"})
    web.routes["/hop7"] = Route(200, b"<rss/>")
    f = fetcher(allowed=[f"127.0.0.1:{web.port}"])
    assert isinstance(f.get(web.url("/hop2"), max_bytes=100), Fetched)  # five hops: fine
    with pytest.raises(FetchError, match="more than 5 redirects"):
        f.get(web.url("/hop1"), max_bytes=100)  # six
    assert web.hits("/hop7") == 1


@pytest.mark.parametrize("spelling", ["127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1",
                                      "127.1", "[::ffff:127.0.0.1]", "[::1]", "[::ffff:7f00:1]",
                                      "localhost.", "0.0.0.0"])
def test_internal_spellings_are_refused_and_nothing_is_requested(web: Web, spelling: str) -> None:
    web.routes["/feed"] = Route(200, b"secret")
    web.routes["/hop"] = Route(302, b"", {"Location": f"http://{spelling}:{web.port}/feed"})

    f = fetcher(timeout=3, connect_timeout=1)
    with pytest.raises((BlockedAddress, FetchError)):
        f.get(f"http://{spelling}:{web.port}/feed", max_bytes=100)
    # allowed_hosts opens exactly 127.0.0.1:port, and a redirect from there to another
    # spelling of the same address is still refused on its own name
    g = fetcher(allowed=[f"127.0.0.1:{web.port}"], timeout=3, connect_timeout=1)
    if spelling != "127.0.0.1":
        with pytest.raises((BlockedAddress, FetchError)):
            g.get(web.url("/hop"), max_bytes=100)
    assert web.hits("/feed") == 0


def test_dns_rebinding_public_then_internal_gets_nothing_through(
        web: Web, loopback_only: list[str]) -> None:
    web.routes["/feed"] = Route(200, b"secret")
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["127.0.0.1"])

    f = fetcher(timeout=2, connect_timeout=0.5, resolve=rebinding)
    with pytest.raises(FetchError, match="connection failed"):  # the checked public address
        f.get(f"http://rebind.example:{web.port}/feed", max_bytes=1000)
    assert loopback_only == ["93.184.216.34"]  # (the test fence stopped it leaving the box)
    loopback_only.clear()
    for _ in range(2):  # rebound to loopback: refused before any connection
        with pytest.raises(BlockedAddress):
            f.get(f"http://rebind.example:{web.port}/feed", max_bytes=1000)
    assert web.requests == [] and loopback_only == []


class Proxy:
    """A loopback forward proxy that answers http:// requests itself, as if from the origin."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.auth: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.requests.append(self.path)
                if self.headers.get("Proxy-Authorization"):
                    proxy.auth.append(self.headers["Proxy-Authorization"])
                body = rss([{"title": "via proxy", "guid": "p"}])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_CONNECT(self) -> None:
                proxy.requests.append(f"CONNECT {self.path}")
                self.send_response(502)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    p = Proxy()
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{p.port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{p.port}")
    yield p
    p.close()


def public(host: str, port: int) -> list[str]:
    return {"news.example": ["93.184.216.34"]}.get(host) or resolver(host, port)


def test_proxy_from_the_environment_is_used_and_the_guard_still_applies(proxy: Proxy) -> None:
    f = fetcher(allowed=[f"127.0.0.1:{proxy.port}"], timeout=3, connect_timeout=1,
                resolve=public)
    got = f.get("http://news.example/rss", max_bytes=10_000)
    assert isinstance(got, Fetched) and b"via proxy" in got.body
    assert proxy.requests == ["http://news.example/rss"]
    # a target that resolves internal is refused before the proxy hears of it
    for url in ("http://intranet.example/", "http://10.0.0.5/", "http://169.254.169.254/",
                "https://192.168.1.1/"):
        with pytest.raises(BlockedAddress):
            f.get(url, max_bytes=100)
    assert proxy.requests == ["http://news.example/rss"]


def test_a_proxy_on_an_internal_address_needs_allowed_hosts(proxy: Proxy) -> None:
    f = fetcher(timeout=3, connect_timeout=1, resolve=public)
    with pytest.raises(FetchError, match="internal address"):
        f.get("http://news.example/rss", max_bytes=10_000)
    assert proxy.requests == []


def test_no_proxy_hosts_go_direct(proxy: Proxy, web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    web.routes["/feed"] = Route(200, b"direct")
    got = fetcher(allowed=[f"127.0.0.1:{web.port}"]).get(web.url("/feed"), max_bytes=100)
    assert isinstance(got, Fetched) and got.body == b"direct" and proxy.requests == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/rss",
                                 "data:text/xml,<rss/>", "javascript:alert(1)", "/relative"])
def test_non_http_urls_in_config_are_rejected_by_check(
        tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    path = tmp_path / "monitor.toml"
    path.write_text(f'[[feeds]]\nurl = "{url}"\n')
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "feeds[0].url" in err[0] and "only http and https" in err[0]
    with pytest.raises(BlockedAddress):
        fetcher().get(url, max_bytes=100)


def test_a_self_signed_certificate_is_an_error_never_retried_insecurely() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    handshakes: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"<rss/>")

    class TLSServer(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            sock, addr = self.socket.accept()
            handshakes.append(1)
            return context.wrap_socket(sock, server_side=True,
                                       do_handshake_on_connect=False), addr

    server = TLSServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with pytest.raises(FetchError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            fetcher(allowed=[f"127.0.0.1:{port}"]).get(f"https://127.0.0.1:{port}/",
                                                       max_bytes=100)
    finally:
        server.shutdown()
        server.server_close()
    assert len(handshakes) == 1


def test_not_modified_and_servers_ignoring_validators_never_realert(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int], make_service: Make,
        ) -> None:
    box, port = smtp
    items = [{"title": "Wagner in Mali", "guid": "w1", "text": WAGNER, "link": "ftp://x/1"}]
    web.routes["/etag"] = Route(200, rss(items), {"ETag": '"v1"'})
    web.routes["/dumb"] = [Route(200, rss(items, title="Dumb")),
                           Route(200, rss(items, title="Dumb")),
                           Route(200, rss(items, title="Dumb", extra="<ttl>5</ttl>"))]
    clock = Clock()
    svc = make_service(db_url, [web.url("/etag"), web.url("/dumb")], smtp_port=port,
                  clock=clock)
    statuses = []
    for _ in range(3):
        statuses.append(sorted(r.status for r in svc.cycle(ignore_schedule=True)))
        clock.now += timedelta(hours=2)
    assert statuses == [["ok", "ok"], ["not-modified", "unchanged"], ["not-modified", "ok"]]
    assert web.hits("/etag") == 3 and web.hits("/dumb") == 3
    assert sum(1 for _m, p, h, _b in web.requests if p == "/etag"
               and h.get("If-None-Match") == '"v1"') == 2
    # the same story in both feeds: one original, one copy, one alert, one mail
    assert count(svc, Article) == 2 and count(svc, Alert) == 1 and len(box.messages) == 1


# -- the documents, row by row ---------------------------------------------------------------


@pytest.mark.parametrize("body", [BILLION_LAUGHS, BIG_ENTITY, XXE,
                                  BILLION_LAUGHS.decode().encode("utf-16"),
                                  BILLION_LAUGHS.decode().encode("utf-32"),
                                  BILLION_LAUGHS.replace(b"ENTITY", b"entity")])
def test_entity_declarations_are_refused_before_feedparser(body: bytes) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(FeedError, match="declares XML entities"):
            parse(body, "http://x.example/", NOW)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(body) + 1_000_000


@pytest.mark.parametrize("body,reason", [
    (b"", "empty body"), (b"   \n", "empty body"),
    (b"<html><body><p>hello</p></body></html>", "not a feed"),
    (b'{"version": "https://jsonfeed.org/version/1", "items": []}', "not a feed"),
    (rss([{"title": "a", "guid": "1"}])[:-20], "ends early"),
    (b"\x00\x01\x02garbage", "not a feed"),
])
def test_documents_that_are_not_feeds_get_one_clear_error(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError, match=reason) as info:
        parse(body, "http://x.example/", NOW)
    assert "\n" not in str(info.value)


def test_wrong_charsets_and_control_characters_store_alike(
        tmp_path: Path, db_url: str, web: Web, make_service: Make) -> None:
    raw = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
           "<item><title>Wagner\x00 in\x07 Mali \u202eevil\u200b \x1b[31m &#xD800; &#0;"
           "</title><guid>g1\x01</guid><description>CAFE Wagner BYTE</description></item>"
           "</channel></rss>").encode().replace(b"CAFE", b"Caf\xe9").replace(b"BYTE", b"\xff\xfe")
    latin = rss([{"title": "Goïta and Wagner", "guid": "g2", "text": "Bamako"}]).replace(
        b'encoding="utf-8"', b'encoding="iso-8859-1"').decode().encode("latin-1")
    web.routes["/bad"] = Route(200, raw, {"Content-Type": "application/rss+xml; charset=utf-8"})
    web.routes["/latin"] = Route(200, latin, {"Content-Type": "text/xml; charset=utf-8"})
    svc = make_service(db_url, [web.url("/bad"), web.url("/latin")])
    results = svc.poll()
    assert sorted(r.status for r in results) == ["ok", "ok"]
    with svc.sessions() as session:
        articles = {a.guid.rsplit("/", 1)[-1]: a for a in session.scalars(select(Article))}
    assert set(articles) == {"g1", "g2"}
    bad = articles["g1"]
    assert bad.title.startswith("Wagner in Mali evil")
    for field_ in (bad.title, bad.text, bad.guid):
        assert not any(ord(c) < 32 and c not in "\n\t" for c in field_)
        assert "\u202e" not in field_ and "\x00" not in field_
    assert "Goïta" in articles["g2"].title or "Go" in articles["g2"].title


def test_huge_feeds_titles_and_absurd_dates_are_capped_and_clamped(
        tmp_path: Path, db_url: str, web: Web, make_service: Make) -> None:
    items = [{"title": f"Item {i}", "guid": f"g{i}", "link": f"ftp://x/{i}",
              "date": "Mon, 01 Jan 2024 00:00:00 GMT"} for i in range(100_000)]
    items[0] = {"title": "T" * 10_000_000, "guid": "big", "date": "Fri, 31 Dec 9999 00:00:00 GMT"}
    items[1] = {"title": "Year zero", "guid": "zero", "date": "Sat, 01 Jan 0000 00:00:00 GMT"}
    first = rss(items)
    web.routes["/huge"] = [Route(200, first),
                           Route(200, rss([{"title": "Newest", "guid": "new"}, *items]))]
    clock = Clock()
    svc = make_service(db_url, [web.url("/huge")], clock=clock,
                  feed_max_bytes=40_000_000, fetch_pages=False)
    one = svc.poll(ignore_schedule=True)[0]
    clock.now += timedelta(hours=1)
    two = svc.poll(ignore_schedule=True)[0]
    assert one.status == "ok" and one.new == MAX_ENTRIES
    assert two.status == "ok" and two.new == 1  # the new one on top; nothing else "new"
    with svc.sessions() as session:
        big = session.scalars(select(Article).where(Article.guid == "big")).one()
        zero = session.scalars(select(Article).where(Article.guid == "zero")).one()
    assert len(big.title) == MAX_TITLE
    assert big.published_at is not None and big.published_at <= NOW + timedelta(days=1)
    assert zero.published_at is None or zero.published_at.year >= 1990
    assert count(svc, FeedEntry) == MAX_ENTRIES + 1


def test_trim_keeps_the_first_entries_and_the_document_closing() -> None:
    doc = rss([{"title": f"t{i}", "guid": f"g{i}"} for i in range(5)])
    trimmed = trim_entries(doc, 2)
    assert trimmed.endswith(b"</channel></rss>") and trimmed.count(b"<item>") == 2
    parsed = parse(trimmed, "http://x.example/", NOW)
    assert [e.guid for e in parsed.entries] == ["g0", "g1"]
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>a</title>'
            + b"".join(b"<entry><id>urn:e%d</id><title>x</title></entry>" % i for i in range(4))
            + b"</feed>")
    assert [e.guid for e in parse(trim_entries(atom, 3), "http://x/", NOW).entries] == \
        ["urn:e0", "urn:e1", "urn:e2"]


def test_guid_oddities_give_one_article_per_identity_and_one_alert(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int], make_service: Make,
        ) -> None:
    box, port = smtp
    story = {"title": "Wagner in Timbuktu", "text": WAGNER}
    web.routes["/a"] = [
        Route(200, rss([
            {**story, "link": "ftp://x/no-guid"},                            # missing GUID
            {**story, "guid": "dup", "link": "ftp://x/dup"},                 # duplicate GUID
            {**story, "guid": "dup", "link": "ftp://x/dup"},
            {**story, "guid": "reused", "link": "http://a.example/one"},     # reused GUID...
            {**story, "guid": "reused", "link": "http://a.example/two"},     # ...other link
            {**story, "guid": "edit", "link": "ftp://x/edit"},
        ])),
        Route(200, rss([{"title": "Wagner in Timbuktu (updated)", "text": WAGNER + " More.",
                         "guid": "edit", "link": "ftp://x/edit"}])),  # an edited entry
    ]
    web.routes["/b"] = Route(200, rss([{**story, "guid": "other-feed",
                                        "link": "http://a.example/one?utm_source=rss"}]))
    clock = Clock()
    svc = make_service(db_url, [web.url("/a"), web.url("/b")], smtp_port=port,
                  clock=clock, fetch_pages=False)
    svc.cycle(ignore_schedule=True)
    clock.now += timedelta(hours=2)
    svc.cycle(ignore_schedule=True)
    # no-guid, dup, reused/one, reused/two, edit: five identities; /b's entry is reused/one
    assert count(svc, FeedEntry) == 6
    with svc.sessions() as session:
        originals = session.scalars(select(Article).where(Article.duplicate_of_id.is_(None)))
        assert len(list(originals)) == 1  # the same text everywhere: one original, copies
    assert count(svc, Alert) == 1 and len(box.messages) == 1


def test_pathological_pages_are_bounded_and_the_alert_comes_from_the_summary(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int], make_service: Make,
        ) -> None:
    box, port = smtp
    web.routes["/poison"] = Route(200, POISON_PAGE, {"Content-Type": "text/html"})
    web.routes["/fifty"] = Route(200, b"<html>" + b"<p>Wagner</p>" * 4_000_000,
                                 {"Content-Type": "text/html"})
    web.routes["/rss"] = Route(200, rss([
        {"title": "Poisoned page", "link": web.url("/poison"), "guid": "p", "text": WAGNER},
        {"title": "Fifty megabytes", "link": web.url("/fifty"), "guid": "f",
         "text": WAGNER + " Again."},
    ]))
    svc = make_service(db_url, [web.url("/rss")], smtp_port=port,
                  extra="[documents]\ntimeout = 2\n")
    started = time.monotonic()
    result = svc.cycle(ignore_schedule=True)[0]
    assert time.monotonic() - started < 20
    assert result.status == "ok" and result.new == 2
    with svc.sessions() as session:
        stored = {a.guid: a for a in session.scalars(select(Article))}
    assert "extraction stopped after 2s" in (stored["p"].fetch_error or "")
    assert "cap" in (stored["f"].fetch_error or "")
    assert all(a.text_source == "summary" for a in stored.values())
    assert len(box.messages) == 1


def test_a_feed_that_goes_quiet_against_its_cadence_is_reported(
        tmp_path: Path, db_url: str, web: Web, caplog: pytest.LogCaptureFixture,
        make_service: Make) -> None:
    hourly = [{"title": f"Bulletin {i}", "guid": f"h{i}", "link": f"ftp://x/{i}",
               "date": (NOW - timedelta(hours=i)).strftime("%a, %d %b %Y %H:%M:%S GMT")}
              for i in range(10)]
    web.routes["/hourly"] = Route(200, rss(hourly))
    clock = Clock()
    svc = make_service(db_url, [web.url("/hourly")], clock=clock)
    svc.poll(ignore_schedule=True)
    row = feed_row(svc, web.url("/hourly"))
    assert row.cadence_seconds == 3600 and row.silent_since is None
    clock.now += timedelta(hours=6)
    svc.poll(ignore_schedule=True)
    assert feed_row(svc, web.url("/hourly")).silent_since is None  # quiet, not unusual
    clock.now += timedelta(hours=10)
    with caplog.at_level("WARNING", logger="monitor"):
        svc.poll(ignore_schedule=True)
    row = feed_row(svc, web.url("/hourly"))
    assert row.silent_since == clock.now
    assert any("status=silent" in r.getMessage() for r in caplog.records)
    assert health.silence(now=clock.now, cadence_seconds=row.cadence_seconds,
                          newest_entry_at=row.newest_entry_at,
                          last_new_entry_at=row.last_new_entry_at,
                          since=row.created_at) == timedelta(hours=16)


def test_status_shows_failing_silent_and_healthy_feeds(
        tmp_path: Path, web: Web, capsys: pytest.CaptureFixture[str], make_service: Make) -> None:
    from monitor.cli import main

    web.routes["/ok"] = Route(200, rss([{"title": "x", "guid": "1", "link": "ftp://x/1"}]))
    web.routes["/down"] = Route(500, b"no")
    db = f"sqlite:///{tmp_path / 'm.db'}"
    svc = make_service(db, [web.url("/ok"), web.url("/down")])
    svc.poll(ignore_schedule=True)
    assert main(["--config", str(tmp_path / "monitor.toml"), "status"]) == 0
    out = capsys.readouterr().out
    assert f"[FAILING x1 since {NOW:%Y-%m-%d %H:%M} UTC] {web.url('/down')}" in out
    assert "last error" in out and "HTTP 500" in out
    assert "] " + web.url("/ok") in out


# -- the corpus: every odd and broken feed, served over HTTP ---------------------------------


def test_ingestion_over_every_corpus_feed(
        tmp_path: Path, db_url: str, web: Web, make_service: Make) -> None:
    root = shared_corpus("feeds")
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and p.name not in ("README.md", "LICENSE"))
    assert len(files) > 2000
    for path in files:
        web.routes["/" + str(path.relative_to(root))] = Route(
            200, path.read_bytes(), {"Content-Type": "application/xml"})
    urls = [web.url("/" + str(p.relative_to(root))) for p in files]
    svc = make_service(db_url, urls, workers=8)
    started = time.monotonic()
    results = svc.poll(ignore_schedule=True)
    elapsed = time.monotonic() - started
    assert len(results) == len(files)
    crashed = [r for r in results if "internal error" in r.error]
    assert crashed == []
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        assert r.error and "\n" not in r.error and len(r.error) < 400
    assert len(failed) < 60, [f"{r.url}: {r.error}" for r in failed][:20]
    assert elapsed < 300
    print(json.dumps({"feeds": len(files), "failed": len(failed), "seconds": round(elapsed, 1),
                      "articles": count(svc, Article)}))



def test_a_document_over_the_worker_memory_limit_fails_alone() -> None:
    from monitor.work import DocumentWorkers, ExtractFailed

    # a deadline well past the time a loaded machine needs to fill 96 MiB: the memory limit,
    # not the deadline, is what must stop this document
    workers = DocumentWorkers(processes=1, timeout=120, memory_mib=96)
    try:
        with pytest.raises(ExtractFailed, match=r"memory limit|process died"):
            workers.extract(POISON_PAGE, "http://x.example/")
        # the pool replaced the worker and goes on
        assert "Wagner" in workers.extract(
            b"<html><body><article><p>" + WAGNER.encode() * 3 + b"</p></article></body></html>",
            "http://x.example/")
    finally:
        workers.close()


# -- found in review: each a way one input could stop more than itself ------------------------


def test_a_worker_killed_while_idle_does_not_stop_parsing() -> None:
    import os
    import signal as signals

    from monitor.work import DocumentWorkers

    workers = DocumentWorkers(processes=1, timeout=10, memory_mib=0)
    try:
        doc = rss([{"title": "Wagner", "guid": "1"}])
        assert workers.parse(doc, "http://x.example/", NOW, "").entries
        pid = workers._run(os.getpid, ())
        os.kill(pid, signals.SIGKILL)
        time.sleep(0.5)  # let the pool notice
        for _ in range(3):
            assert workers.parse(doc, "http://x.example/", NOW, "").entries
    finally:
        workers.close()


def test_story_models_the_fork_server_failed_to_load_are_reported_as_the_workers_start(
        tmp_path: Path) -> None:
    """The fork server skips a preload that fails to import without a word; the daemon must
    say so at start, not once per article. A broken sentencepiece wheel stands in here."""
    import subprocess
    import sys

    (tmp_path / "sentencepiece.py").write_text("raise ImportError('broken wheel')\n")
    script = (
        "import logging; logging.basicConfig(level=logging.WARNING)\n"
        "from monitor.work import DocumentWorkers\n"
        "w = DocumentWorkers(processes=1, timeout=60, memory_mib=0)\n"
        "print('ENTRIES', len(w.extract(b'<html><body><p>Wagner</p></body></html>', 'http://x/')))\n"
        "w.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ENTRIES" in done.stdout  # pages are still extracted
    errors = [line for line in done.stderr.splitlines() if "story models" in line]
    assert len(errors) == 1, done.stderr[-2000:]
    assert "ERROR" in errors[0] and "broken wheel" in errors[0]


def test_odd_headers_and_locations_are_fetch_errors(web: Web) -> None:
    web.routes["/sup"] = Route(429, b"", {"Retry-After": "\u00b2".encode("latin-1").decode(
        "latin-1")})
    web.routes["/bad-location"] = Route(302, b"", {"Location": "http://a]/"})
    f = fetcher(allowed=[f"127.0.0.1:{web.port}"])
    with pytest.raises(RetryLater):
        f.get(web.url("/sup"), max_bytes=100)
    with pytest.raises(FetchError, match="invalid URL"):
        f.get(web.url("/bad-location"), max_bytes=100)


def test_a_truncated_compressed_body_is_an_error(web: Web) -> None:
    whole = gzip.compress(b"<rss>" + b"x" * 20000 + b"</rss>")
    web.routes["/half"] = Route(200, whole[: len(whole) // 2], {"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="ends early"):
        fetcher(allowed=[f"127.0.0.1:{web.port}"]).get(web.url("/half"), max_bytes=1_000_000)


def test_the_deadline_holds_against_a_byte_just_before_each_timeout(web: Web) -> None:
    def late_byte(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        h.wfile.flush()
        if STOP.wait(0.8):
            return
        h.wfile.write(b"<")
        h.wfile.flush()
        STOP.wait(30)

    web.routes["/late"] = Route(action=late_byte)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"deadline|timed out"):
        fetcher(allowed=[f"127.0.0.1:{web.port}"], timeout=1.0).get(web.url("/late"),
                                                                     max_bytes=1000)
    assert time.monotonic() - started < 1.6


@pytest.mark.parametrize("body,content_type", [
    (b'<?xml version="1.0" encoding="utf-7"?><rss version="2.0"><channel><title>'
     b"+ADwAIQ-ENTITY</title></channel></rss>", ""),
    ('<rss version="2.0"><channel><title>x</title></channel></rss>'.encode("cp500"),
     "text/xml; charset=cp500"),
])
def test_encodings_that_hide_declarations_are_refused(body: bytes, content_type: str) -> None:
    with pytest.raises(FeedError, match="character encoding"):
        parse(body, "http://x.example/", NOW, content_type)


def test_proxy_credentials_from_the_environment_are_sent(
        proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://user:s%40cret@127.0.0.1:{proxy.port}")
    f = fetcher(allowed=[f"127.0.0.1:{proxy.port}"], resolve=public)
    assert isinstance(f.get("http://news.example/rss", max_bytes=10_000), Fetched)
    assert proxy.auth == ["Basic " + __import__("base64").b64encode(b"user:s@cret").decode()]


def test_a_tiny_feed_budget_still_makes_progress_and_ends_the_cycle(
        tmp_path: Path, db_url: str, web: Web, make_service: Make) -> None:
    web.routes["/many"] = Route(200, rss([{"title": f"Item {i}", "guid": f"g{i}",
                                           "link": f"ftp://x/{i}"} for i in range(5)]))
    clock = Clock()
    svc = make_service(db_url, [web.url("/many")], clock=clock, feed_budget=0.000001,
                       fetch_pages=False)
    first = svc.poll()
    assert [(r.status, r.new, r.left) for r in first] == [("partial", 1, 4)]
    assert svc.poll() == []  # due again only at the next tick: this cycle is over
    done = 1
    while done < 5:
        clock.now += timedelta(seconds=30)
        done += sum(r.new for r in svc.poll())
    assert count(svc, Article) == 5


# -- found in review of the scale work ---------------------------------------------------------


def test_a_poll_polls_each_feed_once_even_if_it_falls_due_again_meanwhile(
        db_url: str, web: Web, make_service: Callable[..., Service]) -> None:
    clock = Clock()
    body = builders.rss([])

    def slow_feed(h: BaseHTTPRequestHandler) -> None:  # each fetch takes two minutes
        clock.now += timedelta(minutes=2)
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    feeds = [web.url(f"/due/{i}.xml") for i in range(4)]
    for i in range(4):
        web.routes[f"/due/{i}.xml"] = Route(action=slow_feed)
    svc = make_service(db_url, feeds, clock=clock, workers=1,
                       extra='[poll]\ninterval = "1m"\n')  # due again after one minute
    results = svc.poll()
    assert sorted(r.url for r in results) == sorted(feeds)
    fetched = [p for _m, p, _h, _b in web.requests if p.startswith("/due/")]
    assert sorted(fetched) == sorted(f"/due/{i}.xml" for i in range(4))


def test_feed_records_that_fail_to_be_written_stay_pending(tmp_path: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from monitor.store import db

    engine, sessions = db.open_database(f"sqlite:///{tmp_path}/x.db")
    try:
        batch = db.WriteBatch(sessions)
        batch.add(text("UPDATE no_such_table SET x = 1"))
        with pytest.raises(OperationalError):
            batch.flush()
        assert batch.pending == 1
    finally:
        engine.dispose()


def test_copy_candidates_take_only_the_newest_postings_of_a_common_shingle(
        db_url: str) -> None:
    from sqlalchemy import insert

    from monitor.store import articles, db
    from monitor.store.tables import Article, Shingle

    engine, sessions = db.open_database(db_url)
    try:
        now = datetime.now(UTC)
        cap = articles.POSTINGS_CAP
        with sessions.begin() as session:
            session.execute(insert(Article), [
                {"id": i, "title": "", "text": "", "text_source": "page", "created_at": now}
                for i in range(1, cap * 3 + 1)])
            common, rare, huge = 7, 11, -(2 ** 63)  # one shingle in every article
            session.execute(insert(Shingle), [{"hash": common, "article_id": i}
                                              for i in range(1, cap * 3 + 1)])
            session.execute(insert(Shingle), [{"hash": h, "article_id": 5}
                                              for h in (rare, huge)])
        with sessions() as session:
            found = articles.copy_candidates(session, [common, rare, huge], 1, limit=cap * 3)
        ids = {c.article_id: c.overlap for c in found}
        assert set(ids) == {5, *range(cap * 2 + 1, cap * 3 + 1)}  # the newest cap, and 5
        assert ids[5] == 2  # the rare and the 64-bit extreme shingles it shares
    finally:
        engine.dispose()


def test_one_lookup_finds_the_same_url_text_lead_and_shingles_above_a_watermark(
        db_url: str) -> None:
    """The copy decision's lookups in one statement: the canonical URL among every article,
    the rest only among those stored after ``after`` (and nothing read when there are none)."""
    from sqlalchemy import insert

    from monitor.store import articles, db
    from monitor.store.tables import Article, Shingle

    engine, sessions = db.open_database(db_url)
    try:
        now = datetime.now(UTC)
        with sessions.begin() as session:
            session.execute(insert(Article), [
                {"id": i, "title": "", "text": "", "text_source": "page", "created_at": now,
                 "canonical_url": f"http://a.example/{i}", "content_hash": f"text{i % 2}",
                 "lead_hash": "lead" if i > 1 else "other", "shingle_count": 10 + i}
                for i in range(1, 5)])
            session.execute(insert(Shingle), [{"hash": h, "article_id": i}
                                              for i in range(1, 5) for h in range(i)])

        def look(after: int, url: str = "http://a.example/2") -> articles.Found:
            with sessions() as session:
                return articles.look_up(session, canonical=url, content_hash="text1",
                                        lead_hash="lead", shingles=[0, 1, 2, 3, 99],
                                        min_overlap=2, after=after)

        every = look(0)
        assert every.same_url == 2 and every.same_text == 1 and every.same_lead == [2, 3, 4]
        assert [(c.article_id, c.overlap, c.size) for c in every.candidates] == [
            (4, 4, 14), (3, 3, 13), (2, 2, 12)]  # most shared first; 1 shares one
        since = look(2)
        assert since.same_url == 2  # whatever its id: the same URL is one article
        assert since.same_text == 3 and since.same_lead == [3, 4]
        assert [c.article_id for c in since.candidates] == [4, 3]
        assert look(4, "") == articles.Found(None, None, [], [])
    finally:
        engine.dispose()
