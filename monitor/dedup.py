"""Fingerprints and the copy decision. Pure: text in, fingerprint out; candidates in, verdict out.

A copy reuses another article's text: syndicated, re-headlined, edited, truncated or wrapped.

- Exact: the same canonical URL (handled by entry identity) or the same normalised text hash.
- Near: word 5-gram shingles, hashed to 64 bits and sampled by hash value (one in ``SAMPLE``), so
  that every document keeps the same shingles of a shared passage. Storage keeps an inverted index
  of sampled shingles; a lookup counts, per stored article, the shingles it shares with the new
  text, and the best few (``shortlist``) are verified on the full stored text (``verify``).
  With ``overlap`` shared out of ``a`` and ``b`` shingles:

  * resemblance (Jaccard) = overlap / (a + b - overlap), which catches edited copies;
  * containment = overlap / min(a, b), which catches truncated reposts and wrapped copies in
    either direction (a repost of the first 40% of an article has Jaccard about 0.4 but
    containment about 1.0).

Another outlet's own report of the same event shares names but hardly any 5-gram, and a
translation shares none, so both stay different articles.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

from monitor.text import words

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SHINGLE = 5
SAMPLE = 8  # keep shingles whose hash is 0 mod SAMPLE (1/8 recalls as 1/4 did, half the index;
# a power of two up to 256: ``fingerprint`` reads it off the hash's last byte)
MIN_OVERLAP = 2  # sampled shingles shared before a stored article is looked at
SHORTLIST_JACCARD = 0.3
SHORTLIST_CONTAINMENT = 0.4
MIN_SHARED = 10  # 5-grams (about 14 words) a copy shares at least, unless it is that short
JACCARD_COPY = 0.5
CONTAINMENT_COPY = 0.7
CONTAINMENT_WITH_LEAD = 0.6
LEAD_WORDS = 30
LEAD_KEY_WORDS = 15
LEAD_RATIO = 90


@dataclass(frozen=True)
class Fingerprint:
    content_hash: str  # sha256 of the folded word sequence; "" for text without words
    shingles: frozenset[int]  # sampled signed 64-bit shingle hashes
    lead_hash: str = ""  # the first LEAD_KEY_WORDS words: a short truncated repost keeps them


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


def fingerprint(text: str) -> Fingerprint:
    tokens = words(text)
    if not tokens:
        return Fingerprint("", frozenset())
    content_hash = hashlib.sha256(" ".join(tokens).encode()).hexdigest()
    lead_hash = hashlib.sha256(" ".join(tokens[:LEAD_KEY_WORDS]).encode()).hexdigest()[:32] \
        if len(tokens) >= LEAD_KEY_WORDS else ""
    # each 5-gram's 64-bit BLAKE2b as a signed big-endian integer, kept when 0 mod SAMPLE: that
    # is read off the digest's last byte, so only the kept eighth are made integers
    encoded = [token.encode() for token in tokens]
    blake, space = hashlib.blake2b, b" ".join
    digests = [blake(space(encoded[i:i + SHINGLE]), digest_size=8).digest()
               for i in range(max(len(encoded) - SHINGLE + 1, 0))]
    shingles = frozenset(int.from_bytes(d, "big", signed=True) for d in digests
                         if d[7] % SAMPLE == 0)
    return Fingerprint(content_hash, shingles, lead_hash)


def min_overlap(size: int) -> int:
    """Sampled shingles a stored article must share before it is looked at: ``MIN_OVERLAP``,
    or fewer when the new text has fewer (a short repost may keep only one or two)."""
    return max(min(MIN_OVERLAP, size), 1)


def shortlist(size: int, candidates: list[Candidate], limit: int = 5) -> list[Candidate]:
    """Candidates worth verifying: a loose bar on the sampled overlap, best first. Sampling is
    noisy on short texts, so the decision itself is taken on the full texts (``verify``)."""
    scored = []
    for c in candidates:
        if c.overlap < min_overlap(size) or size == 0 or c.size == 0:
            continue
        jaccard = c.overlap / (size + c.size - c.overlap)
        containment = c.overlap / min(size, c.size)
        if jaccard >= SHORTLIST_JACCARD or containment >= SHORTLIST_CONTAINMENT:
            scored.append((max(jaccard, containment), c))
    scored.sort(key=lambda sc: (-sc[0], sc[1].article_id))
    return [c for _, c in scored[:limit]]


_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 1)


def shingles(text: str) -> npt.NDArray[np.uint64]:
    """Every word 5-gram of the text, hashed (unsampled), sorted and unique: for verification,
    which compares two such arrays made in the same process, so each word is hashed once with
    Python's own string hash and its 5-grams are mixed from those in one vectorised pass (no
    string per 5-gram)."""
    return _hashed(words(text))


def _hashed(tokens: list[str]) -> npt.NDArray[np.uint64]:
    import numpy as np

    n = len(tokens) - SHINGLE + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    h = np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)
    with np.errstate(over="ignore"):
        mixed = h[:n] * np.uint64(_MIX[0])
        for k in range(1, SHINGLE):
            mixed = (mixed ^ (mixed >> np.uint64(29))) + h[k:k + n] * np.uint64(_MIX[k])
    return np.unique(mixed)


def lead(text: str, count: int = LEAD_WORDS) -> str:
    return " ".join(words(text)[:count])


@dataclass(frozen=True)
class Sketch:
    """What verification needs of a text: its 5-grams and its lead."""

    shingles: npt.NDArray[np.uint64]
    lead: str


def sketch(text: str) -> Sketch:
    tokens = words(text)
    return Sketch(_hashed(tokens), " ".join(tokens[:LEAD_WORDS]))


# The sketches of the new texts verified lately: a new text is verified against several stored
# ones in a row, and once stored it is the one its own copies are verified against.
_NEW: OrderedDict[str, Sketch] = OrderedDict()
_NEW_KEPT = 32  # (entry threads verify at once: room for each until it is stored, mostly)
_NEW_LOCK = threading.Lock()


def _new_sketch(text: str) -> Sketch:
    with _NEW_LOCK:
        found = _NEW.get(text)
    if found is None:
        found = sketch(text)
        with _NEW_LOCK:
            _NEW[text] = found
            while len(_NEW) > _NEW_KEPT:
                _NEW.popitem(last=False)
    return found


def verified_sketch(text: str) -> Sketch | None:
    """The sketch of a text verified lately (against any stored text), else None."""
    with _NEW_LOCK:
        return _NEW.get(text)


def verify(new_text: str, stored_text: str, stored_id: int,
           stored: Sketch | None = None) -> Verdict | None:
    """Decide on the full texts whether the new one copies the stored one.

    A copy shares most of its 5-grams with the original: resemblance (Jaccard) >= 0.5 for
    edited copies, or containment >= 0.7 of the shorter in the longer, in either direction, for
    truncated and wrapped ones; at least ``MIN_SHARED`` 5-grams either way. Just under the
    containment bar, an identical lead (the first words, compared with rapidfuzz) tips the
    balance: supporting evidence only, never enough alone.
    """
    stored = stored or sketch(stored_text)
    new = _new_sketch(new_text)
    a, b = new.shingles, stored.shingles
    if not len(a) or not len(b):
        return None
    import numpy as np

    shared = int(np.intersect1d(a, b, assume_unique=True).size)
    if shared < min(MIN_SHARED, len(a), len(b)):
        return None
    jaccard = shared / (len(a) + len(b) - shared)
    containment = shared / min(len(a), len(b))
    if jaccard >= JACCARD_COPY:
        return Verdict(stored_id, "near-duplicate", round(jaccard, 4))
    reason = "contained" if len(a) <= len(b) else "contains"
    if containment >= CONTAINMENT_COPY:
        return Verdict(stored_id, reason, round(containment, 4))
    if containment >= CONTAINMENT_WITH_LEAD and \
            fuzz.ratio(new.lead, stored.lead) >= LEAD_RATIO:
        return Verdict(stored_id, f"{reason}+lead", round(containment, 4))
    return None


def verify_sampled(new: frozenset[int], stored: frozenset[int],
                   stored_id: int) -> Verdict | None:
    """The decision against an article whose text was pruned (retention): the same bars on the
    sampled shingles its fingerprint kept, which estimate the full ones (noisier on short
    texts, so at least 3 must be shared: a short copy of a pruned article may be missed)."""
    shared = len(new & stored)
    if shared < 3:  # one or two shared samples say nothing: a stock phrase, a quote
        return None
    jaccard = shared / len(new | stored)
    containment = shared / min(len(new), len(stored))
    if jaccard >= JACCARD_COPY:
        return Verdict(stored_id, "near-duplicate", round(jaccard, 4))
    if containment >= CONTAINMENT_COPY:
        return Verdict(stored_id, "contained" if len(new) <= len(stored) else "contains",
                       round(containment, 4))
    return None


def compare(new_text: str, stored_text: str, stored_id: int = 0) -> Verdict | None:
    """The whole decision for one stored article, as the pipeline takes it: same normalised
    text, else a sampled-overlap shortlist, then verification on the full texts."""
    new, stored = fingerprint(new_text), fingerprint(stored_text)
    if new.content_hash and new.content_hash == stored.content_hash:
        return Verdict(stored_id, "same-text", 1.0)
    overlap = len(new.shingles & stored.shingles)
    same_lead = bool(new.lead_hash) and new.lead_hash == stored.lead_hash
    if not same_lead and not shortlist(len(new.shingles),
                                       [Candidate(stored_id, len(stored.shingles), overlap)]):
        return None
    return verify(new_text, stored_text, stored_id)
