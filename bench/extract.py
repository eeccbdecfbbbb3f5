"""Extraction quality and speed on the 181 real pages of shared/corpus/articles.

    .venv/bin/python bench/extract.py [path/to/shared/corpus/articles]

Prints token F1 against the hand-extracted text and pages per second, for monitor's
``extract_text`` beside ``trafilatura.extract`` as shipped with the same options (medians of 5
alternating passes), and their ratio.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trafilatura

from monitor.extract import extract_text, trafilatura_as_shipped
from monitor.work import DocumentWorkers

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent.parent / "shared" / "corpus" / "articles"
REPEAT = 5


def tokens(text: str | None) -> Counter[str]:
    return Counter(re.findall(r"\w+", (text or "").lower()))


def f1(got: str | None, want: str) -> float:
    a, b = tokens(got), tokens(want)
    common = sum((a & b).values())
    if not common:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    truth = json.loads((folder / "ground-truth.json").read_text())
    pages = {k: gzip.decompress((folder / "html" / f"{k}.html.gz").read_bytes()) for k in truth}
    print(f"cores: {os.cpu_count()}, pages: {len(pages)}")

    # trafilatura as shipped against monitor's extract_text (its element lookup in C and its
    # XPath stand-ins), in alternating passes: this machine's speed drifts
    raw: dict[str, str | None] = {}
    ours: dict[str, str | None] = {}
    raw_times, our_times = [], []
    for _ in range(REPEAT):
        with trafilatura_as_shipped():
            start = time.perf_counter()
            raw = {k: trafilatura.extract(h, url=truth[k]["url"], include_comments=False,
                                          fast=True) for k, h in pages.items()}
            raw_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours = {k: extract_text(h, truth[k]["url"]) for k, h in pages.items()}
        our_times.append(time.perf_counter() - start)
    raw_s, ours_s = statistics.median(raw_times), statistics.median(our_times)
    ratios = sorted(r / o for r, o in zip(raw_times, our_times, strict=True))

    # As the daemon runs it: in worker processes (one per core), fed by threads.
    workers = DocumentWorkers(processes=0, timeout=20, memory_mib=768)
    workers.extract(b"<html><body><p>warm up</p></body></html>", "http://x.example/")
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        texts = pool.map(lambda k: workers.extract(pages[k], truth[k]["url"]), list(pages))
        pooled: dict[str, str | None] = dict(zip(list(pages), texts, strict=True))
    pooled_s = time.perf_counter() - start
    workers.close()

    def score(out: dict[str, str | None]) -> float:
        return sum(f1(out[k], truth[k]["articleBody"]) for k in truth) / len(truth)

    print(f"trafilatura.extract : F1 {score(raw):.4f}  {len(pages) / raw_s:7.1f} pages/s")
    print(f"monitor extract_text: F1 {score(ours):.4f}  {len(pages) / ours_s:7.1f} pages/s")
    print(f"monitor workers x{workers.processes}: F1 {score(pooled):.4f}  "
          f"{len(pages) / pooled_s:7.1f} pages/s")
    print(f"speed ratio monitor/baseline: {statistics.median(ratios):.2f} in-process (median of "
          f"{REPEAT} alternating passes, {ratios[0]:.2f}-{ratios[-1]:.2f}), "
          f"{raw_s / pooled_s:.2f} with worker processes")


if __name__ == "__main__":
    main()
