"""Build the labelled deduplication set, tests/data/dedup_pairs.jsonl, from real prose.

Sources: the 181 hand-extracted articles of ../shared/corpus/articles, the seed corpus, and a few
same-topic reports written for this set (below) where the corpus has none. Deterministic (seeded),
so the committed file can be regenerated and reviewed: `python scripts/make_dedup_set.py`.

Each line: {"id", "class", "copy": true|false, "a", "b"}. "a" is the first article seen, "b" the
newcomer. Positives are copies by PRODUCT.md's definition (a reuses b's text: truncated, edited,
re-headlined, wrapped...). Negatives are different articles that look alike: same topic, shared
quotes, an outlet's shared boilerplate or background paragraph, a translation.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "data" / "dedup_pairs.jsonl"
PER_CLASS = 36

# Same event, different newsrooms: each written separately, sharing facts and names, not text.
SAME_TOPIC = [
    "Russia's Wagner Group said on Friday that it was leaving Mali after three and a half years, "
    "declaring its mission accomplished. The mercenaries arrived in late 2021 at the invitation of "
    "the junta led by Assimi Goïta. Their role passes to Africa Corps, a force run directly by the "
    "Russian defence ministry. Residents of Bamako said they had seen convoys moving towards the "
    "airport during the week. Human rights groups have accused the fighters of killing civilians in "
    "Moura in 2022, which Bamako denies.",
    "BAMAKO — The private military company once headed by Yevgeny Prigozhin is pulling out of Mali. "
    "In a message posted on Telegram, Wagner claimed to have helped the Malian army retake regional "
    "capitals from jihadist groups. Analysts doubt that claim: attacks by JNIM have grown more "
    "frequent, and the army lost dozens of soldiers near Tinzaouatene last summer. Moscow's presence "
    "will not shrink, however. Africa Corps, controlled by the Kremlin, keeps the bases and much of "
    "the equipment.",
    "Mali's transitional authorities have not commented on the departure of Wagner personnel, "
    "announced by the group itself. Diplomats in Dakar describe a rebranding rather than a retreat: "
    "many contractors are expected to sign new contracts with Africa Corps. The change completes a "
    "process that began after Prigozhin's death in 2023, when the defence ministry took control of "
    "Wagner's African operations. For civilians in the centre of the country, little is likely to "
    "change, a researcher said.",
    "For the Sahel, the end of Wagner's mission in Mali closes a chapter that began with the "
    "expulsion of French troops of Operation Barkhane and the European Takuba task force. The UN "
    "mission MINUSMA left in 2023 at the junta's request. Russia now operates through Africa Corps "
    "in Mali, Burkina Faso and Niger, the three countries of the Alliance of Sahel States. Whether "
    "Moscow's state-run force will fight differently from the mercenaries remains an open question.",
    "Wagner fighters are leaving Mali, the group said, as its Russian paymasters fold its role into "
    "Africa Corps. Security sources in Gao and Timbuktu reported aircraft movements. The group had "
    "about 1,500 men in the country according to Western estimates. Its record includes the "
    "recapture of Kidal from Tuareg rebels in 2023, but also heavy losses in an ambush in July 2024. "
    "The junta of Assimi Goïta calls the partnership with Russia a success.",
]
TRANSLATION = (
    "Le groupe russe Wagner a annoncé vendredi son départ du Mali après trois ans et demi de "
    "présence, affirmant avoir accompli sa mission. Les mercenaires étaient arrivés fin 2021 à "
    "l'invitation de la junte dirigée par Assimi Goïta. Leur rôle revient à Africa Corps, une force "
    "placée directement sous l'autorité du ministère russe de la Défense. Des habitants de Bamako "
    "disent avoir vu des convois se diriger vers l'aéroport au cours de la semaine. Des "
    "organisations de défense des droits humains accusent les combattants d'avoir tué des civils à "
    "Moura en 2022, ce que Bamako dément."
)
BOILERPLATE = (
    "This article is published by the Sahel Monitor desk. Our journalists work in Bamako, Niamey "
    "and Ouagadougou under difficult conditions; support independent reporting by subscribing to "
    "our newsletter, which arrives every weekday morning with the region's essential news, "
    "analysis from our correspondents and a selection of reports from partner media. To report an "
    "error, write to the corrections team. All rights reserved; reproduction without permission "
    "is forbidden."
)
QUOTES = [
    '"We will not negotiate with those who attack our soldiers and our villages, and we will '
    'pursue them wherever they hide," the minister told reporters in the capital on Monday.',
    '"The situation on the ground is deteriorating every week, and humanitarian access to the '
    'north has become almost impossible for our teams," a United Nations official said.',
    '"Nobody in this town sleeps well any more; we hear the engines at night and we do not know '
    'whose they are," said a shopkeeper who asked not to be named for his safety.',
]
BACKGROUND = (
    "Mali has been ruled by the military since coups in August 2020 and May 2021. The junta broke "
    "with France, which ended Operation Barkhane in 2022, and asked the UN peacekeeping mission "
    "MINUSMA to leave in 2023. Jihadist groups linked to al-Qaeda and the Islamic State control "
    "large parts of the countryside, and more than a million people have fled their homes. The "
    "country left the regional bloc ECOWAS in January 2025 together with Burkina Faso and Niger, "
    "whose juntas formed the Alliance of Sahel States and turned to Russia for security support."
)
COMMENTS = [
    "Comment from reader Amadou: This is exactly what we have been saying for years.",
    "Comment from reader Claire: Where are the sources for these figures? Please publish them.",
    "Comment from reader Moussa: Thank you for covering the north, nobody else does.",
    "Comment from reader J. Smith: Another sad day for the region, when will it end?",
]
NEW_HEADLINES = [
    "Exclusive: what the officials did not say", "Analysis: the story behind the headlines",
    "Breaking: new details emerge", "In depth: a week that changed everything",
    "Explainer: five things to know", "Update: the latest on the situation",
]
WRAP_INTRO = "Republished with permission from our partners. The original report follows."
WRAP_OUTRO = "Read more reports like this on our website and follow us on social media."


def paragraphs(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]
    if len(parts) >= 4:
        return parts
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())  # no paragraphs: groups of sentences
    size = max(len(sentences) // 5, 1)
    return [" ".join(sentences[i : i + size]) for i in range(0, len(sentences), size)]


def truncate(text: str, share: float) -> str:
    words = text.split()
    cut = " ".join(words[: max(int(len(words) * share), 12)])
    end = max(cut.rfind(". "), cut.rfind(".\n"))
    if end > len(cut) * 0.6:
        cut = cut[: end + 1]
    return cut + " … Read the full article on our website."


def edit_words(text: str, rng: random.Random, share: float) -> str:
    words = text.split()
    vocabulary = [w for w in words if w.isalpha()] or ["the"]
    for _ in range(max(int(len(words) * share), 1)):
        i = rng.randrange(len(words))
        action = rng.random()
        if action < 0.4:
            words[i] = rng.choice(vocabulary)
        elif action < 0.7 and len(words) > 20:
            del words[i]
        else:
            words.insert(i, rng.choice(vocabulary))
    return " ".join(words)


def normalise_typography(text: str) -> str:
    out = text.replace('"', "\u201c").replace("'", "\u2019").replace(" - ", " \u2014 ")
    out = re.sub(r"\s+", lambda m: "\u00a0 " if len(m.group(0)) == 1 and "\n" not in m.group(0)
                 and hash(m.start()) % 7 == 0 else m.group(0), out)
    return out.replace(". ", ".  ")


def insert_middle(text: str, addition: str) -> str:
    parts = paragraphs(text)
    middle = len(parts) // 2
    return "\n\n".join([*parts[:middle], addition, *parts[middle:]])


def main() -> None:
    rng = random.Random(20261122)
    truth = json.loads((SHARED / "corpus/articles/ground-truth.json").read_text())
    corpus = {k: v["articleBody"].strip() for k, v in sorted(truth.items())}
    long = [k for k, t in corpus.items() if 150 <= len(t.split()) <= 2500]
    seeds = {p.name[:3]: p.read_text().strip() for p in sorted((ROOT / "seeds").glob("*.txt"))}
    pairs: list[dict[str, object]] = []

    def add(cls: str, copy: bool, a: str, b: str) -> None:
        pairs.append({"id": f"{cls}-{sum(1 for p in pairs if p['class'] == cls):03d}",
                      "class": cls, "copy": copy, "a": a, "b": b})

    # -- copies ---------------------------------------------------------------------------
    variants = {
        "truncated-20": lambda t: truncate(t, 0.2),
        "truncated-40": lambda t: truncate(t, 0.4),
        "truncated-70": lambda t: truncate(t, 0.7),
        "edited-5pct": lambda t: edit_words(t, rng, 0.05),
        "headline-changed": lambda t: rng.choice(NEW_HEADLINES) + "\n\n" + t,
        "appended-comments": lambda t: t + "\n\n" + BOILERPLATE + "\n\n" + "\n".join(
            rng.sample(COMMENTS, 3)),
        "wrapped": lambda t: WRAP_INTRO + "\n\n" + t + "\n\n" + WRAP_OUTRO,
        "paragraph-dropped": lambda t: "\n\n".join(
            p for i, p in enumerate(paragraphs(t)) if i % 4 != 1),
        "paragraphs-shuffled": lambda t: "\n\n".join(rng.sample(paragraphs(t),
                                                                len(paragraphs(t)))),
        "typography": normalise_typography,
    }
    for cls, make in variants.items():
        for key in rng.sample(long, PER_CLASS):
            original = corpus[key]
            if cls == "headline-changed":
                original = " ".join(original.split()[:9]) + "\n\n" + original
            add(cls, True, original, make(corpus[key]))
    # the newcomer is the original, the stored one the truncated repost: containment both ways
    for key in rng.sample(long, PER_CLASS // 2):
        add("original-after-repost", True, truncate(corpus[key], 0.3), corpus[key])
    add("seed-truncated", True, seeds["001"], seeds["000"])
    add("seed-truncated", True, seeds["000"], seeds["001"])

    # -- different articles ---------------------------------------------------------------
    names = list(seeds)
    for x, y in itertools.combinations(names, 2):
        if {x, y} != {"000", "001"}:
            add("seeds-same-topic", False, seeds[x], seeds[y])
    for first, second in itertools.combinations(SAME_TOPIC, 2):
        add("same-event-other-outlet", False, first, second)
    add("translation", False, SAME_TOPIC[0], TRANSLATION)
    add("translation", False, TRANSLATION, SAME_TOPIC[0])
    for i in range(24):
        x, y = rng.sample(long, 2)
        quote = QUOTES[i % len(QUOTES)]
        add("shared-quote", False, insert_middle(corpus[x], quote), insert_middle(corpus[y],
                                                                                  quote))
    for _ in range(24):
        x, y = rng.sample(long, 2)
        add("shared-boilerplate", False, corpus[x] + "\n\n" + BOILERPLATE,
            corpus[y] + "\n\n" + BOILERPLATE)
    short = [k for k in long if len(corpus[k].split()) <= 450]
    for _ in range(24):
        x, y = rng.sample(short, 2)
        add("shared-background", False, insert_middle(corpus[x], BACKGROUND),
            insert_middle(corpus[y], BACKGROUND))
    for _ in range(12):
        x, y = rng.sample(SAME_TOPIC, 2)
        add("same-event-shared-background", False, x + "\n\n" + BACKGROUND,
            y + "\n\n" + BACKGROUND)
    # the corpus's own look-alikes: the pairs with the highest word-3-gram overlap
    grams = {k: _grams(t) for k, t in corpus.items()}
    scored = sorted(((len(grams[x] & grams[y]) / len(grams[x] | grams[y]), x, y)
                     for x, y in itertools.combinations(corpus, 2) if grams[x] and grams[y]),
                    reverse=True)
    for _score, x, y in scored[:16]:
        add("corpus-look-alike", False, corpus[x], corpus[y])

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
    copies = sum(1 for p in pairs if p["copy"])
    print(f"{OUT}: {len(pairs)} pairs, {copies} copies, {len(pairs) - copies} different")


def _grams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


if __name__ == "__main__":
    main()
