"""Storage faults: a database that never answers, stops answering, refuses writes, is damaged or
full. Each ends in one line naming the database, bounded in time, and loses nothing."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from monitor import config, ops
from monitor.ops import Liveness
from monitor.scheduler import Throttled, run_daemon
from monitor.service import Service
from monitor.store import db
from monitor.store.tables import Article, Digest
from tests.builders import page, rss
from tests.conftest import PG_ADMIN_URL, Mailbox, Route, Web, write_config
from tests.test_ops import get, wait_for

STORY = ("French forces completed their withdrawal under Operation Barkhane this week, ending a "
         "nine-year deployment across the Sahel. Officials in Bamako said the handover of the "
         "last base in Gao went ahead without incident, and convoys crossed into Niger.")


def monitor_cli(cfg: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI as a process; a command still running after ``timeout`` is a hang: it fails."""
    try:
        return subprocess.run([sys.executable, "-m", "monitor", "--config", str(cfg), *args],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"monitor {' '.join(args)} still running after {timeout}s: {e.stderr!r}")


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP listener that takes connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _config(tmp_path: Path, db_url: str, web: Web | None = None, **kw: Any) -> Path:
    feeds = [web.url("/rss.xml")] if web else ["http://127.0.0.1:9/rss.xml"]
    allowed = [f"127.0.0.1:{web.port}"] if web else []
    return write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds, smtp_port=None,
                        slack_url=None, allowed=allowed, seeds=False, **kw)


# -- a server that never answers, or stops answering --------------------------------------------


def test_status_against_a_silent_postgres_ends_in_one_line(tmp_path: Path,
                                                           silent_server: int) -> None:
    cfg = _config(tmp_path, f"postgresql+psycopg://monitor:s3cret@127.0.0.1:{silent_server}/db")
    started = time.monotonic()
    out = monitor_cli(cfg, "status")
    assert out.returncode == 1 and time.monotonic() - started < db_timeout() + 15
    line = one_line(out)
    assert line.startswith("error: cannot reach the database") and "timeout" in line
    assert "s3cret" not in out.stderr + out.stdout


def db_timeout() -> float:
    return float(db.PG_DEFAULTS["connect_timeout"])


def test_health_against_a_silent_postgres_keeps_the_urls_own_timeout(
        tmp_path: Path, silent_server: int) -> None:
    cfg = _config(tmp_path,
                  f"postgresql+psycopg://monitor@127.0.0.1:{silent_server}/db?connect_timeout=1")
    started = time.monotonic()
    out = monitor_cli(cfg, "health")
    assert out.returncode == 1 and time.monotonic() - started < db_timeout()
    assert "cannot reach the database" in one_line(out)


class FreezingProxy:
    """A TCP proxy to PostgreSQL that can stop passing bytes on (a server that hangs, a network
    that drops everything) and start again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.target)
                self.sockets += [client, server]
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.02)
                sink.sendall(data)

    def close(self) -> None:
        self.frozen.clear()
        for s in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                s.close()


@pytest.mark.postgres
def test_healthz_answers_503_in_seconds_when_postgres_stops_answering(pg_url: str) -> None:
    host_port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    proxy = FreezingProxy((host, int(port)))
    url = pg_url.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
    engine, sessions = db.open_database(url)
    liveness = Liveness(heartbeat=60, cycle_limit=600)
    liveness.beat()
    endpoint = ops.serve("127.0.0.1:0", sessions, liveness, lambda: [], 10)
    healthz = f"http://127.0.0.1:{endpoint.port}/healthz"
    try:
        assert get(healthz)[0] == 200
        proxy.frozen.set()
        for _ in range(2):  # the second while the first probe still waits
            started = time.monotonic()
            status, _type, body = get(healthz)
            assert status == 503 and b"not answering" in body
            assert time.monotonic() - started < 8
        proxy.frozen.clear()
        wait_for(lambda: get(healthz)[0] == 200, 15)
    finally:
        endpoint.close()
        proxy.close()
        engine.dispose()


# -- start-up ----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_three_instances_starting_at_once_on_an_empty_postgres_database(pg_url: str) -> None:
    code = "import sys; from monitor.store import db; db.open_database(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url], stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outcomes = [(p.wait(120), p.communicate()[1]) for p in procs]
    assert [rc for rc, _ in outcomes] == [0, 0, 0], outcomes
    engine, sessions = db.open_database(pg_url)
    with sessions() as s:
        assert len(s.execute(text("SELECT version_num FROM alembic_version")).all()) == 1
        assert s.scalar(select(Article.id).limit(1)) is None
    engine.dispose()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` refusing writes even to root (the immutable attribute), else by its mode."""
    chattr = shutil.which("chattr")
    immutable = chattr is not None and subprocess.run(
        [chattr, "+i", str(path)], capture_output=True).returncode == 0
    if not immutable:
        path.chmod(0o444)
    try:
        try:
            path.open("r+b").close()
        except OSError:
            pass
        else:
            pytest.skip("cannot make a file read-only here (root without chattr +i)")
        yield
    finally:
        if immutable:
            subprocess.run([str(chattr), "-i", str(path)], check=True)
        path.chmod(0o644)


def test_a_read_only_sqlite_database_is_refused_at_start_in_one_line(
        tmp_path: Path, web: Web) -> None:
    web.routes["/rss.xml"] = Route(200, rss([]), {"Content-Type": "application/rss+xml"})
    path = tmp_path / "data" / "monitor.db"
    cfg = _config(tmp_path, f"sqlite:///{path}", web, extra="[poll]\ntick = 1")
    assert monitor_cli(cfg, "once").returncode == 0
    with read_only(path):
        for command in (["once"], ["run"], ["digest", "--send"]):
            out = monitor_cli(cfg, *command, timeout=30)
            assert out.returncode == 1, (command, out.stderr)
            line = one_line(out)
            assert "takes no writes" in line and str(path) in line, line
        out = monitor_cli(cfg, "status")  # reading needs no writes
        assert out.returncode == 0 and "Feeds (1)" in out.stdout, out.stderr


@pytest.mark.parametrize("damage", ["garbage", "pages", "table"])
def test_a_damaged_sqlite_file_is_one_line_for_every_command(
        tmp_path: Path, web: Web, damage: str) -> None:
    web.routes["/rss.xml"] = Route(200, rss([("Barkhane ends", web.url("/a/1"), STORY)]),
                                   {"Content-Type": "application/rss+xml"})
    path = tmp_path / "data" / "monitor.db"
    cfg = _config(tmp_path, f"sqlite:///{path}", web, extra="[poll]\ntick = 1")
    if damage == "garbage":
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(64 * 1024))
    else:  # a real database: every page after the first, or one table's, overwritten
        assert monitor_cli(cfg, "once").returncode == 0
        with sqlite3.connect(path) as conn:
            size = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            root = conn.execute("SELECT rootpage FROM sqlite_master "
                                "WHERE name = 'articles'").fetchone()[0]
        conn.close()
        first, count = (1, pages - 1) if damage == "pages" else (root - 1, 1)
        with path.open("r+b") as f:
            f.seek(first * size)
            f.write(b"\xa5" * size * count)
    for command in ("status", "once", "run", "search"):
        args = [command, "Wagner"] if command == "search" else [command]
        out = monitor_cli(cfg, *args, timeout=30)
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        line = one_line(out)
        assert line.startswith("error:") and "damaged" in line, (command, line)


# -- a full disk -------------------------------------------------------------------------------


def test_throttled_logs_a_lasting_fault_once_per_period(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = Throttled(every=300, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "monitor"):
        for _ in range(200):  # a full disk for 200 ticks of 2 s
            throttle.failed("database or disk is full")
            now[0] += 2
        throttle.failed("a new fault")  # said at once
        throttle.answered()
        throttle.answered()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "cycle failed, retrying every tick: database or disk is full",
        "cycle failed, retrying every tick: database or disk is full (149 more failed cycles "
        "not logged)",
        "cycle failed, retrying every tick: a new fault (49 more failed cycles not logged)",
        "a cycle completed again after a storage fault",
    ]


def _fill_the_disk(svc: Service) -> None:
    """Every new connection sees a database that cannot grow: SQLite answers "database or
    disk is full" as it does when the disk is."""
    with svc.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())

    def cap(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    event.listen(svc.engine, "connect", cap)
    svc.engine.dispose()
    svc._disk_cap = cap  # type: ignore[attr-defined]


def _free_the_disk(svc: Service) -> None:
    event.remove(svc.engine, "connect", svc._disk_cap)  # type: ignore[attr-defined]
    svc.engine.dispose()


def distinct_story(seed: int) -> str:
    """A story about Barkhane that no other seed's story is a copy of."""
    words = ["convoy", "river", "market", "governor", "drought", "harvest", "bridge", "airport",
             "council", "school", "clinic", "border", "patrol", "election", "refinery", "court",
             "cattle", "festival", "radio", "museum", "tanker", "ferry", "quarry", "stadium"]
    rng = random.Random(seed)
    return "Barkhane: " + " ".join(" ".join(rng.sample(words, 8)) + "." for _ in range(6))


def stored_titles(svc: Service) -> list[str]:
    with svc.sessions() as s:
        return list(s.scalars(select(Article.title).where(Article.is_seed.is_(False))))


def mailed_titles(message: Any) -> list[str]:
    """The titles a digest lists (each once, though the text may name it more than once)."""
    return sorted(set(re.findall(r"^\d+\. (Barkhane ends \d+)",
                                 message.get_body(("plain",)).get_content(), re.M)))


def test_a_full_disk_logs_one_line_and_loses_nothing(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.poller.STORAGE_RETRY", timedelta(seconds=1))
    box, smtp_port = smtp
    items = [(f"Barkhane ends {i}", web.url(f"/a/{i}"), distinct_story(i)) for i in range(12)]
    for title, link, body in items:
        web.routes[link.split(str(web.port), 1)[1]] = Route(200, page(title, body),
                                                            {"Content-Type": "text/html"})
    web.routes["/rss.xml"] = Route(200, rss(items), {"Content-Type": "application/rss+xml"})
    path = tmp_path / "data" / "monitor.db"
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{path}",
                       feeds=[web.url("/rss.xml")], smtp_port=smtp_port, slack_url=None,
                       allowed=[f"127.0.0.1:{web.port}"], seeds=False,
                       extra="[poll]\ntick = 0.2\ninterval = 1")
    svc = Service(config.load(cfg))
    svc.prepare()
    _fill_the_disk(svc)
    stop = threading.Event()
    daemon = threading.Thread(target=run_daemon, args=(svc,), kwargs={"stop": stop})
    try:
        with caplog.at_level(logging.INFO, "monitor"):
            daemon.start()
            wait_for(lambda: web.hits("/rss.xml") >= 1, 20)
            wait_for(lambda: any(r.levelno >= logging.ERROR for r in caplog.records), 30)
            time.sleep(2)  # ten more ticks on a full disk
            failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(failures) == 1, [r.getMessage() for r in failures]
            assert "database or disk is full" in failures[0].getMessage()
            assert not [r for r in caplog.records if r.exc_info or "crashed" in r.getMessage()]
            _free_the_disk(svc)
            wait_for(lambda: len(stored_titles(svc)) >= len(items), 30)
    finally:
        stop.set()
        daemon.join(30)
    svc.cut_digests(force=True)  # what the next scheduled digest would send
    svc.relay()
    assert sorted(stored_titles(svc)) == sorted(t for t, _, _ in items)
    mailed = [t for m in box.messages for t in mailed_titles(m)]
    with svc.sessions() as s:
        sent = s.scalars(select(Digest).where(Digest.status == "sent")).all()
    svc.close()
    assert sorted(mailed) == sorted(t for t, _, _ in items) and len(box.messages) == len(sent)
    assert any("completed again" in r.getMessage() for r in caplog.records)
