"""Ingest throughput: articles per second end to end, beside the least any pipeline must do.

    python bench/ingest.py [--db sqlite|postgresql+psycopg://...] [--instances 1]
                           [--feeds 10] [--rounds 1] [corpus/articles]

A separate process serves the 181 real pages of ``shared/corpus/articles`` (gzip, as a browser
received them) and feeds listing them, on loopback. Then, in the same run:

- baseline: one process per core, each fetching pages from that server and passing them to
  ``trafilatura.extract`` with the options monitor uses (``include_comments=False, fast=True``);
- monitor: ``--instances`` processes of ``Service.poll`` on one database, which fetch the feeds
  and pages, extract, fingerprint, deduplicate against the seeds and each other, match the
  shipped watchlists and store everything.

Both are timed net of start-up (imports, worker pools, migrations and seeds come first), and
the ratio monitor / baseline is printed (target >= 0.80). ``--rounds R`` serves every page R
times under different URLs, later rounds with a line of their own added, so that R-1 of every
R articles are near-duplicates that dedup must verify.

Per run it prints milliseconds per article for each pipeline stage, the daemon's CPU and the
document workers' CPU, and the daemon's process tree at its peak (RSS and PSS, sampled from
this process once a second: a reading costs about 1.5 ms of a core per
process). ``BENCH_PYSPY=FILE`` samples the daemon with py-spy while it holds the GIL;
``BENCH_PROFILE=FILE`` profiles it with yappi (neither tool is a dependency).
"""

from __future__ import annotations

import argparse
import gzip
import html
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT = ROOT.parent / "shared" / "corpus" / "articles"

import trafilatura  # noqa: E402
import trafilatura.xpaths  # noqa: E402
from proc import PeakMemory, cpu_seconds, join_all, tree, tree_memory  # noqa: E402
from trafilatura.settings import use_config  # noqa: E402

# The baseline is trafilatura as shipped, with monitor's settings (monitor.extract's _CONFIG).
# monitor.extract is not imported here: the baseline's processes import this module, and
# importing it would give them monitor's faster element lookup and XPath stand-ins.
_CONFIG = use_config()
_CONFIG.set("DEFAULT", "MAX_TREE_SIZE", "200000")
_CONFIG.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.S | re.I)


def load_pages(folder: Path) -> list[bytes]:
    """The gzipped pages, in a fixed order."""
    return [p.read_bytes() for p in sorted((folder / "html").glob("*.html.gz"))]


def page_body(pages: list[bytes], n: int) -> bytes:
    """Page ``n`` of the served set (rounds after the first get a line of their own)."""
    raw = pages[n % len(pages)]
    rnd = n // len(pages)
    if rnd == 0:
        return raw
    text = gzip.decompress(raw)
    note = f"<p>Update {rnd}: this copy was republished by partner outlet {rnd}.</p>".encode()
    at = text.lower().find(b"</p>")
    text = text[: at + 4] + note + text[at + 4:] if at >= 0 else text + note
    return gzip.compress(text, 6)


def page_host(n: int, hosts: bool) -> str:
    """Where page ``n`` lives: one loopback server, or a loopback address of its own."""
    return f"127.1.{n // 250}.{n % 250 + 1}" if hosts else "127.0.0.1"


def page_url(port: int, n: int, hosts: bool) -> str:
    return f"http://{page_host(n, hosts)}:{port}/page/{n}.html"


def feed_doc(port: int, feed: int, feeds: int, total: int, titles: list[str],
             hosts: bool = False) -> bytes:
    items = "".join(
        f"<item><title>{html.escape(titles[n % len(titles)])}</title>"
        f"<link>{page_url(port, n, hosts)}</link><guid>urn:page:{n}</guid>"
        f"<pubDate>Mon, 15 Nov 2021 10:{n % 60:02d}:00 GMT</pubDate></item>"
        for n in range(feed, total, feeds))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {feed}</title>'
            f"<link>http://127.0.0.1:{port}/</link><description>x</description>{items}"
            "</channel></rss>").encode()


def serve(port: int, folder: str, feeds: int, total: int, ready: Any, hosts: bool = False
          ) -> None:
    """Feeds on 127.0.0.1, pages there too or each on a loopback address of its own (one
    asyncio loop listening on all of them), HTTP/1.1 with keep-alive."""
    import asyncio

    pages = load_pages(Path(folder))
    titles = []
    for raw in pages:
        found = _TITLE.search(gzip.decompress(raw))
        titles.append(html.unescape(found.group(1).decode("utf-8", "replace")).strip()
                      if found else "Untitled")
    cache: dict[int, bytes] = {}

    def answer(path: str) -> bytes:
        kind, _, name = path.strip("/").partition("/")
        n = int(name.split(".")[0])
        if kind == "feed":
            body, head = feed_doc(port, n, feeds, total, titles, hosts), \
                "Content-Type: application/rss+xml\r\n"
        else:
            if n not in cache:
                cache[n] = page_body(pages, n)
            body, head = cache[n], ("Content-Type: text/html; charset=utf-8\r\n"
                                    "Content-Encoding: gzip\r\n")
        return (f"HTTP/1.1 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                .encode() + body)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                path = request.split(b" ", 2)[1].decode()
                writer.write(answer(path))
                await writer.drain()
                if b"connection: close" in request.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        own = sorted({page_host(n, True) for n in range(total)}) if hosts else []
        addresses = ["127.0.0.1", *own]
        server = await asyncio.start_server(client, addresses, port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- baseline: fetch + trafilatura.extract, one process per core ------------------------------

def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return body


def _baseline_one(url: str) -> int:
    assert type(trafilatura.xpaths.BODY_XPATH[0]).__name__ == "XPath", "baseline: not as shipped"
    text = trafilatura.extract(_fetch(url), url=url, include_comments=False, fast=True,
                               include_tables=True, config=_CONFIG)
    return len(text or "")


def baseline(port: int, total: int, processes: int, hosts: bool = False) -> float:
    urls = [page_url(port, n, hosts) for n in range(total)]
    with multiprocessing.get_context("forkserver").Pool(processes) as pool:
        pool.map(_baseline_one, urls[:processes] * 2, chunksize=1)  # warm: imports, first run
        started = time.perf_counter()
        pool.map(_baseline_one, urls, chunksize=1)
        return time.perf_counter() - started


# -- monitor -------------------------------------------------------------------------------

def write_config(folder: Path, db: str, port: int, feeds: int, processes: int = 0) -> Path:
    lines = [f'watchlist_files = ["{ROOT}/config/watchlists/*.toml"]',
             f'[storage]\nurl = "{db}"', f'[seeds]\npaths = ["{ROOT}/seeds"]',
             "[fetch]\nallow_private_addresses = true\ntimeout = 60",
             '[channels.email]\nrecipients = ["desk@example.org"]',
             '[channels.slack]\nwebhook_url = "http://127.0.0.1:9/hook"',
             '[poll]\ninterval = "1h"', f"[documents]\nprocesses = {processes}"]
    lines += [f'[[feeds]]\nurl = "http://127.0.0.1:{port}/feed/{n}.xml"' for n in range(feeds)]
    path = folder / "monitor.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _instance(config_path: str, ready: Any, start: Any, done: Any, warm_url: str) -> None:
    from monitor import config
    from monitor.service import Service

    service = Service(config.load(Path(config_path)))
    service.prepare()
    service.documents.start()  # as ``monitor run`` does before it says it is ready
    page = _fetch(warm_url)
    for _ in range(service.documents.processes * 2):  # each worker's first page
        service.documents.analyse(page, warm_url, "", "")
    ready.put(os.getpid())
    start.wait()
    before = _stages()
    profile = os.environ.get("BENCH_PROFILE")  # a file: the daemon's CPU by function (yappi)
    # (yappi counts every call, and inflates Python's share; BENCH_PYSPY samples instead)
    if profile:
        import yappi  # not a dependency: pip install yappi to use it

        yappi.set_clock_type("cpu")
        yappi.start()
    helpers_cpu = cpu_seconds([p for p in tree(os.getpid()) if p != os.getpid()])
    spy = _sampler(os.environ.get("BENCH_PYSPY"))
    cpu = time.process_time()
    started = time.perf_counter()
    service.poll(ignore_schedule=True)
    ended = time.perf_counter()
    helpers_cpu = cpu_seconds([p for p in tree(os.getpid()) if p != os.getpid()]) - helpers_cpu
    if spy is not None:  # py-spy writes its file when interrupted
        spy.send_signal(signal.SIGINT)
        spy.wait()
    if os.environ.get("BENCH_MEMORY_DETAIL"):  # a line per process of the tree, once done
        detail: list[str] = []
        tree_memory(os.getpid(), detail)
        print("\n".join(detail), flush=True)
    if profile:
        yappi.stop()
        yappi.get_func_stats().save(f"{profile}.{os.getpid()}", type="pstat")
    cpu = time.process_time() - cpu
    after = _stages()
    stages = {k: after[k] - before.get(k, 0.0) for k in after}
    stages["daemon CPU (all threads)"] = cpu
    stages["helpers' CPU (document workers)"] = helpers_cpu
    done.put((started, ended, stages))
    service.close()


def _sampler(path: str | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling this process while it holds the GIL (its Python CPU), into ``path``
    (folded stacks), when a path is given (py-spy is not a dependency: pip install py-spy)."""
    if not path:
        return None
    spy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"), "record",
                            "-p", str(os.getpid()), "-o", path, "-f", "raw", "-r", "250",
                            "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    return spy


def _stages() -> dict[str, float]:
    """Seconds summed per pipeline stage so far (``monitor_stage_seconds``)."""
    from monitor.metrics import REGISTRY

    return {s.labels["stage"]: s.value for metric in REGISTRY.collect()
            if metric.name == "monitor_stage_seconds" for s in metric.samples
            if s.name.endswith("_sum")}


def monitor_run(config_path: Path, instances: int, warm_url: str
                ) -> tuple[float, float, dict[str, float]]:
    """(seconds from the common start to the last instance's end, start-up seconds, seconds
    per stage summed over the instances)."""
    ctx = multiprocessing.get_context("spawn")
    ready, start, done = ctx.Queue(), ctx.Event(), ctx.Queue()
    began = time.perf_counter()
    procs = []
    for i in range(instances):
        procs.append(ctx.Process(target=_instance,
                                 args=(str(config_path), ready, start, done, warm_url)))
        procs[-1].start()
        if i == 0:  # the first one migrates and loads the seeds alone
            ready.get(timeout=600)
    for _ in procs[1:]:
        ready.get(timeout=600)
    startup = time.perf_counter() - began
    with PeakMemory([p.pid for p in procs if p.pid is not None]) as memory:
        start.set()
        spans = [done.get(timeout=3600) for _ in procs]
    join_all(procs, "an instance")
    stages: dict[str, float] = {}
    for _, _, found in spans:
        for k, v in found.items():
            stages[k] = stages.get(k, 0.0) + v
    stages["peak RSS MiB"], stages["peak PSS MiB"] = memory.peak
    if os.environ.get("BENCH_MEMORY_DETAIL"):
        print("  at the RSS peak, by process (RSS / PSS MiB): " + ", ".join(
            f"{pid}: {rss:.0f} / {pss:.0f}" for pid, (rss, pss) in sorted(memory.at_peak.items())),
            flush=True)
    return max(e for _, e, _ in spans) - min(s for s, _, _ in spans), startup, stages


def count_articles(url: str) -> int:
    from sqlalchemy import create_engine, func, select

    from monitor.store.tables import Article

    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(Article)
                            .where(Article.is_seed.is_(False)))
    engine.dispose()
    return int(count or 0)


@contextmanager
def fresh_database(db: str, folder: str) -> Iterator[str]:
    """A new empty database: a SQLite file in ``folder``, or a new PostgreSQL database beside
    the one named (dropped afterwards)."""
    if db == "sqlite":
        yield f"sqlite:///{folder}/bench.db"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"monitor_bench_{os.getpid()}"
    admin = create_engine(db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(db).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("articles", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--feeds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating")
    parser.add_argument("--hosts", action="store_true",
                        help="each page on a loopback address of its own (127.1.x.y), as on "
                             "the internet every outlet is another host")
    parser.add_argument("--processes", type=int, default=0,
                        help="documents.processes (0: one per core, the default)")
    args = parser.parse_args()
    from monitor.extract import _CONFIG as monitors
    assert all(_CONFIG.get("DEFAULT", key) == monitors.get("DEFAULT", key)
               for key in ("MAX_TREE_SIZE", "EXTRACTION_TIMEOUT")), "baseline: other settings"
    if args.instances > 1 and args.db == "sqlite":
        raise SystemExit("several instances need PostgreSQL: --db postgresql+psycopg://...")
    total = len(load_pages(args.articles)) * args.rounds
    port = 19000 + os.getpid() % 1000
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, daemon=True,
                                     args=(port, str(args.articles), args.feeds, total, ready,
                                           args.hosts))
    server.start()
    ready.wait(30)
    cores = os.cpu_count() or 1
    print(f"{cores} cores; {total} pages ({args.rounds} round(s) of the corpus) in {args.feeds} "
          f"feeds; pages on {'a loopback address each' if args.hosts else 'one loopback server'}; "
          f"{args.db}; {args.instances} instance(s); "
          f"{args.repeat} run(s) of each, alternating")
    if args.hosts:  # the first contact with each address costs; neither side should pay it
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(_fetch, [page_url(port, n, True) for n in range(total)]))
    bases: list[float] = []
    rates: list[float] = []
    peaks: list[float] = []
    for run in range(1, args.repeat + 1):
        base = total / baseline(port, total, cores, args.hosts)
        with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, tmp) as db:
            cfg = write_config(Path(tmp), db, port, args.feeds, args.processes)
            seconds, startup, stages = monitor_run(cfg, args.instances,
                                                   page_url(port, 0, args.hosts))
            stored = count_articles(db)
        if stored != total:
            raise SystemExit(f"monitor stored {stored} articles of {total}")
        bases.append(base)
        rates.append(stored / seconds)
        print(f"run {run}: baseline (fetch + trafilatura.extract, {cores} processes) "
              f"{base:.1f} pages/s; monitor (fetch, extract, dedup, match, store) "
              f"{rates[-1]:.1f} articles/s (start-up {startup:.1f} s not counted); "
              f"ratio {rates[-1] / base:.2f}")
        rss, pss = stages.pop("peak RSS MiB"), stages.pop("peak PSS MiB")
        peaks.append(rss)
        print("  per article, ms (summed over threads and workers): " + ", ".join(
            f"{k} {v * 1000 / total:.2f}" for k, v in sorted(stages.items())))
        print(f"  the daemon's process tree at its peak (summed over instances): {rss:.0f} MiB "
              f"RSS, {pss:.0f} MiB PSS")
    base, rate = statistics.median(bases), statistics.median(rates)
    ratios = sorted(r / b for r, b in zip(rates, bases, strict=True))
    print(f"median: baseline {base:.1f} pages/s, monitor {rate:.1f} articles/s; ratio "
          f"{rate / base:.2f} (of each run's pair: median {statistics.median(ratios):.2f}, "
          f"{ratios[0]:.2f}-{ratios[-1]:.2f}), target >= 0.80; the process tree's peak RSS "
          f"{max(peaks):.0f} MiB (target < 500); {datetime.now(UTC):%Y-%m-%d}")
    server.terminate()


if __name__ == "__main__":
    main()
