"""Polling many feeds: one cycle over N feeds spread over many loopback addresses (127.0.0.0/8).

    python bench/polling.py [--feeds 10000] [--db sqlite|postgresql+psycopg://...]

Cycle 1: every feed answers 200 with 20 items (first sight: the entries are stored, pages not
fetched). Cycle 2: every feed answers 304 to its ETag (target: <= 20 s for 10,000 feeds).
Cycle 3: every feed answers 200 again, without validators, with the same 20 items, all seen.
The feeds are served by a separate process, so the server's work is not the monitor's. Prints
the machine's core count, each cycle's seconds and feeds per second, and resident memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import config  # noqa: E402
from monitor.service import Service  # noqa: E402


def feed(n: int, items: int = 20) -> bytes:
    entries = "".join(
        f"<item><title>Item {k} of feed {n}</title><link>http://news.example/{n}/{k}</link>"
        f"<guid>urn:{n}:{k}</guid><description>Summary {k} of feed {n}.</description>"
        f"<pubDate>Mon, 15 Nov 2021 10:{k:02d}:00 GMT</pubDate></item>" for k in range(items))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
            f"<link>http://news.example/{n}</link><description>x</description>{entries}"
            "</channel></rss>").encode()


ITEMS: Any = None


def serve(port: int, mode: Any, items: Any) -> None:
    global ITEMS
    ITEMS = items
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            n = int(self.path.rsplit("/", 1)[1].split(".")[0])
            etag = f'"{n}"'
            if mode.value == 1 and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = feed(n, ITEMS.value)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            if mode.value == 0:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    Server(("0.0.0.0", port), Handler).serve_forever()


PER_ADDRESS = 20


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
    mode = multiprocessing.Value("i", 0)
    items = multiprocessing.Value("i", args.items)
    server = multiprocessing.Process(target=serve, args=(port, mode, items), daemon=True)
    server.start()
    time.sleep(0.5)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db" if args.db == "sqlite" else args.db
        lines = [f'[storage]\nurl = "{url}"', "[seeds]\npaths = []",
                 f"[fetch]\nallow_private_addresses = true\nworkers = {args.workers}\n"
                 "fetch_pages = false\ntimeout = 30",
                 '[[watchlists]]\nname = "b"\nterms = ["Wagner"]\nchannels = []']
        lines += [f'[[feeds]]\nurl = "http://{address(n)}:{port}/feed/{n}.xml"'
                  for n in range(args.feeds)]
        cfg = Path(tmp) / "monitor.toml"
        cfg.write_text("\n".join(lines) + "\n")
        settings = config.load(cfg)
        started = time.perf_counter()
        service = Service(settings)
        service.prepare()
        print(f"{os.cpu_count()} cores; {args.feeds} feeds on {-(-args.feeds // PER_ADDRESS)} loopback "
              f"addresses; {args.db}; fetch.workers {args.workers}; start-up and feeds table "
              f"{time.perf_counter() - started:.1f} s")
        try:
            for label, value in ((f"200, {args.items} new items each", 0), ("304", 1),
                                 (f"200, {args.items} seen items each", 2)):
                mode.value = value
                started = time.perf_counter()
                results = service.poll(ignore_schedule=True)
                seconds = time.perf_counter() - started
                failed = [r for r in results if r.status == "failed"]
                print(f"cycle {label}: {seconds:.1f} s, {len(results) / seconds:.0f} feeds/s, "
                      f"{len(failed)} failed" + (f" (first: {failed[0].error})" if failed
                                                 else "")
                      + ("   target <= 20 s for 10,000" if value == 1 else ""))
        finally:
            service.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the monitor process: {rss:.0f} MiB; {datetime.now(UTC):%Y-%m-%d}")
    server.terminate()


if __name__ == "__main__":
    main()
