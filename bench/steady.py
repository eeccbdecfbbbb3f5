"""Steady state: the daemon's memory with 100,000 stored articles, and its start-up time.

    python bench/steady.py [--articles 100000] [--db sqlite|postgresql+psycopg://...]

Builds a database holding ``--articles`` stored articles (text of 300-1,200 words drawn from the
vocabulary of shared/corpus/articles, each fingerprinted by monitor and indexed as the pipeline
would), then starts ``monitor run`` on it as a separate process, with 20 feeds listing 362 real
pages (the corpus twice, the second time as lightly edited copies) served on loopback. The
daemon fetches, extracts, deduplicates against everything stored, matches and stores them.
Prints the start-up time (process start to "monitor running") and the resident memory of the
daemon and all its worker processes together while it works and once it is done: the sum of
their RSS (shared pages counted in each) and of their PSS (shared pages split between them).
Target: <= 500 MiB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import DEFAULT, fresh_database, load_pages, serve, write_config  # noqa: E402
from proc import tree_memory  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from monitor import config  # noqa: E402
from monitor.dedup import fingerprint  # noqa: E402
from monitor.service import Service  # noqa: E402
from monitor.store.tables import Article, Feed, FeedEntry  # noqa: E402

VOCABULARY: list[str] = []


def _vocabulary(folder: Path) -> list[str]:
    truth = json.loads((folder / "ground-truth.json").read_text())
    words = {w for item in truth.values() for w in re.findall(r"\w+", item["articleBody"])}
    return sorted(words)


def _article(n: int) -> dict[str, object]:
    rng = random.Random(n)
    paragraphs = [" ".join(rng.choices(VOCABULARY, k=rng.randint(40, 120))) + "."
                  for _ in range(rng.randint(5, 12))]
    body = "\n\n".join(paragraphs)
    fp = fingerprint(body)
    return {"n": n, "text": body, "content_hash": fp.content_hash, "lead_hash": fp.lead_hash,
            "shingles": sorted(fp.shingles)}


def _init(words: list[str]) -> None:
    VOCABULARY[:] = words


def build(url: str, count: int, folder: Path) -> None:
    """``count`` stored articles, their entries and their sampled shingles, as the pipeline
    leaves them (in bulk, without fetching 100,000 pages first)."""
    engine = create_engine(url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(Feed), [{
            "url": "http://archive.invalid/feed", "active": False, "interval_seconds": 1800.0,
            "created_at": now, "error_count": 0, "entries_total": count}])
        feed_id = conn.scalar(select(Feed.id).where(Feed.url == "http://archive.invalid/feed"))
        first = int(conn.scalar(select(func.coalesce(func.max(Article.id), 0))) or 0) + 1
    with multiprocessing.Pool(initializer=_init, initargs=(_vocabulary(folder),)) as pool:
        batch: list[dict[str, object]] = []
        for done, item in enumerate(pool.imap(_article, range(count), chunksize=200), 1):
            batch.append(item)
            if len(batch) == 2000 or done == count:
                _store(engine, batch, first, feed_id, now)
                batch = []
                print(f"\r  {done} articles stored ({time.perf_counter() - started:.0f} s)",
                      end="", flush=True)
    print()
    engine.dispose()


def _store(engine: object, batch: list[dict[str, object]], first: int, feed_id: int | None,
           now: datetime) -> None:
    articles, entries, shingles = [], [], []
    for item in batch:
        n = int(item["n"])  # type: ignore[call-overload]
        article_id = first + n
        link = f"http://archive.example/{n}"
        articles.append({
            "id": article_id, "feed_id": feed_id, "guid": f"urn:archive:{n}", "link": link,
            "canonical_url": link, "title": f"Archived report {n}", "outlet": "Archive",
            "text": item["text"], "text_source": "page", "content_hash": item["content_hash"],
            "lead_hash": item["lead_hash"] or None,
            "shingle_count": len(item["shingles"]),  # type: ignore[arg-type]
            "created_at": now - timedelta(minutes=n % 43200), "is_seed": False})
        entries.append({"feed_id": feed_id, "entry_key": f"{n:064x}", "article_id": article_id,
                        "link": link, "created_at": now})
        shingles += [{"hash": h, "article_id": article_id}
                     for h in item["shingles"]]  # type: ignore[attr-defined]
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(insert(Article), articles)
        conn.execute(insert(FeedEntry), entries)
        conn.execute(text("INSERT INTO shingles (hash, article_id) VALUES (:hash, :article_id)"),
                     shingles)


def count_articles(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.scalar(select(func.count()).select_from(Article)) or 0)
    engine.dispose()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("articles_dir", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite")
    args = parser.parse_args()
    pages = len(load_pages(args.articles_dir)) * 2
    port = 20000 + os.getpid() % 1000
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, daemon=True,
                                     args=(port, str(args.articles_dir), 20, pages, ready))
    server.start()
    ready.wait(30)
    print(f"{os.cpu_count()} cores; {args.db}")
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, tmp) as db:
        cfg = write_config(Path(tmp), db, port, 20)
        monitor = [sys.executable, "-m", "monitor", "--config", str(cfg)]
        service = Service(config.load(cfg))  # the schema, the seeds and the feeds
        service.prepare()
        service.close()
        build(db, args.articles, args.articles_dir)
        before = count_articles(db)
        print(f"database: {before} articles stored")
        started = time.perf_counter()
        daemon = subprocess.Popen([*monitor, "run"], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            assert daemon.stdout is not None
            for line in daemon.stdout:
                if "monitor running" in line:
                    break
            else:
                raise SystemExit("the daemon did not start")
            print(f"start-up (process start to 'monitor running'): "
                  f"{time.perf_counter() - started:.1f} s")
            lines: list[str] = []  # the daemon's log, read so that its pipe never fills
            threading.Thread(target=lambda: lines.extend(daemon.stdout or ()),
                             daemon=True).start()
            peak = (0.0, 0.0, 0)
            deadline = time.monotonic() + 900
            while count_articles(db) < before + pages and time.monotonic() < deadline:
                now = tree_memory(daemon.pid)
                peak = max(peak, now)
                time.sleep(0.5)
            done = count_articles(db) - before
            time.sleep(3)
            detail: list[str] = []
            rss, pss, procs = tree_memory(daemon.pid, detail)
            print(f"while working: peak {peak[0]:.0f} MiB RSS, {peak[1]:.0f} MiB PSS "
                  f"({peak[2]} processes)")
            print(f"after {done} new articles on top of {before}: {rss:.0f} MiB RSS, "
                  f"{pss:.0f} MiB PSS ({procs} processes)   target <= 500 MiB; "
                  f"{datetime.now(UTC):%Y-%m-%d}")
            print("\n".join(detail))
        finally:
            daemon.terminate()
            daemon.wait(60)
    server.terminate()


if __name__ == "__main__":
    main()
