"""Deduplication on the labelled set (tests/data/dedup_pairs.jsonl, built by
scripts/make_dedup_set.py from the corpus, the seeds and hand-written same-event reports).

Pinned floors, overall and per variant class: precision >= 0.99, recall >= 0.95. A negative class
must not have a single false copy: merging two different articles hides one of them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from monitor.dedup import compare
from monitor.urls import canonical_url

PAIRS = [json.loads(line) for line in
         (Path(__file__).parent / "data" / "dedup_pairs.jsonl").read_text().splitlines()]
PRECISION_FLOOR = 0.99
RECALL_FLOOR = 0.95


def _results() -> dict[str, list[tuple[bool, bool]]]:
    by_class: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for pair in PAIRS:  # "a" was stored first, "b" arrives
        got = compare(pair["b"], pair["a"], 1) is not None
        by_class[pair["class"]].append((pair["copy"], got))
    return by_class


RESULTS = _results()


def test_the_set_is_big_and_varied_enough() -> None:
    copies = [p for p in PAIRS if p["copy"]]
    different = [p for p in PAIRS if not p["copy"]]
    assert len(PAIRS) >= 300 and len(different) >= 100
    assert len({p["class"] for p in copies}) >= 10 and len({p["class"] for p in different}) >= 8


def test_overall_precision_and_recall() -> None:
    tp = sum(1 for rows in RESULTS.values() for want, got in rows if want and got)
    fp = sum(1 for rows in RESULTS.values() for want, got in rows if not want and got)
    fn = sum(1 for rows in RESULTS.values() for want, got in rows if want and not got)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"dedup: precision {precision:.4f} recall {recall:.4f} over {len(PAIRS)} pairs")
    assert precision >= PRECISION_FLOOR and recall >= RECALL_FLOOR


@pytest.mark.parametrize("cls", sorted(c for c, rows in RESULTS.items() if rows[0][0]))
def test_recall_per_copy_class(cls: str) -> None:
    rows = RESULTS[cls]
    recall = sum(got for _, got in rows) / len(rows)
    assert recall >= RECALL_FLOOR, f"{cls}: recall {recall:.3f}"


@pytest.mark.parametrize("cls", sorted(c for c, rows in RESULTS.items() if not rows[0][0]))
def test_no_false_copy_per_negative_class(cls: str) -> None:
    wrong = [i for i, (_, got) in enumerate(RESULTS[cls]) if got]
    assert wrong == [], f"{cls}: pairs {wrong} merged"


def test_verdicts_say_why() -> None:
    by_id = {p["id"]: p for p in PAIRS}
    truncated = compare(by_id["truncated-20-000"]["b"], by_id["truncated-20-000"]["a"], 7)
    assert truncated is not None and truncated.original_id == 7
    assert truncated.reason.startswith("contained") and truncated.score >= 0.7
    longer = compare(by_id["original-after-repost-000"]["b"],
                     by_id["original-after-repost-000"]["a"], 7)
    assert longer is not None and longer.reason.startswith("contains")
    edited = compare(by_id["edited-5pct-000"]["b"], by_id["edited-5pct-000"]["a"], 7)
    assert edited is not None and edited.reason == "near-duplicate"
    same = compare(by_id["typography-000"]["b"], by_id["typography-000"]["a"], 7)
    assert same is not None and same.reason == "same-text"


@pytest.mark.parametrize("a,b", [
    ("https://www.example.org/news/story/?utm_source=rss&utm_medium=feed",
     "http://example.org/news/story"),
    ("https://m.example.org/news/story/amp", "https://example.org/news/story"),
    ("https://amp.example.org/news/story.amp?fbclid=x#top", "https://example.org/news/story"),
    ("https://example.org/a?b=2&a=1", "https://example.org/a?a=1&b=2"),
])
def test_canonical_urls_of_one_article_agree(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


def test_canonical_urls_keep_what_identifies_an_article() -> None:
    assert canonical_url("https://example.org/a?id=1") != canonical_url("https://example.org/a?id=2")
    assert canonical_url("https://example.org/a") != canonical_url("https://example.org/b")


def test_fingerprints_are_the_sampled_blake2b_hashes_of_every_5_gram() -> None:
    """Stored shingles must not change from one release to the next (the copies of articles
    stored before would go unseen): the sampled 64-bit BLAKE2b of each 5-gram of folded words,
    as signed integers, kept when 0 mod ``SAMPLE``; and the hashes of the same text."""
    import hashlib

    from monitor import dedup
    from monitor.text import words

    texts = [pair["a"] for pair in PAIRS[:60]] + [
        "", "one two three four", "Wagner " * 3 + "Барха́н فاغنر l’armée « Mali » 2026 …"]
    for text in texts:
        tokens = words(text)
        hashes = [int.from_bytes(hashlib.blake2b(" ".join(tokens[i:i + 5]).encode(),
                                                 digest_size=8).digest(), "big", signed=True)
                  for i in range(len(tokens) - 4)]
        found = dedup.fingerprint(text)
        assert found.shingles == frozenset(h for h in hashes if h % dedup.SAMPLE == 0)
        assert found.content_hash == (hashlib.sha256(" ".join(tokens).encode()).hexdigest()
                                      if tokens else "")
    assert 256 % dedup.SAMPLE == 0
