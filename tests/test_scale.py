"""Several instances on one PostgreSQL: three `monitor run` processes share 300 feeds through
leases; every article is stored once and every digest sent once, also after one of them is
killed with SIGKILL in the middle of a cycle (its leases are taken over)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy import text as sa_text

from monitor.store.tables import Alert, Article, Digest, Feed
from tests.builders import page, rss
from tests.conftest import ROOT, Mailbox, Route, Web, write_config

FEEDS = 300
SHARED = 10  # stories syndicated in many feeds: one article each


def slow(body: bytes, content_type: str, delay: float = 0.03) -> Callable[[Any], None]:
    """An answer after a little network latency, so a cycle lasts long enough to be cut."""
    def act(h: BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return act


def story(n: int) -> str:
    return (f"Report {n}: Russian mercenaries of the Wagner Group were seen in district {n} of "
            f"Gao on day {n % 28 + 1}, according to witness number {n * 7} interviewed by our "
            f"correspondent, who counted {n % 50 + 3} vehicles and {n % 13 + 2} aircraft. ") * 3


@pytest.mark.postgres
def test_three_instances_share_300_feeds_and_survive_a_sigkill(
        tmp_path: Path, pg_url: str, web: Web, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    for i in range(FEEDS):
        web.routes[f"/a/{i}"] = Route(action=slow(page(f"Wagner report {i}", story(i)),
                                                  "text/html; charset=utf-8"))
    for j in range(SHARED):
        web.routes[f"/s/{j}"] = Route(action=slow(page(f"Syndicated {j}", story(10_000 + j)),
                                                  "text/html; charset=utf-8"))
    for i in range(FEEDS):
        items = [(f"Wagner report {i}", web.url(f"/a/{i}"), "x"),
                 (f"Syndicated {i % SHARED}", web.url(f"/s/{i % SHARED}"), "y")]
        web.routes[f"/f/{i}.xml"] = Route(200, rss(items),
                                          {"Content-Type": "application/rss+xml"})
    cfg = write_config(tmp_path / "monitor.toml", db_url=pg_url,
                       feeds=[web.url(f"/f/{i}.xml") for i in range(FEEDS)], smtp_port=port,
                       slack_url=None, allowed=[f"127.0.0.1:{web.port}"], seeds=False,
                       fetch={"workers": 4}, watchlist="urgent = true")
    cfg.write_text(cfg.read_text() + '[poll]\ntick = "1s"\ninterval = "6h"\n')

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg), "run"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})

    logs: dict[int, list[str]] = {}

    def follow(proc: subprocess.Popen[bytes]) -> None:
        logs[proc.pid] = []
        threading.Thread(target=lambda: logs[proc.pid].extend(
            line.decode(errors="replace") for line in iter(proc.stdout.readline, b"")),  # type: ignore[union-attr]
            daemon=True).start()

    engine = create_engine(pg_url)

    def count(query: Any) -> int:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                tail = {pid: "".join([x for x in lines if "failed" in x][-10:] + lines[-15:])
                        for pid, lines in logs.items()}
                raise AssertionError(f"timed out waiting for {what}: {tail}")
            time.sleep(0.2)

    procs: list[subprocess.Popen[bytes]] = []
    try:
        # the first one creates the schema and the feeds; the others join it
        procs.append(start())
        follow(procs[0])
        wait_for(lambda: any("monitor running" in line for line in logs[procs[0].pid]), 60,
                 "the first instance")
        for _ in range(2):
            procs.append(start())
            follow(procs[-1])
        victim = procs[1]
        wait_for(lambda: any("monitor running" in line for line in logs[victim.pid]), 60,
                 "the second instance")
        wait_for(lambda: sum("feed=" in line for line in logs[victim.pid]) >= 3, 120,
                 "the second instance at work")
        victim.send_signal(signal.SIGKILL)  # in the middle of its cycle
        victim.wait(10)
        wait_for(lambda: count(select(func.count()).select_from(Feed)
                               .where(Feed.last_success_at.is_(None))) == 0, 240,
                 "every feed polled")
        wait_for(lambda: count(select(func.count()).select_from(Alert)
                               .where(Alert.digest_id.is_(None))) == 0
                 and count(select(func.count()).select_from(Digest)
                           .where(Digest.status != "sent")) == 0, 120,
                 "every digest sent")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
            if proc.stdout:
                proc.stdout.close()
        engine.dispose()
    for proc in procs:
        assert proc.returncode in (0, -signal.SIGKILL)
    killed_worked = [line for line in logs[victim.pid] if '"feed"' in line or "feed=" in line]

    # every article stored once: 300 own reports and the 10 syndicated stories
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        links = conn.execute(select(Article.link)).scalars().all()
    engine.dispose()
    assert len(links) == FEEDS + SHARED and len(set(links)) == len(links)

    # each feed polled once, but for what the killed instance held when it died: the feeds in
    # its hands (at most fetch.workers = 4) and those it had polled but whose records were
    # still in its batch (it logged them): those are polled again, and find nothing new
    polls = Counter(p for _m, p, _h, _b in web.requests if re.fullmatch(r"/f/\d+\.xml", p))
    assert set(polls) == {f"/f/{i}.xml" for i in range(FEEDS)}
    assert max(polls.values()) <= 2, polls.most_common(8)
    logged = {m.group(1) for line in killed_worked
              if (m := re.search(r"(/f/\d+\.xml)", line))}
    again = {p for p, n in polls.items() if n > 1}
    assert len(again - logged) <= 4, (again - logged, polls.most_common(8))

    # every digest sent once (one in flight when the kill came may repeat, same Message-ID),
    # and every article in exactly one of them
    ids = Counter(m["Message-ID"] for m in box.messages)
    assert sum(n - 1 for n in ids.values()) <= 1, ids.most_common(3)
    seen: Counter[str] = Counter()
    for message_id in ids:
        message = next(m for m in box.messages if m["Message-ID"] == message_id)
        body = message.get_body(("plain",))
        assert body is not None
        seen.update(set(re.findall(r"http://127\.0\.0\.1:\d+/[as]/\d+", body.get_content())))
    assert len(seen) == FEEDS + SHARED and set(seen.values()) == {1}, seen.most_common(3)
    assert killed_worked, "the killed instance had polled feeds before it died"


# -- the copy decision, partitioned (PostgreSQL) ----------------------------------------------

WIRE = ("The defence ministry said on Monday that the convoy had reached the town after three "
        "days on the road from the capital, escorted by armoured vehicles, and that the "
        "garrison was relieved after a siege of several weeks in which supplies ran short.")


def test_a_copy_shares_a_slot_with_its_original_and_another_article_does_not() -> None:
    from monitor.dedup import fingerprint
    from monitor.store.articles import copy_slots

    def slots(text: str, url: str = "") -> set[int]:
        fp = fingerprint(text)
        return set(copy_slots(url, fp.content_hash, fp.lead_hash, fp.shingles))

    original = slots(WIRE)
    assert original & slots(WIRE + " Reporting by our correspondent.")  # near-duplicate
    assert original & slots(" ".join(WIRE.split()[:20]) + " Read more.")  # truncated: its lead
    assert slots("Floods closed the ring road for a second day as the river rose again.",
                 "http://x.example/a") & slots("Other words entirely.", "http://x.example/a")
    assert not original & slots("Floods closed the ring road for a second day as the river "
                                "rose again, and the city asked residents to stay at home "
                                "while crews pumped water out of the tunnels under the centre.")


@pytest.mark.postgres
def test_only_articles_that_could_be_copies_wait_for_each_other_and_stories_go_one_by_one(
        pg_url: str) -> None:
    """Slot locks held by an article being stored stop a possible copy of it and anything that
    decides alone, not an unrelated article; the story lock stops every other story decision.
    Waiting is seen as PostgreSQL's lock_timeout expiring, with no sleeping here."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import sessionmaker

    from monitor.dedup import fingerprint
    from monitor.store import articles
    from monitor.store.db import open_database

    engine, sessions = open_database(pg_url)
    other_sessions = sessionmaker(engine)

    def slots(text: str) -> list[int]:
        fp = fingerprint(text)
        return articles.copy_slots("", fp.content_hash, fp.lead_hash, fp.shingles)

    def waits(take: Callable[[Any], object]) -> bool:
        with other_sessions.begin() as session:
            session.execute(sa_text("SET LOCAL lock_timeout = '200ms'"))
            try:
                take(session)
            except OperationalError as e:
                assert "lock timeout" in str(e)
                return True
        return False

    unrelated = ("Floods closed the ring road for a second day as the river rose again, and the "
                 "city asked residents to stay at home while crews pumped the tunnels dry.")
    try:
        with sessions.begin() as holder:
            assert articles.lock_copies(holder, slots(WIRE)) is True
            copy = slots(WIRE + " Reporting by our correspondent.")
            assert waits(lambda s: articles.lock_copies(s, copy))
            assert not waits(lambda s: articles.lock_copies(s, slots(unrelated)))
            assert waits(articles.lock_for_dedup)  # deciding alone waits for everyone
            assert not waits(articles.lock_stories)
            articles.lock_stories(holder)
            assert waits(articles.lock_stories)
            # an article with too many keys for the lock table decides alone
            many = list(range(articles.MAX_SLOTS + 1))
            assert waits(lambda s: articles.lock_copies(s, many))
        assert not waits(lambda s: articles.lock_copies(s, copy))  # committed: free again
        with sessions.begin() as alone:
            articles.lock_for_dedup(alone)
            assert waits(lambda s: articles.lock_copies(s, slots(unrelated)))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_database_error_in_the_watermark_is_a_storage_error_and_leaves_no_lock(
        pg_url: str) -> None:
    """Raised as SQLAlchemy raises any database error (so the poll stops and is retried, not
    blamed on one entry), and the copy decision's lock is not left held."""
    from sqlalchemy.exc import OperationalError

    from monitor.store import articles
    from monitor.store.db import open_database

    engine, sessions = open_database(pg_url)
    try:
        with sessions.begin() as blocker:
            blocker.execute(sa_text("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE"))
            with sessions() as session:
                session.execute(sa_text("SET lock_timeout = '200ms'"))
                with pytest.raises(OperationalError, match="lock timeout"):
                    articles.watermark(session)
                session.rollback()
                session.execute(sa_text("RESET lock_timeout"))
        with sessions() as session:
            assert articles.watermark(session)[1] is True  # free: nobody kept it
            assert session.scalar(sa_text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = 1836019315")) == 0  # (the copy decision's key space)
    finally:
        engine.dispose()


def test_start_up_reads_the_stored_seeds_from_their_index_not_from_every_article(
        db_url: str) -> None:
    """Every start asks which seeds are stored: without an index that read every article (at
    100,000 of them, 200 MiB of the daemon's memory through SQLite's map, and a sequential
    scan on PostgreSQL)."""
    from sqlalchemy import event

    from monitor.store import articles
    from monitor.store.db import open_database

    engine, sessions = open_database(db_url)
    asked: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_rest: asked.append(statement))
    try:
        with sessions() as session:
            articles.seed_hashes(session)
        query = next(q for q in asked if "is_seed" in q)
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa_text("SET enable_seqscan = off"))  # the table is empty here
                plan = " ".join(conn.execute(sa_text("EXPLAIN " + query)).scalars())
            else:
                plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + query))
    finally:
        engine.dispose()
    assert "ix_articles_seeds" in plan, plan

