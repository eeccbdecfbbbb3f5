"""Matching speed: 1,000 entities with aliases in three scripts over 10 MB of real article text.

    python bench/match.py [--mb 10] [--entities 1000] [--repeat 7]

Prints, on one core:
- normalisation plus exact matching (folding both fields and one Aho-Corasick pass that finds
  every alias of every entity, each place confirmed by its pattern): MB/s, target >= 30, as
  the median (and range) of ``--repeat`` timings, each beside a timing of the folding alone
  taken right after it, the baseline that shows how fast the machine was at that moment;
- the per-article cost of the stages that only some watchlists have: fuzzy names (every entity
  fuzzy), proximity rules (100 NEAR rules) and context guards;
- for scale, one compiled regular-expression alternation of the same aliases over 1 MB.

The text is the hand-extracted bodies of the 181 real pages of ../shared/corpus/articles, one
article per body, repeated to the size asked, with mentions of the watched names sown in.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import re
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.match import Entity, Guard, Matcher, Rule, Term, Watchlist, _Text  # noqa: E402
from monitor.text import fold_text, load_tables  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "articles" / "ground-truth.json"
CYRILLIC = dict(zip("abcdefghijklmnopqrstuvwxyz", "абкдефгхийклмнопкрстуввхыз", strict=True))
ARABIC = dict(zip("abcdefghijklmnopqrstuvwxyz", "ابكدافغهيجكلمنوبقرستوفوكيز", strict=True))


def _transliterate(word: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in word.lower())


def entities(count: int, rnd: random.Random, vocabulary: list[str]) -> list[Entity]:
    """``count`` people and organisations: a two-word name, its surname alone, and the name in
    Cyrillic and Arabic letters; half are made of real proper nouns of the corpus."""
    out = []
    for i in range(count):
        first, last = rnd.sample(vocabulary, 2) if i % 2 else (
            "".join(rnd.choices("bcdfgklmnprstvz", k=1)) + "".join(rnd.choices("aeiou", k=1))
            + "".join(rnd.choices("bcdfgklmnprstvz", k=1)) + "a",
            "".join(rnd.choices("bdgkmnrstvz", k=1)) + "o" + "".join(
                rnd.choices("bcdfgklmnprstvz", k=3)) + "ov")
        out.append(Entity(f"{first} {last}", (
            Term(f"{first} {last}"), Term(last), Term(_transliterate(f"{first} {last}", CYRILLIC)),
            Term(_transliterate(last, ARABIC)))))
    return out


def documents(mb: float, names: list[str], rnd: random.Random) -> list[tuple[str, str]]:
    bodies = [v["articleBody"] for v in json.loads(CORPUS.read_text()).values()]
    docs = []
    size = 0
    while size < mb * 1_000_000:
        body = rnd.choice(bodies)
        words = body.split(" ")
        for _ in range(3):  # sow a few mentions, in any script
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(names))
        text = " ".join(words)
        title = " ".join(words[:10])
        docs.append((title, text))
        size += len(text.encode()) + len(title.encode())
    return docs


def timed(fn: object, *args: object) -> float:
    gc.collect()
    gc.disable()  # collections triggered by earlier allocations are not this stage's cost
    try:
        start = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        return time.perf_counter() - start
    finally:
        gc.enable()


def _spread(values: list[float], form: str) -> str:
    return (f"{statistics.median(values):{form}} ({min(values):{form}}-{max(values):{form}})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rnd = random.Random(7)
    corpus = CORPUS.read_text()
    # proper nouns of the corpus: capitalised words it never writes in lower case
    lower = set(re.findall(r"\b[a-z]{5,10}\b", corpus))
    vocabulary = sorted({w for w in re.findall(r"\b[A-Z][a-z]{4,9}\b", corpus)
                         if w.lower() not in lower})
    ents = entities(args.entities, rnd, vocabulary)
    aliases = [a.text for e in ents for a in e.aliases]
    docs = documents(args.mb, aliases, rnd)
    total_mb = sum(len(t.encode()) + len(b.encode()) for t, b in docs) / 1e6
    print(f"{len(ents)} entities, {len(aliases)} aliases; {len(docs)} articles, "
          f"{total_mb:.1f} MB of text (UTF-8); one core")

    load_tables()  # before timing (the workers' fork server builds them at start)
    started = time.perf_counter()
    exact = Matcher([Watchlist("bench", entities=tuple(ents))])
    print(f"compile: {time.perf_counter() - started:.2f} s")

    def scan(matcher: Matcher) -> None:
        for title, body in docs:
            _Text(matcher, title, body)

    def fold_only() -> None:
        for title, body in docs:
            fold_text(title)
            fold_text(body)

    rates, fold_rates = [], []
    for _ in range(args.repeat):  # alternately, so a drift in machine speed touches both
        rates.append(total_mb / timed(scan, exact))
        fold_rates.append(total_mb / timed(fold_only))
    ratios = [r / f for r, f in zip(rates, fold_rates, strict=True)]
    print(f"normalisation + exact matching: {_spread(rates, '.1f')} MB/s  target >= 30")
    print(f"  baseline, folding alone: {_spread(fold_rates, '.0f')} MB/s; matching / folding "
          f"{_spread(ratios, '.2f')}  (median, range; {args.repeat} runs)")

    def full(matcher: Matcher) -> None:
        for title, body in docs:
            matcher.match(title, body)

    base = timed(full, exact)
    n = len(docs)
    print(f"match() per article, exact entities: {base / n * 1000:.2f} ms")
    fuzzy = Matcher([Watchlist("bench", entities=tuple(
        Entity(e.name, tuple(Term(a.text, fuzzy=True) for a in e.aliases)) for e in ents))])
    t = timed(full, fuzzy)
    print(f"  + fuzzy names (all {len(ents)} entities fuzzy): +{(t - base) / n * 1000:.2f} ms "
          "per article")
    rules = tuple(Rule(f"r{i}", f'"{e.aliases[1].text}" NEAR/10 ("{ents[i + 1].aliases[1].text}" '
                       f'OR government OR president)') for i, e in enumerate(ents[:100]))
    proximity = Matcher([Watchlist("bench", entities=tuple(ents), rules=rules)])
    t = timed(full, proximity)
    print(f"  + proximity (100 NEAR rules): +{(t - base) / n * 1000:.2f} ms per article")
    guards = (Guard(tuple(a.text for e in ents[:200] for a in e.aliases[:2]),
                    near=("government", "president", "minister*", "said"),
                    not_near=("football", "film", "opera")),)
    guarded = Matcher([Watchlist("bench", entities=tuple(ents), guards=guards)])
    t = timed(full, guarded)
    print(f"  + context guards (on 200 entities): +{(t - base) / n * 1000:.2f} ms per article")

    one_mb = []
    size = 0
    for _title, body in docs:
        one_mb.append(body)
        size += len(body.encode())
        if size >= 1_000_000:
            break
    alternation = re.compile(r"(?<!\w)(?:" + "|".join(
        re.escape(a) for a in sorted(aliases, key=len, reverse=True)) + r")(?!\w)", re.I)
    t = timed(lambda: [alternation.findall(b) for b in one_mb])
    started = time.perf_counter()
    for b in one_mb:
        _Text(exact, "", b)
    ours = time.perf_counter() - started
    print(f"regex alternation of the same aliases over 1 MB: {t * 1000:.0f} ms; the automaton: "
          f"{ours * 1000:.0f} ms (ratio {t / ours:.0f}x)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
