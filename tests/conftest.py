"""Real components on loopback: an HTTP server for feeds, pages and the Slack webhook, an SMTP
server (aiosmtpd), SQLite files and PostgreSQL schemas."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
# The loopback SMTP server's per-connection chatter is not what a failing test needs to show.
logging.getLogger("mail.log").setLevel(logging.WARNING)



def shared_corpus(*parts: str) -> Path:
    """A path under ``../shared/corpus``. Outside CI a test that needs it and does not find it
    skips, saying so; under ``CI=true`` (where the corpus is always beside the clone) it fails."""
    path = SHARED.joinpath("corpus", *parts)
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {path} is missing")
        pytest.skip(f"needs the shared corpus, not beside this clone: {path}")
    return path


PG_ADMIN_URL = os.environ.get("MONITOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_RAN: list[str] = []


class Clock:
    """An injected clock: tests move ``now`` instead of sleeping."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as e:  # any failure to connect means "not reachable"
        return str(e).splitlines()[0]


@pytest.fixture(scope="session")
def pg_available() -> None:
    problem = _pg_reachable()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but PostgreSQL is unreachable at {PG_ADMIN_URL}: {problem}")
    pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem}); "
                "start it or set MONITOR_TEST_PG")


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_available: None) -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    PG_RAN.append(request.node.nodeid)
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"
    return str(request.getfixturevalue("pg_url"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"PostgreSQL tests run: {len(set(PG_RAN))}")


# -- the network fence -----------------------------------------------------------------------

OUTSIDE: list[str] = []  # outside addresses something tried to connect to, refused
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _fenced(address: Any) -> bool:
    if not isinstance(address, tuple) or not address:
        return False  # unix sockets
    try:
        return not ipaddress.ip_address(str(address[0]).split("%", 1)[0]).is_loopback
    except ValueError:
        return True  # a name: Python code connecting by name is resolving outside our guard


def _connect(self: socket.socket, address: Any) -> None:
    if _fenced(address):
        OUTSIDE.append(str(address[0]))
        raise OSError(errno.ENETUNREACH, f"tests reach loopback only, not {address[0]}")
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    if _fenced(address):
        OUTSIDE.append(str(address[0]))
        return errno.ENETUNREACH
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every test runs fenced: a Python socket may connect to loopback only, and a test that
    tried anything else fails unless it expects it (and empties the list)."""
    monkeypatch.setattr(socket.socket, "connect", _connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _connect_ex)
    OUTSIDE.clear()
    yield OUTSIDE
    assert OUTSIDE == [], f"tried to reach outside addresses: {OUTSIDE}"


# -- HTTP on loopback ------------------------------------------------------------------------


@dataclass
class Route:
    """A canned answer; ``action`` instead takes over the socket (drip, stall, endless...)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: Callable[[BaseHTTPRequestHandler], None] | None = None


@dataclass
class Web:
    """A loopback HTTP server: set ``routes[path]``; every request is recorded."""

    host: str
    port: int
    routes: dict[str, Route | list[Route]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        return sum(1 for _m, p, _h, _b in self.requests if p == path)

    def posts(self, path: str) -> list[Any]:
        return [json.loads(b) for m, p, _h, b in self.requests if m == "POST" and p == path]


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (as the fetcher does at a cap or deadline) are normal here."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _serve(web: Web) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            web.requests.append((self.command, self.path, dict(self.headers), body))
            route = web.routes.get(self.path) or web.routes.get(self.path.split("?", 1)[0])
            if isinstance(route, list):  # a sequence of answers, the last one repeats
                route = route.pop(0) if len(route) > 1 else route[0]
            if route is None:
                route = Route(404, b"not found")
            if route.action is not None:
                with contextlib.suppress(OSError):  # the client went away, as it should
                    route.action(self)
                self.close_connection = True
                return
            etag = route.headers.get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(route.status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        do_GET = _answer
        do_POST = _answer

    server = _QuietServer((web.host, web.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def _running_web() -> Iterator[Web]:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    w = Web("127.0.0.1", port)
    server = _serve(w)
    try:
        yield w
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def web() -> Iterator[Web]:
    with _running_web() as w:
        yield w


@pytest.fixture
def slack() -> Iterator[Web]:
    """An HTTP endpoint standing in for Slack's incoming webhook at /hook."""
    with _running_web() as w:
        w.routes["/hook"] = Route(200, b"ok")
        yield w


# -- SMTP on loopback ------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []
        self.refuse: str | None = None  # e.g. "451 try later" or "550 no"
        self.hold = False  # keep the message but do not answer DATA (to kill the sender then)
        self.received = threading.Event()
        self.refuse_rcpt: set[str] = set()  # these recipients get "550 no such user"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse_rcpt:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        self.envelopes.append(envelope)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.received.set()
        while self.hold:
            await asyncio.sleep(0.05)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


# -- services --------------------------------------------------------------------------------


@pytest.fixture
def services() -> Iterator[Callable[..., Any]]:
    """``services(config_path, clock=None)``: a prepared Service on an injected clock, closed
    after the test."""
    from monitor import config
    from monitor.service import Service

    made: list[Service] = []

    def make(path: Path, clock: Clock | None = None) -> Service:
        svc = Service(config.load(path), clock=clock or Clock())
        made.append(svc)
        svc.prepare()
        return svc

    yield make
    for svc in made:
        svc.close()


# -- config ----------------------------------------------------------------------------------


def write_config(path: Path, *, db_url: str, feeds: list[str], smtp_port: int | None,
                 slack_url: str | None, allowed: list[str], seeds: bool = True,
                 extra: str = "", terms: tuple[str, ...] = ("Wagner", "Barkhane", "Takuba",
                                                            "MINUSMA"),
                 fetch: dict[str, Any] | None = None, watchlist: str = "") -> Path:
    """A config for tests; ``fetch`` adds keys to the [fetch] table, ``watchlist`` lines to the
    "sahel" watchlist, ``extra`` whole tables."""
    settings = {"allowed_hosts": allowed, "timeout": 10, **(fetch or {})}
    lines = [
        "[storage]", f'url = "{db_url}"',
        "[seeds]", f'paths = ["{ROOT / "seeds"}"]' if seeds else "paths = []",
        "[fetch]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
    ]
    for url in feeds:
        lines += ["[[feeds]]", f'url = "{url}"']
    channels = []
    if smtp_port:
        channels.append("email")
    if slack_url:
        channels.append("slack")
    lines += ["[[watchlists]]", 'name = "sahel"', f"terms = {json.dumps(list(terms))}",
              f"channels = {json.dumps(channels)}", watchlist]
    if smtp_port:
        lines += ["[channels.email]", 'host = "127.0.0.1"', f"port = {smtp_port}",
                  'tls = "none"', 'sender = "monitor@example.org"',
                  'recipients = ["analyst@example.org"]']
    if slack_url:
        lines += ["[channels.slack]", f'webhook_url = "{slack_url}"']
    path.write_text("\n".join(lines) + "\n" + extra)
    return path
