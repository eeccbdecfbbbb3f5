"""Extraction quality and speed on the 181 real pages of shared/corpus/articles.

    .venv/bin/python bench/extract.py [path/to/shared/corpus/articles]

Prints token F1 against the hand-extracted text and pages per second, for monitor's
``extract_text`` beside raw ``trafilatura.extract`` with the same options, and their ratio.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trafilatura

from monitor.extract import extract_text
from monitor.work import DocumentWorkers

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent.parent / "shared" / "corpus" / "articles"


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

    start = time.perf_counter()
    raw = {k: trafilatura.extract(h, url=truth[k]["url"], include_comments=False, fast=True)
           for k, h in pages.items()}
    raw_s = time.perf_counter() - start
    start = time.perf_counter()
    ours: dict[str, str | None] = {k: extract_text(h, truth[k]["url"]) for k, h in pages.items()}
    ours_s = time.perf_counter() - start

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
    print(f"speed ratio monitor/baseline: {raw_s / ours_s:.2f} in-process, "
          f"{raw_s / pooled_s:.2f} with worker processes")


if __name__ == "__main__":
    main()
