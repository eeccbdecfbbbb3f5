"""Stories: what language detection, the sentence vector, names and assignment cost per article,
and the assignment latency with many stored articles in the window.

    python bench/stories.py [N]      # N articles in the window (default 100,000)

1. Features, per article, on the labelled set's 180-odd titles and leads in four languages
   (tests/data/stories): language (fastText lite), sentence vector (USE multilingual), places
   and figures; median of 5 passes with the spread. The baseline, measured in the same run, is
   the page extraction the pipeline does anyway (trafilatura on the 181 corpus pages when
   ../shared is there, else skipped).
2. Assignment: an index of the stories of N articles spread over four days (events of 1 to 8
   reports, with as many singletons as stories of several), each new article assigned against
   it: p50/p99 latency, beside the sentence vector's own median, and the memory of the vectors.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from monitor.stories import assign
from monitor.stories.evaluate import load
from monitor.stories.features import Features, embed, extract, figures, language, places, weekdays

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "articles"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ms ({min(values):.3f}–{max(values):.3f})"


def per_article(label: str, texts: list[tuple[str, str]],
                function: Callable[[str, str], object], passes: int = 5) -> float:
    runs = []
    for _ in range(passes):
        started = time.perf_counter()
        for title, text in texts:
            function(title, text)
        runs.append((time.perf_counter() - started) * 1000 / len(texts))
    print(f"  {label:<34} {spread(runs)} per article")
    return statistics.median(runs)


def features_cost() -> float:
    data = load(sorted((ROOT / "tests" / "data" / "stories").glob("*.json")))
    texts = [(a.title, a.text) for a in data.articles]
    print(f"features, {len(texts)} labelled articles (en/fr/ru/ar), median of 5 (min–max):")
    extract("warm", "up the models")
    per_article("language", texts, lambda t, x: language(f"{t}\n{x}"))
    vector = per_article("sentence vector", texts, lambda t, x: embed([f"{t}. {x[:400]}"]))
    per_article("places", texts, lambda t, x: places(f"{t}. {x[:400]}"))
    per_article("figures + weekdays", texts,
                lambda t, x: (figures(x[:400]), weekdays(x[:400])))
    total = per_article("all features (extract)", texts, extract)
    if CORPUS.is_dir():
        import gzip

        from monitor.extract import extract_text

        pages = [(gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes(),
                  p.name) for p in sorted((CORPUS / "html").glob("*"))]
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for html, name in pages:
                extract_text(html, f"http://example.org/{name}")
            runs.append((time.perf_counter() - started) * 1000 / len(pages))
        print(f"  {'baseline: page extraction':<34} {spread(runs)} per page "
              f"({len(pages)} corpus pages)")
        print(f"  features / extraction: {total / statistics.median(runs):.2f}")
    else:
        print("  (baseline skipped: ../shared/corpus/articles is not there)")
    return vector


def assignment_cost(n: int, vector_ms: float) -> None:
    rng = np.random.default_rng(7)
    start = datetime(2026, 7, 1, tzinfo=UTC)
    index = assign.Index()
    made = 0
    story_id = 0
    while made < n:
        story_id += 1
        size = 1 if rng.random() < 0.5 else int(rng.integers(2, 9))
        centre = rng.standard_normal(assign.DIMENSIONS).astype(np.float32)
        when = start + timedelta(seconds=float(rng.uniform(0, 4 * 86400)))
        story = None
        for _ in range(size):
            v = centre + 0.6 * rng.standard_normal(assign.DIMENSIONS).astype(np.float32)
            f = Features("en", (v / np.linalg.norm(v)).astype(np.float32).tobytes(),
                         (f"#place{story_id % 500}",), (), ())
            if story is None:
                story = assign.new_story(story_id, f, when)
            else:
                story.add(f, when)
            made += 1
        assert story is not None
        index.put(story)
    print(f"\nassignment: {n:,} articles in the window, {len(index):,} stories")
    queries = []
    for _ in range(2000):
        v = rng.standard_normal(assign.DIMENSIONS).astype(np.float32)
        queries.append(Features("fr", (v / np.linalg.norm(v)).astype(np.float32).tobytes(),
                                ("#place1",), ("12",), (1,)))
    random.seed(1)
    latencies = []
    for f in queries:
        started = time.perf_counter()
        assign.assign(index, f, start + timedelta(days=2))
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    print(f"  assign p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p99 <= 5 ms on top of the "
          f"vector); the vector itself {vector_ms:.2f} ms: p99 / vector {p99 / vector_ms:.2f}")
    held = index._matrix.nbytes + sum(s.total.nbytes for s in index.stories.values())
    print(f"  vectors held: {held / 2**20:.0f} MiB ({len(index):,} centroids and sums)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    vector_ms = features_cost()
    assignment_cost(n, vector_ms)


if __name__ == "__main__":
    main()
