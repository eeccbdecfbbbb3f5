"""The web desk's page times with many stored articles.

    python bench/desk.py [N [FOLDER]]   # N stored articles (default 100,000), SQLite; FOLDER
                                        # keeps the database for the next run

Fills a database with N articles (the 181 hand-extracted corpus texts of ../shared when there,
else the labelled stories' texts, each stored many times with its own title and a sentence of
another, spread over 60 days, four to a story, matched by the shipped watchlist, indexed for
search as the pipeline does), serves the desk on loopback and asks each page 15 times over HTTP.
Prints the median and spread (min–max) per page. Baselines measured in the same run: /healthz
(the HTTP round trip itself) and, for search, the linear scan the index replaced.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from monitor import config, history, search
from monitor.desk.pages import Desk
from monitor.ops import Liveness, serve
from monitor.query import Node, Not, Word
from monitor.store import articles, db
from monitor.store.tables import Article, Feed, Story
from monitor.watchlists import matcher_for
from monitor.words import index_words

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "articles" / "ground-truth.json"
LABELLED = ROOT / "tests" / "data" / "stories"
RUNS = 15


def texts() -> list[tuple[str, str, str]]:
    """(title, text, language) to build articles from."""
    out = []
    for part in ("dev_a", "dev_b", "heldout"):
        for a in json.loads((LABELLED / f"{part}.json").read_text())["articles"]:
            out.append((a["title"], a["text"], a["language"]))
    if CORPUS.exists():
        for item in json.loads(CORPUS.read_text()).values():
            body = item.get("articleBody") or ""
            if body:
                out.append((body.split("\n")[0][:120], body, "en"))
    return out


def fill(url: str, n: int, settings: config.Settings) -> None:
    rng = random.Random(7)
    base = texts()
    matcher = matcher_for(settings)
    now = datetime.now(UTC)
    engine, sessions = db.open_database(url, write=True)
    started = time.perf_counter()
    with sessions.begin() as s:
        feed = Feed(url="http://127.0.0.1/feed.xml", name="bench", interval_seconds=900,
                    created_at=now)
        s.add(feed)
        s.flush()
        feed_id = feed.id
    story_id = 0
    for start in range(0, n, 1000):
        with sessions.begin() as s:
            for i in range(start, min(n, start + 1000)):
                title, text, language = base[rng.randrange(len(base))]
                extra = base[rng.randrange(len(base))][1].split(".")[0]
                title, text = f"{title} ({i})", f"{text}\n\n{extra}."
                when = now - timedelta(days=60) * (1 - i / n)
                if i % 4 == 0:
                    story = Story(title=title, first_seen=when, last_seen=when, article_count=4,
                                  languages=[language], vector_total=b"", vector_count=0,
                                  names={}, figures=[], days=[], version=i, created_at=when)
                    s.add(story)
                    s.flush()
                    story_id = story.id
                article_id = articles.insert_article(s, Article(
                    feed_id=feed_id, guid=f"g{i}", link=f"https://news.example/{i}",
                    title=title, outlet=f"outlet{i % 60}.example", text=text,
                    text_source="page", published_at=when, created_at=when, is_seed=False,
                    language=language, story_id=story_id), [], index_words(title, text))
                for m in matcher.match(title, text):
                    articles.add_match(s, article_id, m, when)
        if start % 20_000 == 0:
            print(f"  filled {start:,} ...", flush=True)
    print(f"filled {n:,} articles in {time.perf_counter() - started:.0f}s")
    engine.dispose()


def timed(client: httpx.Client, url: str) -> list[float]:
    out = []
    for _ in range(RUNS):
        started = time.perf_counter()
        answer = client.get(url)
        out.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (url, answer.status_code)
    return out


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} ms ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    keep = Path(sys.argv[2]) if len(sys.argv) > 2 else None  # a folder to keep the database in
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder}/m.db"
        cfg = folder / "monitor.toml"
        cfg.write_text(f'watchlist_files = ["{ROOT / "config" / "watchlists" / "sahel.toml"}"]\n'
                       f'[storage]\nurl = "{url}"\n')
        settings = config.load(str(cfg))
        if (folder / "m.db").exists() and keep is not None:
            print(f"reusing {folder / 'm.db'}")
        else:
            fill(url, n, settings)
        engine, sessions = db.open_database(url)
        live = Liveness(heartbeat=5, cycle_limit=60)
        live.beat()
        endpoint = serve("127.0.0.1:0", sessions, live, lambda: ["sahel"],
                         desk=Desk(sessions, lambda: settings))
        base = f"http://127.0.0.1:{endpoint.port}"
        medians: dict[str, float] = {}
        try:
            with httpx.Client(timeout=60) as client:
                front = client.get(base + "/").text
                story = front.split('href="/story/')[1].split('"')[0]
                article = front.split('href="/article/')[1].split('"')[0]
                pages = [("/healthz (baseline)", "/healthz"), ("/ stories, 3 days", "/"),
                         ("/ by watchlist+entity", "/?watchlist=sahel&entity=Wagner%20Group"),
                         ("/ 30 days, language ru", "/?days=30&language=ru"),
                         ("/story/N", f"/story/{story}"), ("/article/N", f"/article/{article}"),
                         ("/search?q=Wagner", "/search?q=Wagner"),
                         ("/search?q=@wagner AND Mali", "/search?q=%40wagner+AND+Mali"),
                         ("/search?q=Кидаль", "/search?q=%D0%9A%D0%B8%D0%B4%D0%B0%D0%BB%D1%8C"),
                         ("/search?q=rare word", "/search?q=Tinzaouatene"),
                         ("/feeds", "/feeds"), ("/digests", "/digests"), ("/trends", "/trends")]
                print(f"\npage times over HTTP with {n:,} articles (median of {RUNS}, min–max):")
                for label, path in pages:
                    found = timed(client, base + path)
                    medians[label] = statistics.median(found)
                    print(f"  {label:<30} {spread(found)}")
            # the linear scan the index replaced, for a rare word (the scan's worst case)
            matcher, _, entities = search.prepare(settings, "Tinzaouatene")
            scans = []
            for _ in range(3):
                started = time.perf_counter()
                list(search.find(sessions, matcher, q_none(), entities, None, 50,
                                 lambda: history.newest_first(sessions, None)))
                scans.append((time.perf_counter() - started) * 1000)
            print(f"  {'linear scan, rare word':<30} {spread(scans)}  (baseline: the search "
                  f"before the index)")
            slowest = max((v, k) for k, v in medians.items() if "baseline" not in k)
            print(f"\nslowest page: {slowest[1]} {slowest[0]:.1f} ms (target: well under 200)"
                  f"; index/scan for a rare word: "
                  f"{medians['/search?q=rare word'] / statistics.median(scans):.3f}")
        finally:
            endpoint.close()
            engine.dispose()


def q_none() -> Node:
    """A query the index cannot narrow (NOT alone): the search reads every article; the matcher
    still judges each one by the query it was prepared with."""
    return Not(Word("Tinzaouatene"))


if __name__ == "__main__":
    main()
