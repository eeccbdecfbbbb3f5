"""Text helpers shared by every stage: cleaning stored fields, folding text for comparison.

``clean`` makes any string safe to store alike on SQLite and PostgreSQL (no NUL or control
characters, no lone surrogates, NFC, capped length). ``fold`` lower-cases and strips diacritics
while remembering where each folded character came from, so a match found in folded text can be
shown in the original.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported on first use: the parser processes never need it
    import numpy as np
    import numpy.typing as npt

_CONTROL = re.compile(  # C0/C1 controls (but \t \n \r), zero-width and bidi overrides
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff"
    r"\ufdd0-\ufdef\ufffe\uffff]"  # and the noncharacters XML forbids
)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")
_WORD = re.compile(r"\w+")


def clean(value: str | None, max_len: int, *, single_line: bool = False) -> str:
    """Normalise a string from outside for storage and display."""
    if not value:
        return ""
    text = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if single_line:
        text = " ".join(text.split())
    else:
        text = _SPACES.sub(" ", text)
        text = _BLANK_LINES.sub("\n\n", text).strip()
    if len(text) > max_len:
        text = text[: max_len - 1].rstrip() + "…"
    return text


_ARABIC = {
    "\u0671": "\u0627",  # alef wasla -> alef (the hamza forms decompose to alef + a mark)
    "\u0629": "\u0647",  # ta marbuta -> ha
    "\u0649": "\u064a",  # alef maqsura -> ya
    "\u0640": "",  # tatweel (kashida), a stretching stroke
    # letters for sounds Arabic lacks, written in foreign names ("ڤاغنر" for Wagner)
    "\u06a4": "\u0641",  # veh -> fa
    "\u067e": "\u0628",  # peh -> ba
    "\u0686": "\u062c",  # tcheh -> jim
    "\u06af": "\u0643",  # gaf -> kaf
    "\u06a9": "\u0643",  # keheh -> kaf
    "\u06cc": "\u064a",  # farsi yeh -> ya
}


def fold_char(ch: str) -> str:
    """Case-fold one character and drop its diacritics ("É" -> "e", "ß" -> "ss", "ё" -> "е");
    Arabic loses its short vowels and hamza seats, and its letter variants become one."""
    if ch in _ARABIC:
        return _ARABIC[ch]
    decomposed = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    return base.casefold()


def _fold_one(ch: str) -> str:
    if ch.isascii():
        return ch.lower()
    if ch in "’ʼ‘´":  # typographic apostrophes fold to the ASCII one
        return "'"
    return fold_char(ch)


def _fold_slow(text: str) -> tuple[str, list[int]]:
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_one(ch)
        out.append(folded)
        origin.extend([i] * len(folded))
    return "".join(out), origin


SHORT = 160  # up to this long, texts are folded a character at a time until the tables are built

# Planes whose characters may fold to something else; above them everything folds to itself.
_TABLE_RANGES = ((0, 0xD800), (0xE000, 0x20000), (0x2F800, 0x2FA20))
_TABLE_END = _TABLE_RANGES[-1][1]  # the tables stop there: 1 MB, not 5 for every code point


@functools.cache
def _tables() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8], dict[int, list[int]]]:
    """Per code point: its one-character fold, and how many characters it folds to (0: a mark,
    dropped; 2 or more: "ß" -> "ss", "…" -> "...", spelled out in the third table)."""
    import numpy as np

    table = np.arange(_TABLE_END, dtype=np.uint32)
    lengths = np.ones(_TABLE_END, dtype=np.uint8)  # at most 18 ("ﷺ")
    expansions: dict[int, list[int]] = {}
    for lo, hi in _TABLE_RANGES:
        for cp in range(lo, hi):
            ch = chr(cp)
            folded = _fold_one(ch)
            if folded == ch:
                continue
            lengths[cp] = len(folded)
            if len(folded) == 1:
                table[cp] = ord(folded)
            elif folded:
                expansions[cp] = [ord(c) for c in folded]
    return table, lengths, expansions


@functools.cache
def _special() -> re.Pattern[str]:
    """Any character that folding changes (beyond lower-casing), or from the astral planes."""
    table, lengths, _ = _tables()
    import numpy as np

    points = np.flatnonzero((table != np.arange(len(table), dtype=np.uint32)) | (lengths != 1))
    points = points[points < 0x10000]
    ranges: list[list[int]] = []
    for cp in points.tolist():
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    parts = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                    for a, b in ranges)
    return re.compile(f"[{parts}\U00010000-\U0010ffff]")


def load_tables() -> None:
    """Build the fold tables now (0.14 s): the document workers' fork server does, so that no
    worker builds its own copy at its first long text."""
    _special()


@dataclass(frozen=True)
class Folded:
    """Folded text; ``source(i)`` is the index in the original of folded character ``i``."""

    text: str
    _origin: npt.NDArray[np.intp] | list[int] | None  # None: the identity

    def source(self, i: int) -> int:
        return i if self._origin is None else int(self._origin[i])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of folded ``[start, end)``."""
        return self.source(start), self.source(end - 1) + 1


def fold_text(text: str) -> Folded:
    """Lower-case, drop diacritics, unify Arabic letter forms and apostrophes: one vectorised
    pass over the code points, the same result as folding character by character."""
    if text.isascii():
        return Folded(text.lower(), None)
    if len(text) <= SHORT and not _special.cache_info().currsize:
        # a term, a headline, before the tables are built: one character at a time (once the
        # fork server has built them, headlines go the table way too, twice as fast)
        folded_text, where = _fold_slow(text)
        return Folded(folded_text, None if where == list(range(len(text))) else where)
    # Most text needs no more than lower-casing and straight apostrophes: check, then done.
    low = text.lower()
    if len(low) == len(text):
        for curly in "’‘ʼ´":
            if curly in low:
                low = low.replace(curly, "'")
        if _special().search(low) is None:
            return Folded(low, None)
    import numpy as np

    table, lengths, expansions = _tables()
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if points.max() < _TABLE_END:
        sizes, out = lengths[points], table[points]
    else:  # a character of the planes above the tables: it folds to itself
        inside = points < _TABLE_END
        known = np.where(inside, points, 0)
        sizes = np.where(inside, lengths[known], 1).astype(np.uint8)
        out = np.where(inside, table[known], points)
    if (sizes == 1).all():
        return Folded(out.tobytes().decode("utf-32-le", "surrogatepass"), None)
    if not (sizes > 1).any():  # only marks to drop
        keep = sizes == 1
        return Folded(out[keep].tobytes().decode("utf-32-le", "surrogatepass"),
                      np.flatnonzero(keep))
    ends = np.cumsum(sizes)
    folded = np.empty(int(ends[-1]), dtype=np.uint32)
    single = sizes == 1
    folded[(ends - 1)[single]] = out[single]
    for i in np.flatnonzero(sizes > 1):
        cps = expansions[int(points[i])]
        folded[int(ends[i]) - len(cps):int(ends[i])] = cps
    origin = np.repeat(np.arange(len(points), dtype=np.intp), sizes)
    return Folded(folded.tobytes().decode("utf-32-le", "surrogatepass"), origin)


def fold(text: str) -> tuple[str, list[int]]:
    """Folded text and, for each folded character, the index of its source character."""
    folded = fold_text(text)
    if folded._origin is None:
        return folded.text, list(range(len(folded.text)))
    origin = folded._origin
    return folded.text, origin if isinstance(origin, list) else origin.tolist()


def words(text: str) -> list[str]:
    """Folded word tokens, for fingerprints."""
    return _WORD.findall(fold_text(text).text)
