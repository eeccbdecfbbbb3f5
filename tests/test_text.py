"""Folding: the short path (one character at a time) and the vectorised tables agree."""

from __future__ import annotations

import random

from monitor import text


def test_short_texts_fold_as_the_tables_fold() -> None:
    """Once the tables are built, headlines and terms take their way too: the same text and
    the same source of each folded character as one character at a time."""
    alphabet = ("aZÉß…’ΣςİﬁǄёЙﻻأإةىـڤ瓦ワ바\u0301\u200b𝐀\U000200001'-ΩmegaΚόσμος ")
    rng = random.Random(1)
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
               for _ in range(5000)]
    text.load_tables()
    for s in samples:
        slow, where = text._fold_slow(s)
        b = text.fold_text(s)
        assert b.text == slow, s
        assert [b.source(i) for i in range(len(b.text))] == where, s
