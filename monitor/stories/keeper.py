"""The daemon's side of stories: it holds the active stories in memory and places each stored
article in one, inside the article's own transaction (under the story lock), so the choice is
stored with the article or not at all, and several instances see each other's stories.

The index takes only committed stories: those read back by the catch-up at the next placing,
or, sooner and without reading back what this process wrote, the story a placing changed, once
its transaction has committed (``committed``), when no other change came between."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.store import stories as store
from monitor.stories import assign
from monitor.stories.features import Features

PRUNE_EVERY = timedelta(hours=1)
NO_FEATURES = Features(None, b"", (), (), ())
_PLACED = "monitor.stories.placed"  # Session.info key: (keeper, version, story) to commit


class Stories:
    def __init__(self, weights: assign.Weights | None = None) -> None:
        self.index = assign.Index(weights)
        self._seen = 0  # the newest story version, as of the last catch-up
        self._newest: datetime | None = None
        self._lock = threading.Lock()

    def place(self, session: Session, article_id: int, title: str, features: Features | None,
              when: datetime, now: datetime, original: int | None = None) -> int:
        """Put a just-inserted article in a story: its original's (a copy), the best active
        story the decider picks, or a new one; the story's id."""
        features = features or NO_FEATURES
        with self._lock:
            horizon = 2 * self.index.weights.window
            self._seen = store.catch_up(session, self.index, self._seen, horizon)
            self._forget_old(when)
            version = self._seen + 1  # caught up under the story lock: the next change
            joined = store.story_of(session, original) if original is not None else None
            story = self.index.stories.get(joined) if joined is not None else None
            if joined is not None and story is None:  # a story gone quiet: read it back
                story = store.load(session, joined)
            if story is not None:
                story = _copy(story)
                story.first, story.last = min(story.first, when), max(story.last, when)
                if features.language:
                    story.languages.add(features.language)
                store.save(session, story, version)
                store.place(session, article_id, story.id, features.language, [])
                session.info[_PLACED] = (self, version, story)
                return story.id
            choice = assign.assign(self.index, features, when)
            if choice.story_id is not None:
                story = _copy(self.index.stories[choice.story_id])
                story.add(features, when)
                store.save(session, story, version)
            else:
                story = assign.new_story(0, features, when)
                story.id = store.create(session, story, title, version, now)
            store.place(session, article_id, story.id, features.language,
                        [[float(i), s] for i, s in choice.nearest])
            session.info[_PLACED] = (self, version, story)
            return story.id

    def committed(self, info: dict[Any, Any]) -> None:
        """The transaction whose ``Session.info`` this is has committed: the story its placing
        changed goes into the index as stored, unless another change came first (the catch-up
        then reads it back)."""
        placed = info.pop(_PLACED, None)
        if placed is None:
            return
        keeper, version, story = placed
        if keeper is not self:
            return
        rows = assign.Index.rows(story)  # before the lock the next placing waits for
        with self._lock:
            if self._seen == version - 1:
                self.index.put(story, rows)
                self._seen = version

    def _forget_old(self, when: datetime) -> None:
        """Drop the stories too old to take anything (at most once an hour of article time: a
        drop rebuilds the matrix)."""
        if self._newest is None or when - self._newest > PRUNE_EVERY:
            self._newest = when
            self.index.drop_before(when - 2 * self.index.weights.window)


def _copy(story: assign.Story) -> assign.Story:
    """A story to change and write back; the index keeps the committed one."""
    return assign.Story(story.id, np.array(story.total, dtype=np.float32), story.count,
                        story.first, story.last, set(story.languages), story.names.copy(),
                        set(story.figures), set(story.days))
