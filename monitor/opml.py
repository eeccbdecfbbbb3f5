"""OPML in and out: the feed list every feed reader imports and exports.

Import reads an OPML file (nested outlines included), keeps the outlines with an http(s)
``xmlUrl``, and appends the ones not configured yet as ``[[feeds]]`` tables at the end of the
config file, comments and all left as they are; the running daemon picks them up at its next
tick. Export writes the configured feeds.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from monitor.config import Settings, load
from monitor.errors import FeedError, MonitorError
from monitor.feeds import precheck
from monitor.text import clean


class OpmlError(MonitorError):
    """An OPML file that cannot be read; the message says why."""


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    title: str


def read(data: bytes) -> tuple[list[OpmlFeed], list[str]]:
    """The feeds of an OPML document, and one line per outline set aside."""
    try:
        precheck(data)  # no entity declarations: the same refusal as for feeds
        root = ET.fromstring(data)
    except (ET.ParseError, FeedError) as e:
        raise OpmlError(f"not OPML: {e}") from None
    if root.tag.lower() != "opml":
        raise OpmlError(f"not OPML: the root element is <{root.tag}>")
    feeds: list[OpmlFeed] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for outline in root.iter("outline"):
        url = clean(outline.get("xmlUrl") or outline.get("xmlurl") or "", 2048,
                    single_line=True)
        title = (outline.get("title") or outline.get("text") or "").strip()
        if not url:
            continue  # a folder
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            skipped.append(f"skipped {title or url!r}: {url!r} is not an http(s) URL")
        elif url in seen:
            skipped.append(f"skipped {url}: listed twice")
        else:
            seen.add(url)
            feeds.append(OpmlFeed(url, clean(title, 200, single_line=True)))
    return feeds, skipped


def write(settings: Settings) -> str:
    outlines = "\n".join(
        f"    <outline type=\"rss\" text={quoteattr(f.name or f.url)} "
        f"title={quoteattr(f.name or f.url)} xmlUrl={quoteattr(f.url)}/>"
        for f in settings.feeds)
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<opml version=\"2.0\">\n"
            "  <head><title>monitor feeds</title></head>\n  <body>\n"
            f"{outlines}\n  </body>\n</opml>\n")


def append_to_config(config_file: Path, settings: Settings,
                     feeds: list[OpmlFeed]) -> list[OpmlFeed]:
    """Append the feeds not configured yet; return them."""
    known = {f.url for f in settings.feeds}
    new = [f for f in feeds if f.url not in known]
    if new:
        text = config_file.read_text(encoding="utf-8")
        lines = ["" if text.endswith("\n") else "\n", "# imported from OPML"]
        for f in new:
            lines += ["[[feeds]]", f"url = {json.dumps(f.url)}"]
            if f.title:
                lines.append(f"name = {json.dumps(f.title, ensure_ascii=False)}")
        updated = text + "\n".join(lines) + "\n"
        # try the result first (beside the file, so relative paths still resolve); then swap
        trial = config_file.with_name(f".{config_file.name}.import")
        trial.write_text(updated, encoding="utf-8")
        try:
            load(trial)
            os.replace(trial, config_file)
        finally:
            trial.unlink(missing_ok=True)
    return new
