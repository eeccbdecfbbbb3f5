"""Fingerprints and the copy decision. Pure: text in, fingerprint out; candidates in, verdict out.

A copy reuses another article's text: syndicated, re-headlined, edited, truncated or wrapped.

- Exact: the same canonical URL (handled by entry identity) or the same normalised text hash.
- Near: word 5-gram shingles, hashed to 64 bits and sampled by hash value (one in ``SAMPLE``), so
  that every document keeps the same shingles of a shared passage. Storage keeps an inverted index
  of sampled shingles; a lookup counts, per stored article, the shingles it shares with the new
  text. With ``overlap`` shared out of ``a`` and ``b`` sampled shingles:

  * resemblance (Jaccard) = overlap / (a + b - overlap), which catches edited copies;
  * containment = overlap / min(a, b), which catches truncated reposts and wrapped copies in
    either direction (a repost of the first 40% of an article has Jaccard about 0.4 but
    containment about 1.0).

Another outlet's own report of the same event shares names but hardly any 5-gram, and a
translation shares none, so both stay different articles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from monitor.text import words

SHINGLE = 5
SAMPLE = 4  # keep shingles whose hash is 0 mod SAMPLE
MIN_OVERLAP = 4
JACCARD_COPY = 0.5
CONTAINMENT_COPY = 0.7


@dataclass(frozen=True)
class Fingerprint:
    content_hash: str  # sha256 of the folded word sequence; "" for text without words
    shingles: frozenset[int]  # sampled signed 64-bit shingle hashes


@dataclass(frozen=True)
class Candidate:
    article_id: int
    size: int  # sampled shingles of the stored article
    overlap: int  # sampled shingles it shares with the new text


@dataclass(frozen=True)
class Verdict:
    original_id: int
    reason: str  # "same-text", "near-duplicate", "contained", "contains"
    score: float


def _hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big",
                          signed=True)


def fingerprint(text: str) -> Fingerprint:
    tokens = words(text)
    if not tokens:
        return Fingerprint("", frozenset())
    content_hash = hashlib.sha256(" ".join(tokens).encode()).hexdigest()
    shingles = set()
    for i in range(max(len(tokens) - SHINGLE + 1, 0)):
        h = _hash64(" ".join(tokens[i : i + SHINGLE]))
        if h % SAMPLE == 0:
            shingles.add(h)
    return Fingerprint(content_hash, frozenset(shingles))


def decide(size: int, candidates: list[Candidate]) -> Verdict | None:
    """The stored article this text copies, if any: the best-scoring candidate over a threshold."""
    best: Verdict | None = None
    for c in candidates:
        if c.overlap < MIN_OVERLAP or size == 0 or c.size == 0:
            continue
        jaccard = c.overlap / (size + c.size - c.overlap)
        containment = c.overlap / min(size, c.size)
        if jaccard >= JACCARD_COPY:
            verdict = Verdict(c.article_id, "near-duplicate", round(jaccard, 4))
        elif containment >= CONTAINMENT_COPY:
            reason = "contained" if size <= c.size else "contains"
            verdict = Verdict(c.article_id, reason, round(containment, 4))
        else:
            continue
        if best is None or verdict.score > best.score:
            best = verdict
    return best
