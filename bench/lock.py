"""The ceiling the copy and story decision puts on a cluster: articles per second through the
serialised part of storing, measured alone.

    python bench/lock.py [--db sqlite|postgresql+psycopg://...] [--instances 1,2,4]
                         [--rounds 3] [--repeat 3] [corpus/articles]

Storing an article decides whether it is a copy and which story it joins. On SQLite, and on
PostgreSQL when no other store is in flight, the article takes one lock for the whole
transaction (``articles.lock_for_dedup``). Otherwise, on PostgreSQL, the copy decision is
partitioned: only articles that share a slot (URL, text or lead hash, a sampled shingle) wait
for each other (``articles.lock_copies``), and the story decision, which must see every story,
takes one lock from the story's placement to the commit (``articles.lock_stories``). However
many instances there are, articles go one at a time through whichever of these is the
cluster's own lock, so the time it is held caps the cluster. In ``bench/ingest.py`` it is
measured while extraction competes for the same 2 cores, which stretches it; here nothing else
runs.

First, not timed: the pages of ``shared/corpus/articles`` are extracted, and each of
``--rounds`` versions of them (later rounds with a line of their own added, so most articles are
copies) is fingerprinted, matched and described with the real models. Then, for each number of
instances T, a new database (with the seeds) takes every article through
``pipeline.store_entry`` from T processes, each an instance with its own engine and story
keeper: the copy lookup and verification before the lock, the sentence vector looked up from
the ones computed first (in the pipeline a document worker computes it), then the transaction
under the lock(s). Printed: articles per second, and the cluster-wide lock held per article
(the stage ``locked``: the whole transaction for an article that decided alone, from the
story lock on for a partitioned one); its inverse is the ceiling. With one instance every
article decides alone; with two, most are partitioned.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import DEFAULT, fresh_database, load_pages, write_config  # noqa: E402
from proc import join_all  # noqa: E402

from monitor import config  # noqa: E402
from monitor.dedup import fingerprint  # noqa: E402
from monitor.feeds import Entry  # noqa: E402
from monitor.metrics import REGISTRY  # noqa: E402
from monitor.pipeline import store_entry  # noqa: E402
from monitor.service import Service  # noqa: E402
from monitor.store.feeds import FeedJob  # noqa: E402
from monitor.stories.features import Features, extract, light  # noqa: E402
from monitor.words import index_words  # noqa: E402
from monitor.work import Analysis, entities  # noqa: E402

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.S | re.I)


def _text(raw: bytes) -> tuple[str, str]:
    from monitor.extract import extract_text

    page = gzip.decompress(raw)
    found = _TITLE.search(page)
    title = found.group(1).decode("utf-8", "replace").strip() if found else "Untitled"
    return title, extract_text(page, "http://127.0.0.1/")


class Described:
    """The sentence vectors, computed once with the real models before the timed part (in the
    pipeline a document worker computes them, outside the lock)."""

    def __init__(self) -> None:
        self.known: dict[str, Features] = {}

    def describe(self, title: str, text: str, names: tuple[str, ...],
                 known: Features | None = None) -> Features:
        if text not in self.known:
            self.known[text] = extract(title, text, names, known)
        return self.known[text]


def prepare(folder: Path, rounds: int, matcher: Any, described: Described
            ) -> list[tuple[str, Analysis]]:
    """(title, analysis) of every article, rounds interleaved as the ingest bench serves them."""
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        pages = pool.map(_text, load_pages(folder))
    found = []
    for n in range(len(pages) * rounds):
        title, text = pages[n % len(pages)]
        rnd = n // len(pages)
        if rnd:
            text = f"{text}\n\nUpdate {rnd}: this copy was republished by partner outlet {rnd}."
        matches = matcher.match(title, text)
        if rnd == 0:  # the originals' vectors (a copy needs none)
            described.describe(title, text, entities(matches))
        found.append((title, Analysis(text, "page", None, fingerprint(text), matches,
                                      light(title, text), words=tuple(index_words(title, text)))))
    return found


def locked_seconds() -> tuple[float, float]:
    """(sum, count) of the stage ``locked`` so far."""
    values = {s.name: s.value for metric in REGISTRY.collect()
              if metric.name == "monitor_stage_seconds" for s in metric.samples
              if s.labels.get("stage") == "locked"}
    return values.get("monitor_stage_seconds_sum", 0.0), \
        values.get("monitor_stage_seconds_count", 0.0)


def _storer(db: str, folder: str, k: int, storers: int, articles: list[tuple[str, Analysis]],
            known: dict[str, Features], ready: Any, start: Any, done: Any) -> None:
    """One instance: its own process, engine and story keeper, storing every ``storers``-th
    article from the ``k``-th."""
    from sqlalchemy import select

    from monitor.store.tables import Feed

    service = Service(config.load(Path(folder) / "monitor.toml"))
    with service.sessions() as session:
        feed = session.scalars(select(Feed).order_by(Feed.id)).all()[k]
    job = FeedJob(feed.id, feed.url, None, None, 3600.0, None, None, None, 0)
    ctx = service.context()
    described = Described()
    described.known = known
    ctx.documents = described  # type: ignore[assignment]
    now = datetime.now(UTC)
    ready.put(k)
    start.wait()
    before = locked_seconds()
    for n in range(k, len(articles), storers):
        title, found = articles[n]
        link = f"http://127.0.0.1/page/{n}.html"
        entry = Entry(f"urn:page:{n}", link, link, title, "", now)
        store_entry(ctx, job, entry.key(job.id), entry, f"Outlet {k}", found, now)
    after = locked_seconds()
    done.put((time.perf_counter(), after[0] - before[0], after[1] - before[1]))
    service.close()


def run(db: str, folder: str, articles: list[tuple[str, Analysis]], storers: int,
        described: Described) -> tuple[float, float]:
    """(articles per second, seconds the lock is held per article) with ``storers`` instances
    storing at once."""
    cfg = write_config(Path(folder), db, 9, storers)
    service = Service(config.load(cfg))
    service.prepare()  # migrations, feeds, seeds
    service.close()
    ctx = multiprocessing.get_context("spawn")
    ready, start, done = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_storer, args=(db, folder, k, storers, articles, described.known,
                                               ready, start, done))
             for k in range(storers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=600)
    started = time.perf_counter()
    start.set()
    results = [done.get(timeout=3600) for _ in procs]
    join_all(procs, "a storer")
    seconds = max(r[0] for r in results) - started
    held, count = sum(r[1] for r in results), sum(r[2] for r in results)
    return len(articles) / seconds, held / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("articles", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--instances", default="1,2,4", help="storing processes at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.articles.is_dir():
        raise SystemExit(f"no corpus at {args.articles} (pass the articles folder)")

    from monitor.watchlists import matcher_for

    with tempfile.TemporaryDirectory() as tmp:
        matcher = matcher_for(config.load(write_config(Path(tmp), f"sqlite:///{tmp}/m.db", 9, 1)))
    described = Described()
    articles = prepare(args.articles, args.rounds, matcher, described)
    print(f"{len(articles)} articles ({args.rounds} round(s) of the corpus: "
          f"{(args.rounds - 1) / args.rounds:.0%} copies), {args.db.split(':')[0]}; "
          f"{args.repeat} run(s) each; {datetime.now(UTC):%Y-%m-%d}")
    for storers in (int(t) for t in args.instances.split(",")):
        rates, held = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, tmp) as db:
                rate, lock = run(db, tmp, articles, storers, described)
            rates.append(rate)
            held.append(lock)
        lock = statistics.median(held)
        print(f"{storers} instance(s): {statistics.median(rates):.0f} articles/s "
              f"({min(rates):.0f}-{max(rates):.0f}); lock held {lock * 1000:.2f} ms an article "
              f"({min(held) * 1000:.2f}-{max(held) * 1000:.2f}): a ceiling of "
              f"{1 / lock:.0f} articles/s")


if __name__ == "__main__":
    main()
