"""Scoring story assignment against a labelled set (``tests/data/stories/*.json``): B-cubed
precision, recall and F1, the recall of cross-language pairs, and the hard-negative pairs of
events merged. Used by the test that pins the floors and by ``bench/stories.py``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path

from monitor.match import Matcher
from monitor.stories import assign
from monitor.stories.features import Features, extract


@dataclass(frozen=True)
class Labelled:
    id: str
    event: str
    language: str
    outlet: str
    published: datetime
    title: str
    text: str
    translation_of: str | None


@dataclass(frozen=True)
class LabelledSet:
    articles: list[Labelled]
    hard_negatives: list[tuple[str, str]]  # event pairs, each once


def load(paths: Iterable[Path]) -> LabelledSet:
    articles: list[Labelled] = []
    pairs: set[tuple[str, str]] = set()
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        for event, about in data["events"].items():
            other = about.get("hard_negative_of")
            if other:
                pairs.add((min(event, other), max(event, other)))
        for a in data["articles"]:
            articles.append(Labelled(
                a["id"], a["event"], a["language"], a["outlet"],
                datetime.fromisoformat(a["published"].replace("Z", "+00:00")), a["title"],
                a["text"], a.get("translation_of")))
    return LabelledSet(sorted(articles, key=lambda a: (a.published, a.id)), sorted(pairs))


def featurise(articles: Sequence[Labelled], matcher: Matcher | None = None) -> list[Features]:
    found = []
    for a in articles:
        entities: tuple[str, ...] = ()
        if matcher is not None:
            entities = tuple(t for m in matcher.match(a.title, a.text) for t in m.terms)
        found.append(extract(a.title, a.text, entities))
    return found


def cluster(articles: Sequence[Labelled], features: Sequence[Features],
            weights: assign.Weights) -> list[int]:
    """Each article's story, assigned online in publication order."""
    index = assign.Index(weights)
    story_of: list[int] = []
    for a, f in zip(articles, features, strict=True):
        choice = assign.assign(index, f, a.published)
        if choice.story_id is None:
            story = assign.new_story(len(index) + 1, f, a.published)
        else:
            story = index.stories[choice.story_id]
            story.add(f, a.published)
        index.put(story)
        story_of.append(story.id)
    return story_of


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    cross_language_recall: float
    hard_negatives_merged: list[tuple[str, str]]

    def line(self) -> str:
        return (f"B-cubed P {self.precision:.3f} R {self.recall:.3f} F1 {self.f1:.3f}; "
                f"cross-language pair recall {self.cross_language_recall:.3f}; "
                f"hard-negative pairs merged {len(self.hard_negatives_merged)}")


def scores(labelled: LabelledSet, story_of: Sequence[int]) -> Scores:
    articles = labelled.articles
    by_story: dict[int, list[int]] = defaultdict(list)
    by_event: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(articles):
        by_story[story_of[i]].append(i)
        by_event[a.event].append(i)
    precision = recall = 0.0
    for i, a in enumerate(articles):
        same_story = by_story[story_of[i]]
        correct = sum(1 for j in same_story if articles[j].event == a.event)
        precision += correct / len(same_story)
        recall += correct / len(by_event[a.event])
    precision /= len(articles)
    recall /= len(articles)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cross = together = 0
    for members in by_event.values():
        for i, j in combinations(members, 2):
            if articles[i].language != articles[j].language:
                cross += 1
                together += story_of[i] == story_of[j]
    merged = [(e1, e2) for e1, e2 in labelled.hard_negatives
              if {story_of[i] for i in by_event[e1]} & {story_of[i] for i in by_event[e2]}]
    return Scores(precision, recall, f1, together / cross if cross else 1.0, merged)
