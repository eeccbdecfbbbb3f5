"""Polling many feeds: one cycle over N feeds spread over many loopback addresses (127.0.0.0/8).

    python bench/polling.py [--feeds 10000] [--db sqlite|postgresql+psycopg://...]

Set-up (timed, not the target): one cycle where every feed answers 200 with an ETag and no
items, then the 20 items each feed will list are stored as already seen (parsed with monitor's
own parser, so their identities are the pipeline's). Cycle 1: every feed answers 304 to its
ETag (target: <= 20 s for 10,000 feeds). Cycle 2: every feed answers 200 without validators
listing its 20 items, all seen. Every cycle goes through ``Service.poll``, as the daemon's.
The feeds are served by a separate process, so the server's work is not the monitor's. Prints
the machine's core count, each cycle's seconds and feeds per second, and resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from monitor import config  # noqa: E402
from monitor.feeds import parse  # noqa: E402
from monitor.service import Service  # noqa: E402
from monitor.store.tables import Article, Feed, FeedEntry  # noqa: E402

# the items are dated over the last hours, as a live feed's are (an old feed would be "silent")
NEWEST = datetime.now(UTC).replace(second=0, microsecond=0)


def feed(n: int, items: int = 20) -> bytes:
    entries = "".join(
        f"<item><title>Item {k} of feed {n}</title><link>http://news.example/{n}/{k}</link>"
        f"<guid>urn:{n}:{k}</guid><description>Summary {k} of feed {n}.</description>"
        f"<pubDate>{format_datetime(NEWEST - timedelta(minutes=10 * k), usegmt=True)}"
        "</pubDate></item>" for k in range(items))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
            f"<link>http://news.example/{n}</link><description>x</description>{entries}"
            "</channel></rss>").encode()


SETUP, NOT_MODIFIED, SEEN = 0, 1, 2


def serve(port: int, mode: Any, items: int) -> None:
    """A small asyncio HTTP/1.1 server (keep-alive, one write per answer): a threaded
    http.server tops out below what the monitor polls at, and would be what is measured."""

    def answer(path: str, etag_sent: str | None) -> bytes:
        n = int(path.rsplit("/", 1)[1].split(".")[0])
        etag = f'"{n}"'
        if mode.value == NOT_MODIFIED and etag_sent == etag:
            return f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n" \
                .encode()
        body = feed(n, 0 if mode.value == SETUP else items)
        head = ("HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                + (f"ETag: {etag}\r\n" if mode.value == SETUP else "")
                + f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                etag = next((line.split(":", 1)[1].strip() for line in lines[1:]
                             if line.lower().startswith("if-none-match:")), None)
                writer.write(answer(lines[0].split()[1], etag))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(client, "0.0.0.0", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


PER_ADDRESS = 20


def feed_url(n: int, port: int) -> str:
    return f"http://{address(n)}:{port}/feed/{n}.xml"


def _entry_rows(job: tuple[int, int, int, int]) -> list[tuple[int, str, str]]:
    n, feed_id, items, port = job
    parsed = parse(feed(n, items), feed_url(n, port), datetime.now(UTC), "application/rss+xml")
    return [(feed_id, e.key(feed_id), e.link) for e in parsed.entries]


def store_seen(service: Service, feeds: int, items: int, port: int) -> None:
    """Every feed's items stored as seen entries (of one placeholder article), as a first
    cycle would have left them, without waiting for 200,000 articles to be ingested."""
    now = datetime.now(UTC)
    with service.sessions.begin() as session:
        ids = {url: i for i, url in session.execute(select(Feed.id, Feed.url))}
        placeholder = Article(title="placeholder", text="", text_source="none", created_at=now)
        session.add(placeholder)
        session.flush()
        jobs = [(n, ids[feed_url(n, port)], items, port) for n in range(feeds)]
        with multiprocessing.Pool() as pool:
            for rows in pool.imap_unordered(_entry_rows, jobs, chunksize=50):
                if rows:
                    session.execute(insert(FeedEntry), [
                        {"feed_id": f, "entry_key": k, "link": link,
                         "article_id": placeholder.id, "created_at": now}
                        for f, k, link in rows])


def address(n: int) -> str:
    """Feed n's host: ``PER_ADDRESS`` feeds per loopback address, 127.1.0.1 onwards (a host
    serves a few feeds, as news sites do: fetch.per_host bounds the requests to each)."""
    host = n // PER_ADDRESS
    return f"127.{1 + host // 62500}.{host // 250 % 250}.{1 + host % 250}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--workers", type=int, default=32, help="fetch.workers")
    parser.add_argument("--items", type=int, default=20, help="items per feed")
    args = parser.parse_args()
    port = 18000 + os.getpid() % 1000
    mode = multiprocessing.Value("i", SETUP)
    server = multiprocessing.Process(target=serve, args=(port, mode, args.items), daemon=True)
    server.start()
    time.sleep(0.5)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db" if args.db == "sqlite" else args.db
        lines = [f'[storage]\nurl = "{url}"', "[seeds]\npaths = []",
                 f"[fetch]\nallow_private_addresses = true\nworkers = {args.workers}\n"
                 "fetch_pages = false\ntimeout = 30",
                 '[[watchlists]]\nname = "b"\nterms = ["Wagner"]\nchannels = []']
        lines += [f'[[feeds]]\nurl = "{feed_url(n, port)}"' for n in range(args.feeds)]
        cfg = Path(tmp) / "monitor.toml"
        cfg.write_text("\n".join(lines) + "\n")
        started = time.perf_counter()
        service = Service(config.load(cfg))
        service.prepare()
        print(f"{os.cpu_count()} cores; {args.feeds} feeds on {-(-args.feeds // PER_ADDRESS)} "
              f"loopback addresses; {args.db}; fetch.workers {args.workers}; start-up and "
              f"feeds table {time.perf_counter() - started:.1f} s")
        try:
            started = time.perf_counter()
            service.poll(ignore_schedule=True)
            store_seen(service, args.feeds, args.items, port)
            print(f"set-up (ETags, then {args.items} seen items per feed stored): "
                  f"{time.perf_counter() - started:.1f} s")
            for label, value in (("304", NOT_MODIFIED),
                                 (f"200, {args.items} seen items each", SEEN)):
                mode.value = value
                started = time.perf_counter()
                results = service.poll(ignore_schedule=True)
                seconds = time.perf_counter() - started
                failed = [r for r in results if r.status == "failed"]
                odd = [r for r in results
                       if r.new or r.status not in ("ok", "not-modified", "unchanged")]
                print(f"cycle {label}: {seconds:.1f} s, {len(results) / seconds:.0f} feeds/s, "
                      f"{len(failed)} failed, {len(odd)} not as expected"
                      + (f" (first: {odd[0]})" if odd else "")
                      + ("   target <= 20 s for 10,000" if value == NOT_MODIFIED else ""))
        finally:
            service.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the monitor process: {rss:.0f} MiB; {datetime.now(UTC):%Y-%m-%d}")
    server.terminate()


if __name__ == "__main__":
    main()
