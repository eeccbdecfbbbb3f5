"""Folding: the short path (one character at a time) and the vectorised tables agree."""

from __future__ import annotations

import random

import pytest

from monitor import text


def test_short_texts_fold_as_the_tables_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    alphabet = ("aZÉß…’ΣςİﬁǄёЙﻻأإةىـڤ瓦ワ바\u0301\u200b𝐀\U000200001'-ΩmegaΚόσμος ")
    rng = random.Random(1)
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
               for _ in range(5000)]
    short = [text.fold_text(s) for s in samples]
    monkeypatch.setattr(text, "SHORT", -1)  # every text through the tables
    for s, a in zip(samples, short, strict=True):
        b = text.fold_text(s)
        assert a.text == b.text, s
        assert [a.source(i) for i in range(len(a.text))] == \
            [b.source(i) for i in range(len(b.text))], s
