"""Text helpers shared by every stage: cleaning stored fields, folding text for comparison.

``clean`` makes any string safe to store alike on SQLite and PostgreSQL (no NUL or control
characters, no lone surrogates, NFC, capped length). ``fold`` lower-cases and strips diacritics
while remembering where each folded character came from, so a match found in folded text can be
shown in the original.
"""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(  # C0/C1 controls (but \t \n \r), zero-width and bidi overrides
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
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
}


def fold_char(ch: str) -> str:
    """Case-fold one character and drop its diacritics ("É" -> "e", "ß" -> "ss", "ё" -> "е");
    Arabic loses its short vowels and hamza seats, and its letter variants become one."""
    if ch in _ARABIC:
        return _ARABIC[ch]
    decomposed = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    return base.casefold()


def fold(text: str) -> tuple[str, list[int]]:
    """Folded text and, for each folded character, the index of its source character."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch.lower())
            origin.append(i)
            continue
        folded = fold_char(ch)
        if ch in "’ʼ‘`´":  # typographic apostrophes fold to the ASCII one
            folded = "'"
        out.append(folded)
        origin.extend([i] * len(folded))
    return "".join(out), origin


def words(text: str) -> list[str]:
    """Folded word tokens, for fingerprints."""
    folded, _ = fold(text)
    return _WORD.findall(folded)
