"""The seed corpus: documents already known. Loaded at start-up; a copy of a seed is linked to
it as "already known" and never alerted."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from monitor.dedup import fingerprint
from monitor.store import articles
from monitor.store.tables import Article
from monitor.stories.features import Features
from monitor.stories.keeper import Stories
from monitor.text import clean

log = logging.getLogger(__name__)
SEED_SUFFIXES = {".txt", ".md", ".text"}
MAX_SEED_BYTES = 5_000_000


def seed_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()
                                and p.suffix.lower() in SEED_SUFFIXES))
        elif path.is_file():
            files.append(path)
    return files


def load_seeds(sessions: sessionmaker[Session], paths: Iterable[Path], now: datetime,
               stories: Stories | None = None,
               describe: Callable[[str, str, tuple[str, ...]], Features | None] | None = None,
               ) -> int:
    """Store every seed not stored yet (by content hash), each in a story; return how many
    were added."""
    added = 0
    with sessions.begin() as session:
        known = articles.seed_hashes(session)
    for path in seed_files(paths):
        raw = path.read_bytes()[:MAX_SEED_BYTES].decode("utf-8", "replace")
        text = clean(raw, MAX_SEED_BYTES)
        fp = fingerprint(text)
        if not fp.content_hash or fp.content_hash in known:
            continue
        title = next((line.strip() for line in text.splitlines() if line.strip()), path.name)
        title = clean(title, 300, single_line=True)
        features = describe(title, text, ()) if describe is not None else None
        with sessions.begin() as session:
            articles.lock_for_dedup(session)
            article_id = articles.insert_article(session, Article(
                title=title, outlet="seed corpus", text=text,
                text_source="seed", content_hash=fp.content_hash,
                lead_hash=fp.lead_hash or None,
                shingle_count=len(fp.shingles), created_at=now, is_seed=True,
                seed_path=str(path)[:1024], guid="", link="",
            ), fp.shingles)
            if stories is not None:
                stories.place(session, article_id, title, features, now, now)
        known.add(fp.content_hash)
        added += 1
    if added:
        log.info("seeds loaded: %d new seed documents", added)
    return added
