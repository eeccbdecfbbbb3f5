"""kill -9 at the worst moments, then restart: nothing lost, nothing stored twice, at most the
one delivery that was in flight repeated (RELIABILITY.md, the process rows). The monitor runs as
a real OS process (``python -m monitor once``) against loopback servers; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from monitor.store.tables import Alert, Article, Digest, FeedEntry
from tests.builders import page, rss
from tests.conftest import ROOT, Mailbox, Route, Web, write_config
from tests.test_end_to_end import COUNCIL, LOREM

RELEASE = threading.Event()
ENTERED = threading.Event()


@pytest.fixture(autouse=True)
def _events() -> Iterator[None]:
    RELEASE.clear()
    ENTERED.clear()
    yield
    RELEASE.set()


def hang(h: BaseHTTPRequestHandler) -> None:
    ENTERED.set()
    RELEASE.wait(30)


def start(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})


def run(cfg: Path, *args: str) -> str:
    proc = start(cfg, *args)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def kill_when(proc: subprocess.Popen[bytes], event: threading.Event,
              until: Callable[[], bool] = lambda: True) -> None:
    """SIGKILL the process once ``event`` is set and ``until()`` holds (entries are processed
    concurrently: another may still be on its way when one of them hangs)."""
    reached = event.wait(60)
    deadline = time.monotonic() + 30
    while reached and not until() and time.monotonic() < deadline:
        time.sleep(0.02)
    reached = reached and until()
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=10)[0].decode()
    assert reached, f"the monitor never reached the point to kill it at:\n{out[-3000:]}"


def counts(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            out = {m.__tablename__: int(conn.scalar(select(func.count()).select_from(m)) or 0)
                   for m in (Article, FeedEntry, Alert, Digest)}
            out["sent"] = int(conn.scalar(text("SELECT count(*) FROM digests WHERE status = "
                                               "'sent'")) or 0)
            return out
    finally:
        engine.dispose()


@pytest.fixture
def newsroom(web: Web) -> Web:
    web.routes["/a/1"] = Route(200, page("Wagner in Gao", "Wagner Group fighters reached Gao. "
                                         + LOREM), {"Content-Type": "text/html"})
    web.routes["/a/2"] = Route(200, page("Barkhane ends", "France ended Operation Barkhane. "
                                         + COUNCIL * 2), {"Content-Type": "text/html"})
    web.routes["/rss.xml"] = Route(200, rss([("Wagner in Gao", web.url("/a/1"), "x"),
                                             ("Barkhane ends", web.url("/a/2"), "y")]))
    return web


def config(tmp_path: Path, db_url: str, web: Web, smtp_port: int | None,
           slack_url: str | None = None) -> Path:
    return write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss.xml")],
                        smtp_port=smtp_port, slack_url=slack_url, seeds=False,
                        allowed=[f"127.0.0.1:{web.port}"])


def test_killed_while_fetching_a_page_loses_nothing(
        tmp_path: Path, db_url: str, newsroom: Web, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    good = newsroom.routes["/a/2"]
    newsroom.routes["/a/2"] = Route(action=hang)  # after the feed and the first article
    cfg = config(tmp_path, db_url, newsroom, port)
    kill_when(start(cfg, "once"), ENTERED)
    assert box.messages == []

    newsroom.routes["/a/2"] = good
    run(cfg, "once")
    run(cfg, "once")
    assert counts(db_url) == {"articles": 2, "entries": 2, "alerts": 2, "digests": 1, "sent": 1}
    assert len(box.messages) == 1
    body = box.messages[0].get_body(("plain",))
    assert body is not None
    assert "Wagner in Gao" in body.get_content() and "Barkhane ends" in body.get_content()


def test_killed_between_send_and_record_repeats_only_that_mail(
        tmp_path: Path, db_url: str, newsroom: Web, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    box.hold = True  # the server takes the mail and does not answer: kill the sender now
    cfg = config(tmp_path, db_url, newsroom, port)
    kill_when(start(cfg, "once"), box.received)
    box.hold = False
    assert len(box.messages) == 1

    out = run(cfg, "once")
    assert "released 1 leases" in out
    run(cfg, "digest", "--send")
    assert counts(db_url) == {"articles": 2, "entries": 2, "alerts": 2, "digests": 1, "sent": 1}
    assert len(box.messages) == 2  # the one in flight, once more: the same Message-ID
    assert box.messages[0]["Message-ID"] == box.messages[1]["Message-ID"]


def test_killed_before_smtp_answers_data_never_loses_the_digest(
        tmp_path: Path, db_url: str, newsroom: Web, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    box.refuse = None
    cfg = config(tmp_path, db_url, newsroom, port)
    newsroom.routes["/a/2"] = Route(action=hang)
    # the second page hangs; the first article is stored and matched
    kill_when(start(cfg, "once"), ENTERED, lambda: counts(db_url)["articles"] == 1)
    newsroom.routes["/a/2"] = Route(200, page("Barkhane ends", "Operation Barkhane. " + COUNCIL),
                                    {"Content-Type": "text/html"})
    run(cfg, "digest", "--send")  # what was stored goes out now
    run(cfg, "once")  # the rest is fetched and goes in the next digest
    run(cfg, "digest", "--send")
    subjects = [m["Subject"] for m in box.messages]
    assert len(box.messages) == 2, subjects
    titles = [re.findall(r"(?m)^\d+\. (.+?)\r?$", str(m.get_body(("plain",)).get_content()))  # type: ignore[union-attr]
              for m in box.messages]
    assert sorted(t for ts in titles for t in ts) == ["Barkhane ends", "Wagner in Gao"]


def test_killed_between_slack_parts_posts_each_part_once_but_the_one_in_flight(
        tmp_path: Path, db_url: str, web: Web, slack: Web) -> None:
    words = (LOREM + COUNCIL).replace(",", "").replace(".", "").split()
    rng = random.Random(7)
    items = [(f"Wagner report {i}", f"https://news.example/{i}",
              "Wagner " + " ".join(rng.choice(words) for _ in range(40))) for i in range(100)]
    web.routes["/rss.xml"] = Route(200, rss(items))
    posted: list[int] = []

    def second_part(h: BaseHTTPRequestHandler) -> None:  # (the server has read the body)
        posted.append(1)
        if len(posted) == 2:
            ENTERED.set()
            RELEASE.wait(30)
            return
        h.send_response(200)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")

    slack.routes["/hook"] = Route(action=second_part)
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss.xml")],
                       smtp_port=None, slack_url=slack.url("/hook"), seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False})
    kill_when(start(cfg, "once"), ENTERED)
    slack.routes["/hook"] = Route(200, b"ok")
    run(cfg, "digest", "--send")
    every = [json.dumps(p) for p in slack.posts("/hook")]  # before and after the kill
    assert len(posted) == 2 and len(every) == 4
    assert "(1/3)" in every[0] and "(2/3)" in every[1]  # part 2 was in flight at the kill
    assert "(2/3)" in every[2] and "(3/3)" in every[3]  # after the restart: 2 again, then 3
    assert counts(db_url)["sent"] == 1
