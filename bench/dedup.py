"""Deduplication at scale: index N distinct articles, then look up copies and new articles.

    python bench/dedup.py [N] [DATABASE_URL]     # default 1,000,000 and a SQLite file in /tmp

BENCH_RUNS (default 3) fresh processes answer the lookups, one after another; each prints its
figures, and the last lines give the median and range of their p50 and p99 (target: copies p99
<= 5 ms at 1,000,000).

Two phases: this process generates and indexes the articles and writes the lookup queries (copies
of indexed articles, and new articles) to a file; then a fresh process opens the index and answers
them, so its start-up time and resident memory are the index's alone.

Articles are real sentences from ../shared/corpus/articles recombined, with half of their words
replaced from a large random vocabulary, so that they are distinct and do not flood the same
index entries. The index is the monitor's own: the ``shingles`` table (sampled word 5-grams) and
``copy_verdict``: one ``articles.look_up`` statement (same text, same lead, the shingle candidates),
then ``shortlist`` + ``verify`` on the stored text, as the pipeline runs them.
Prints insert rate, lookup p50/p99 for copies and for new articles, recall on the copies,
resident memory, start-up time, and brute-force rapidfuzz on the same data as a ratio.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rapidfuzz import fuzz, process
from sqlalchemy import insert

from monitor import dedup
from monitor.pipeline import copy_verdict
from monitor.store import articles
from monitor.store.db import open_database
from monitor.store.tables import Article, Shingle

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus" / "articles" / "ground-truth.json"
BATCH = 5000
LOOKUPS = 2000


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_articles(n: int, rng: random.Random) -> list[str]:
    bodies = [v["articleBody"] for v in json.loads(CORPUS.read_text()).values()]
    sentences = [s.split() for b in bodies for s in re.split(r"(?<=[.!?])\s+", b)
                 if 8 <= len(s.split()) <= 40]
    syllables = ["ka", "lo", "mi", "ser", "tan", "vu", "dre", "po", "ni", "gal", "ur", "bex"]
    vocabulary = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(60_000)]
    out = []
    for _ in range(n):
        words: list[str] = []
        for sentence in rng.sample(sentences, 6):
            words.extend(w if rng.random() > 0.5 else rng.choice(vocabulary) for w in sentence)
        out.append(" ".join(words))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:////tmp/monitor-bench-dedup-{n}.db"
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    rng = random.Random(1)
    print(f"cores: {os.cpu_count()}, articles: {n:,}, database: {url.split('?')[0]}")

    started = time.perf_counter()
    texts = make_articles(n, rng)
    print(f"generated in {time.perf_counter() - started:.0f}s "
          f"(median {statistics.median(len(t.split()) for t in texts[:1000]):.0f} words)")

    engine, _ = open_database(url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    postings = 0
    next_id = 1
    for start in range(0, n, BATCH):
        with engine.begin() as conn:
            rows: list[dict[str, object]] = []
            shingle_rows: list[dict[str, int]] = []
            for text in texts[start : start + BATCH]:
                fp = dedup.fingerprint(text)
                rows.append({"id": next_id, "text": text, "text_source": "page",
                             "content_hash": fp.content_hash, "lead_hash": fp.lead_hash,
                             "shingle_count": len(fp.shingles),
                             "created_at": now, "is_seed": False, "guid": "", "link": "",
                             "title": "", "outlet": ""})
                shingle_rows.extend({"hash": h, "article_id": next_id} for h in fp.shingles)
                next_id += 1
            conn.execute(insert(Article), rows)
            conn.execute(insert(Shingle), shingle_rows)
            postings += len(shingle_rows)
    insert_s = time.perf_counter() - started
    print(f"insert: {n / insert_s:,.0f} articles/s ({postings:,} index entries, "
          f"{postings / n:.1f} per article), {insert_s:.0f}s")
    engine.dispose()

    picks = rng.sample(range(n), LOOKUPS)
    copies = []
    for i, k in enumerate(picks):
        words = texts[k].split()
        if i % 2:
            copies.append((k + 1, " ".join(words[: len(words) * 2 // 5]) + " Read more."))
        else:
            for _ in range(len(words) // 20):
                words[rng.randrange(len(words))] = "edited"
            copies.append((k + 1, " ".join(words)))
    fresh = make_articles(LOOKUPS, random.Random(2))
    queries = Path(f"/tmp/monitor-bench-dedup-{n}.queries.json")
    queries.write_text(json.dumps({"copies": copies, "fresh": fresh}))
    results = []
    for run in range(int(os.environ.get("BENCH_RUNS", "3"))):
        print(f"-- lookup run {run + 1}")
        subprocess.run([sys.executable, __file__, "--lookups", url, str(queries)], check=True)
        results.append(json.loads(queries.with_suffix(".result").read_text()))

    # brute force: rapidfuzz over every stored text, a few queries
    sample = copies[:3]
    t = time.perf_counter()
    for _, text in sample:
        process.extractOne(text, texts, scorer=fuzz.token_set_ratio, score_cutoff=90)
    brute_ms = (time.perf_counter() - t) * 1000 / len(sample)
    index_ms = statistics.median(r["p50"] for r in results)
    print(f"brute-force rapidfuzz token_set_ratio over {n:,}: {brute_ms:,.0f} ms per lookup; "
          f"the index's p50 is {brute_ms / index_ms:,.0f}x faster")
    for key, name in (("p50", "copies p50"), ("p99", "copies p99"), ("fresh_p99", "new p99")):
        values = [r[key] for r in results]
        print(f"{name} over {len(values)} runs: median {statistics.median(values):.2f} ms "
              f"({min(values):.2f}-{max(values):.2f})")


def lookups(url: str, queries_path: str) -> None:
    """Phase two, in a fresh process: open the index, answer the queries."""
    started = time.perf_counter()
    queries = json.loads(Path(queries_path).read_text())
    engine, sessions = open_database(url)
    with sessions() as session:
        articles.copy_candidates(session, dedup.fingerprint(queries["fresh"][0]).shingles, 1)
    print(f"start-up (open the index, first lookup): {time.perf_counter() - started:.2f}s")

    def lookup(text: str) -> dedup.Verdict | None:
        with sessions() as session:  # exactly what the pipeline does for a new article
            return copy_verdict(session, text, dedup.fingerprint(text))

    copies, fresh = queries["copies"], queries["fresh"]
    timings, found = [], 0
    for article_id, text in copies:
        t = time.perf_counter()
        verdict = lookup(text)
        timings.append((time.perf_counter() - t) * 1000)
        found += verdict is not None and verdict.original_id == article_id
    fresh_timings, merged = [], 0
    for text in fresh:
        t = time.perf_counter()
        merged += lookup(text) is not None
        fresh_timings.append((time.perf_counter() - t) * 1000)

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(int(len(values) * q), len(values) - 1)]

    print(f"lookup, copies (40% truncations, 5% edits): p50 {pct(timings, 0.5):.2f} ms, "
          f"p99 {pct(timings, 0.99):.2f} ms, recall {found / len(copies):.4f}")
    print(f"lookup, new articles: p50 {pct(fresh_timings, 0.5):.2f} ms, "
          f"p99 {pct(fresh_timings, 0.99):.2f} ms, wrongly merged {merged}")
    print(f"resident memory of the looking-up process: {rss_mib():.0f} MiB")
    Path(queries_path).with_suffix(".result").write_text(json.dumps({
        "p50": pct(timings, 0.5), "p99": pct(timings, 0.99),
        "fresh_p99": pct(fresh_timings, 0.99)}))
    engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--lookups":
        lookups(sys.argv[2], sys.argv[3])
    else:
        main()
