"""Watching the daemon from outside the scheduler: liveness, systemd notifications, and the HTTP
endpoint (/healthz, /metrics, an Atom feed per watchlist).

APScheduler 3.x can die silently (apscheduler#1083), so liveness is not "the process is up":
a heartbeat job in the scheduler stamps ``Liveness`` every few seconds, and each cycle stamps its
start and end. The daemon is live while the heartbeat is fresh and no cycle has run for longer
than its limit. Only then does the notifier send WATCHDOG=1 and /healthz answer 200.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from monitor import __version__
from monitor.atom import render_atom
from monitor.desk.auth import Gate, local_path, loopback_host
from monitor.desk.pages import HEADERS, Desk, Response
from monitor.errors import MonitorError
from monitor.metrics import REGISTRY
from monitor.store import status as status_store

if TYPE_CHECKING:
    from monitor.trending import Trend

log = logging.getLogger("monitor")



class Liveness:
    """Heartbeat of the scheduler and progress of cycles; ``problem`` says what is wrong."""

    def __init__(self, *, heartbeat: float, cycle_limit: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat = heartbeat
        self.cycle_limit = cycle_limit
        self.clock = clock
        self._beat: float | None = None
        self._cycle_started: float | None = None
        self.last_cycle_end: datetime | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._beat = self.clock()

    def cycle_started(self) -> None:
        with self._lock:
            self._cycle_started = self.clock()

    def cycle_ended(self) -> None:
        with self._lock:
            self._cycle_started = None
            self.last_cycle_end = datetime.now(UTC)

    def problem(self) -> str | None:
        with self._lock:
            now = self.clock()
            if self._beat is None:
                return "the scheduler has not started"
            if now - self._beat > 3 * self.heartbeat:
                return f"the scheduler has not ticked for {now - self._beat:.0f}s"
            if self._cycle_started is not None and now - self._cycle_started > self.cycle_limit:
                return f"a cycle has been running for {now - self._cycle_started:.0f}s"
            return None


class SystemdNotifier:
    """sd_notify(3) over $NOTIFY_SOCKET; does nothing when systemd did not ask."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None
        self._stop = threading.Event()

    def send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as e:
            log.warning("systemd notification %r not sent: %s", message, e)

    def run_watchdog(self, liveness: Liveness) -> None:
        """Every half watchdog interval: WATCHDOG=1 while live; silence (and a log line, and
        systemd's restart) when not."""
        if self.watchdog is None or not self.address:
            return
        def loop() -> None:
            reported = None
            while not self._stop.wait(self.watchdog / 2):  # type: ignore[operator]
                problem = liveness.problem()
                if problem is None:
                    self.send("WATCHDOG=1")
                elif problem != reported:
                    log.error("watchdog: not live (%s); systemd will restart the daemon",
                              problem)
                reported = problem
        threading.Thread(target=loop, name="watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


class _Totals(Collector):
    """Stored totals, read at scrape time (so they hold across restarts and instances)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.sessions() as s:
            t = status_store.totals(s)
        feeds, failing, originals, copies, matches, digests = (
            t.feeds, t.failing, t.originals, t.copies, t.matches, t.digests)
        g = GaugeMetricFamily("monitor_feeds", "Active feeds, and those failing now.",
                              labels=["state"])
        g.add_metric(["active"], feeds)
        g.add_metric(["failing"], failing)
        yield g
        g = GaugeMetricFamily("monitor_articles", "Stored articles (seeds apart).",
                              labels=["kind"])
        g.add_metric(["original"], originals)
        g.add_metric(["duplicate"], copies)
        yield g
        g = GaugeMetricFamily("monitor_matches", "Stored matches.", labels=["watchlist"])
        for watchlist, count in matches:
            g.add_metric([watchlist], count)
        yield g
        g = GaugeMetricFamily("monitor_digests", "Digests by status (queued, sending, sent, "
                              "failed).", labels=["watchlist", "channel", "status"])
        for watchlist, channel, status, count in digests:
            g.add_metric([watchlist, channel, status], count)
        yield g


class _Trends(Collector):
    """Each watchlist entity's mentions in the spike window, its usual count and its score, read
    at scrape time (``trending.current``), for a Grafana panel of rates."""

    def __init__(self, sessions: sessionmaker[Session],
                 trends: Callable[[Session], list[Trend]]) -> None:
        self.sessions, self.trends = sessions, trends

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.sessions() as s:
            found = self.trends(s)
        families: list[tuple[str, str, Callable[[Trend], float]]] = [
            ("monitor_entity_mentions", "Mentions (original articles) in the spike window.",
             lambda t: t.verdict.count),
            ("monitor_entity_usual", "The usual count of such a window (the baseline).",
             lambda t: t.verdict.expected),
            ("monitor_entity_score", "Surprise score of the window's count (spike at "
             "spikes.threshold).", lambda t: t.verdict.score),
        ]
        for name, help_text, value in families:
            g = GaugeMetricFamily(name, help_text, labels=["watchlist", "entity"])
            for t in found:
                g.add_metric([t.watchlist, t.entity], value(t))
            yield g


@dataclass
class Endpoint:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DatabaseProbe:
    """``SELECT 1`` with a deadline of its own, so /healthz answers (503) when the database does
    not: the query runs in a thread, and while one is still waiting no other is started."""

    def __init__(self, sessions: sessionmaker[Session], timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._running: tuple[float, threading.Event, list[str]] | None = None

    def check(self) -> str:
        """"ok", or why not, within ``timeout`` seconds."""
        with self._lock:
            if self._running is None:
                done, answer = threading.Event(), ["ok"]
                self._running = (self.clock(), done, answer)
                threading.Thread(target=self._run, args=(done, answer), name="db-probe",
                                 daemon=True).start()
            started, done, answer = self._running
        if not done.wait(self.timeout):
            return f"not answering (waited {self.clock() - started:.0f}s for SELECT 1)"
        return answer[0]

    def _run(self, done: threading.Event, answer: list[str]) -> None:
        try:
            with self.sessions() as s:
                status_store.ping(s)
        except Exception as e:  # any failure means "unreachable"; the reason is shown
            answer[0] = f"unreachable: {str(e).strip().splitlines()[0][:200]}" if str(e).strip() \
                else f"unreachable: {type(e).__name__}"
        finally:
            with self._lock:
                self._running = None
            done.set()


def serve(listen: str, sessions: sessionmaker[Session], liveness: Liveness,
          watchlists: Callable[[], list[str]], atom_items: int = 50,
          trends: Callable[[Session], list[Trend]] | None = None, desk: Desk | None = None,
          token: Callable[[], str] = lambda: "") -> Endpoint:
    """Start the endpoint on ``host:port`` in a thread: /healthz, /metrics, the Atom feeds and
    the web desk (``desk``), all but /healthz behind ``token()`` when there is one."""
    registry = CollectorRegistry()
    registry.register(_Totals(sessions))
    if trends is not None:
        registry.register(_Trends(sessions, trends))

    class Handler(BaseHTTPRequestHandler):
        server_version = f"monitor/{__version__}"
        timeout = 10  # an idle or slow client lets go of its thread

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

        def _send(self, status: int, body: bytes, content_type: str,
                  headers: Iterable[tuple[str, str]] = ()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers or (("Cache-Control", "no-store"),
                                           *HEADERS[:2]):  # the CSP and nosniff on all
                if "\r" in value or "\n" in value:
                    raise ValueError(f"header {name} would split the response")
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _page(self, page: Response) -> None:
            self._send(page.status, page.body, page.content_type, [*HEADERS, *page.headers])

        def _refuse(self, path: str, target: str) -> None:
            """Not logged in: a browser goes to the login page, a client gets 401."""
            if desk is not None and "text/html" in (self.headers.get("Accept") or "") \
                    and not path.startswith(("/metrics", "/feeds/")):
                self._send(303, b"", "text/plain", [*HEADERS, (
                    "Location", "/login?" + urlencode({"next": target}))])
            else:
                self._send(401, b"a token is needed (Authorization: Bearer <token>)\n",
                           "text/plain; charset=utf-8",
                           [("WWW-Authenticate", 'Bearer realm="monitor"'),
                            ("Cache-Control", "no-store")])

        def do_POST(self) -> None:
            try:
                self._post()
            except (BrokenPipeError, ConnectionResetError):
                return
            except Exception as e:  # a login must never take the daemon down
                log.warning("http POST failed: %s", str(e).splitlines()[0][:200])
                self._send(500, b"internal error\n", "text/plain; charset=utf-8")

        def _post(self) -> None:
            path = urlsplit(self.path).path
            if path != "/login" or desk is None:
                self._send(405, b"the desk is read-only\n", "text/plain; charset=utf-8")
                return
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit() or int(length) > 4096:
                self._send(413, b"too large\n", "text/plain; charset=utf-8")
                return
            form = parse_qs(self.rfile.read(int(length)).decode("utf-8", "replace"),
                            max_num_fields=10)
            gate = Gate(token())
            target = local_path((form.get("next") or ["/"])[0])
            if gate.checks((form.get("token") or [""])[0]):
                self._send(303, b"", "text/plain", [*HEADERS, ("Location", target),
                                                    ("Set-Cookie", gate.cookie())])
            else:
                log.warning("desk: a login with a wrong token from %s", self.client_address[0])
                self._page(desk.login_page(target, failed=True))

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            try:
                if desk is not None and not token() and \
                        not loopback_host(self.headers.get("Host") or "localhost"):
                    self._send(421, b"this desk answers to loopback names only "
                                    b"(set http.token to serve others)\n",
                               "text/plain; charset=utf-8")
                    return
                if not Gate(token()).admits(path, {h: self.headers.get(h) or ""
                                                  for h in ("Authorization", "Cookie")}):
                    self._refuse(path, local_path(self.path))
                    return
                try:
                    params = {k: v[0] for k, v in
                              parse_qs(parts.query, max_num_fields=20).items()}
                except ValueError:  # more fields than any page takes
                    self._send(400, b"too many query parameters\n", "text/plain; charset=utf-8")
                    return
                if path == "/login" and desk is not None:
                    self._page(desk.login_page(local_path(params.get("next", "/"))))
                elif path == "/healthz":
                    self._healthz()
                elif path == "/metrics":
                    body = generate_latest(REGISTRY) + generate_latest(registry)
                    self._send(200, body, CONTENT_TYPE_LATEST)
                elif path.startswith("/feeds/") and path.endswith(".atom"):
                    name = unquote(path[len("/feeds/"):-len(".atom")])
                    if name not in watchlists():
                        self._send(404, b"no such watchlist\n", "text/plain; charset=utf-8")
                    else:
                        self._send(200, atom(sessions, name, self.headers.get("Host", ""),
                                             atom_items),
                                   "application/atom+xml; charset=utf-8")
                elif desk is not None and (page := desk.get(path, params)) is not None:
                    self._page(page)
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
            except (BrokenPipeError, ConnectionResetError):
                return  # the client went away (a browser dropping a request it no longer needs)
            except Exception as e:  # a scrape or a page must never take the daemon down
                log.warning("http %s failed: %s", path, str(e).splitlines()[0][:200])
                self._send(500, b"internal error\n", "text/plain; charset=utf-8")

        def _healthz(self) -> None:
            problem = liveness.problem()
            database = probe.check()
            ok = problem is None and database == "ok"
            body = {"status": "ok" if ok else "failing", "scheduler": problem or "ticking",
                    "database": database,
                    "last_cycle_end": liveness.last_cycle_end.isoformat()
                    if liveness.last_cycle_end else None}
            self._send(200 if ok else 503, (json.dumps(body) + "\n").encode(),
                       "application/json")

    probe = DatabaseProbe(sessions)
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = Server((host, int(port)), Handler)
    except OSError as e:
        raise MonitorError(f"http.listen {listen}: {e.strerror or e}") from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log.info("http endpoint on %s:%d (%s/healthz, /metrics, /feeds/<watchlist>.atom)%s",
             server.server_address[0], server.server_address[1],
             "the web desk at /, " if desk is not None else "",
             "; a token is needed" if token() else "")
    return Endpoint(server, thread)


def atom(sessions: sessionmaker[Session], watchlist: str, host: str, limit: int) -> bytes:
    """The watchlist's most recent matches as an Atom feed: alerts as a feed."""
    with sessions() as s:
        rows = status_store.recent_matches(s, watchlist, limit)
        titles = status_store.story_titles(
            s, sorted({a.story_id for a, _ in rows if a.story_id is not None}))
    return render_atom(watchlist, rows, host, titles)
