"""Matches -> digest -> text, HTML and Slack messages. Pure: data in, strings out.

Templates are Jinja2 in a sandbox, HTML autoescaped; data is only ever passed *to* a template,
never rendered *as* one, so ``{{ 7*7 }}`` in a title is shown literally. A folder given as
``digest.templates`` may override ``digest.txt`` and ``digest.html``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import quote, urlsplit

import css_inline
from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from monitor.match import POSSESSIVE, term_pattern
from monitor.text import clean, fold

# Mail clients ignore most <style> blocks: rules become style attributes; only @media rules
# (narrow screens) stay in a <style> block. Nothing is ever loaded from outside.
INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION = 3000
SLACK_ITEMS_PER_MESSAGE = 45


@dataclass(frozen=True)
class Copy:
    outlet: str
    link: str


@dataclass(frozen=True)
class Item:
    article_id: int
    title: str
    link: str  # the entry's link as given; "" when it is not http(s)
    outlet: str
    published: datetime | None
    terms: list[str]
    snippet: str
    also_in: list[Copy] = field(default_factory=list)
    marks: list[tuple[int, int]] = field(default_factory=list)  # matches inside the snippet
    language: str | None = None
    story_id: int | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.link).hostname or "" if self.link else ""

    @property
    def segments(self) -> list[tuple[str, bool]]:
        """The snippet cut into (text, is_match) pieces, for highlighting."""
        return highlight(self.snippet, self.terms, self.marks)


@dataclass(frozen=True)
class StoryInfo:
    """What a digest says of a story beside its alerted articles."""

    title: str
    languages: list[str]
    outlets: int  # every outlet that carried it, alerted or not
    first_reported: datetime | None = None  # in an earlier digest of this channel: an update


@dataclass(frozen=True)
class StoryBlock:
    """One story in a digest: its alerted articles of this digest (for an update, the new
    ones), under the story's title."""

    story_id: int | None
    title: str
    languages: list[str]
    outlets: int
    items: list[Item]
    first_reported: datetime | None = None

    @property
    def grouped(self) -> bool:
        """Shown as a story (a heading over its articles), not as a lone article."""
        return self.story_id is not None and (
            len(self.items) > 1 or self.first_reported is not None or self.outlets > 1)


def group(items: Sequence[Item], stories: dict[int, StoryInfo]) -> list[StoryBlock]:
    """The items as story blocks: the story with the most outlets first, then the newest."""
    blocks: dict[tuple[int, int], list[Item]] = {}  # (story id, 0) or (0, article id)
    for item in items:
        key = (item.story_id, 0) if item.story_id in stories and item.story_id is not None \
            else (0, item.article_id)
        blocks.setdefault(key, []).append(item)
    found = []
    for (story_id, _), members in blocks.items():
        info = stories.get(story_id)
        if info is None:
            first = members[0]
            found.append(StoryBlock(None, first.title, [first.language] if first.language
                                    else [], 1 + len(first.also_in), members))
        else:
            found.append(StoryBlock(story_id, info.title, info.languages, info.outlets,
                                    members, info.first_reported))

    def newest(block: StoryBlock) -> float:
        times = [i.published.timestamp() for i in block.items if i.published is not None]
        return max(times, default=0.0)

    return sorted(found, key=lambda b: (-b.outlets, -newest(b)))


@dataclass(frozen=True)
class DigestData:
    watchlist: str
    items: list[Item]
    generated_at: datetime
    notices: list[str] = field(default_factory=list)  # for the operator: broken channels, feeds
    stories: list[StoryBlock] | None = None  # None: each item on its own
    spiked: list[str] = field(default_factory=list)  # spike alerts since the last digest

    @property
    def blocks(self) -> list[StoryBlock]:
        if self.stories is not None:
            return self.stories
        return group(self.items, {})

    @property
    def ordered(self) -> list[Item]:
        """The items in the order the blocks show them."""
        return [item for block in self.blocks for item in block.items]


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    slack: list[dict[str, object]]  # one webhook payload per message


def safe_link(link: str) -> str:
    """Only http(s) links with a host reach a digest."""
    try:
        parts = urlsplit(link)
        host = parts.hostname
    except ValueError:
        return ""
    return link if parts.scheme.lower() in ("http", "https") and host else ""


def highlight(snippet: str, terms: Sequence[str],
              marks: Sequence[tuple[int, int]] = ()) -> list[tuple[str, bool]]:
    """The snippet cut into (text, is_match) pieces: at the matcher's own marks, or, for matches
    stored without them, wherever the terms are found again."""
    folded, origin = fold(snippet)
    spans: list[tuple[int, int]] = []
    for start, end in sorted(marks):
        if 0 <= start < end <= len(snippet) and all(end <= s or start >= e for s, e in spans):
            spans.append((start, end))
    for term in sorted(set(terms), key=len, reverse=True) if not spans else []:
        if not term.strip():
            continue
        # the matcher's own pattern, so "Вагнера" and "وفاغنر" light up as they matched
        for m in re.finditer(rf"(?<!\w)(?:{term_pattern(term)}){POSSESSIVE}(?!\w)", folded):
            start, end = origin[m.start()], origin[m.end() - 1] + 1
            if all(end <= s or start >= e for s, e in spans):
                spans.append((start, end))
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for start, end in sorted(spans):
        if start > pos:
            pieces.append((snippet[pos:start], False))
        pieces.append((snippet[start:end], True))
        pos = end
    if pos < len(snippet):
        pieces.append((snippet[pos:], False))
    return pieces


def subject_line(template: str, watchlist: str, count: int) -> str:
    try:
        text = template.format(watchlist=watchlist, count=count, plural="" if count == 1 else "s")
    except (KeyError, IndexError, ValueError):
        text = f"[monitor] {watchlist}: {count} new"
    return clean(text, 250, single_line=True)


def sender_domain(sender: str) -> str:
    """The domain of a sender address, bare or with a display name ("Desk <d@ex.org>")."""
    return parseaddr(sender)[1].rpartition("@")[2]


def message_id(digest_id: int, watchlist: str, channel: str, domain: str) -> str:
    token = hashlib.sha256(f"{digest_id}:{watchlist}:{channel}".encode()).hexdigest()[:16]
    domain = re.sub(r"[^A-Za-z0-9.-]", "", domain) or "monitor.invalid"
    return f"<digest.{digest_id}.{token}@{domain}>"


class Renderer:
    def __init__(self, templates: Path | None = None, subject: str = "") -> None:
        loaders: list[FileSystemLoader | PackageLoader] = []
        if templates is not None:
            loaders.append(FileSystemLoader(str(templates)))
        loaders.append(PackageLoader("monitor", "templates"))
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        )
        self.subject = subject or "[monitor] {watchlist}: {count} new article{plural}"

    def render(self, data: DigestData) -> Rendered:
        context = {"digest": data, "items": data.ordered, "blocks": data.blocks,
                   "count": len(data.items)}
        return Rendered(
            subject=subject_line(self.subject, data.watchlist, len(data.items)),
            text=self.env.get_template("digest.txt").render(context),
            html=INLINER.inline(self.env.get_template("digest.html").render(context)),
            slack=slack_messages(data),
        )


# ---------------------------------------------------------------------------------------------
# Slack (Block Kit): every piece of data escaped, so no mention fires and no link is forged.


def slack_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_url(link: str) -> str:
    return quote(link, safe=":/?#[]@!$&'()*+,;=%~-._").replace("|", "%7C")


def story_heading(block: StoryBlock) -> str:
    """A story's heading line (without its title): languages, outlets, first report."""
    parts = [", ".join(block.languages)] if block.languages else []
    parts.append(f"{block.outlets} outlet{'s' if block.outlets != 1 else ''}")
    if block.first_reported is not None:
        parts.append(f"update; first reported {block.first_reported:%Y-%m-%d %H:%M UTC}")
    return " · ".join(parts)


def _slack_item(item: Item, block: StoryBlock | None = None) -> dict[str, object]:
    title = slack_escape(item.title or "(untitled)")
    head = f"*<{slack_escape(_slack_url(item.link))}|{title}>*" if item.link else f"*{title}*"
    meta = " · ".join(p for p in (slack_escape(item.outlet), slack_escape(item.host)) if p)
    terms = ", ".join(slack_escape(t) for t in item.terms)
    snippet = "".join(f"*{slack_escape(t.strip())}* " if hit and t.strip() else slack_escape(t)
                      for t, hit in item.segments)
    lines = [head, f"_{meta}_ — matched: {terms}" if meta else f"matched: {terms}",
             f">{' '.join(snippet.split())}"]
    if block is not None:  # the first article of a story carries the story's heading
        lines[:0] = [f":newspaper: *Story: {slack_escape(block.title or '(untitled)')}* "
                     f"({slack_escape(story_heading(block))})"]
    if item.also_in:
        lines.append("also in: " + ", ".join(slack_escape(c.outlet or c.link) for c in
                                               item.also_in))
    text = "\n".join(lines)
    if len(text) > SLACK_MAX_SECTION:
        text = text[: SLACK_MAX_SECTION - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_messages(data: DigestData) -> list[dict[str, object]]:
    heads = {id(b.items[0]): b for b in data.blocks if b.grouped}
    items = data.ordered
    chunks = [items[i : i + SLACK_ITEMS_PER_MESSAGE]
              for i in range(0, len(items), SLACK_ITEMS_PER_MESSAGE)] or [[]]
    messages = []
    for n, chunk in enumerate(chunks, 1):
        part = f" ({n}/{len(chunks)})" if len(chunks) > 1 else ""
        header = (f"*{slack_escape(data.watchlist)}*: {len(data.items)} new "
                  f"article{'s' if len(data.items) != 1 else ''}{part}")
        blocks: list[dict[str, object]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": header}}, {"type": "divider"}
        ]
        if n == 1 and data.spiked:  # after the first line, which names no spike (the contract)
            text = "*Spiked since the last digest*\n" + "\n".join(
                f"• {slack_escape(line)}" for line in data.spiked)
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": text[:SLACK_MAX_SECTION]}})
        blocks.extend(_slack_item(item, heads.get(id(item))) for item in chunk)
        if n == len(chunks) and data.notices:
            text = "\n".join(f"⚠ {slack_escape(notice)}" for notice in data.notices)
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": text[:SLACK_MAX_SECTION]}]})
        assert len(blocks) <= SLACK_MAX_BLOCKS
        summary = clean(f"{data.watchlist}: {len(data.items)} new{part}", 200, single_line=True)
        messages.append({"text": slack_escape(summary),
                         "blocks": blocks, "unfurl_links": False, "unfurl_media": False})
    return messages


def dumps_slack(messages: list[dict[str, object]]) -> str:
    return json.dumps(messages, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Spike and breaking-story alerts: a short message of their own.


@dataclass(frozen=True)
class AlertStory:
    title: str
    articles: list[tuple[str, str, str]]  # (title, link, outlet), at most a few


@dataclass(frozen=True)
class AlertMessage:
    watchlist: str
    kind: str  # "spike" (an entity) or "breaking" (a story)
    name: str  # the entity, or the story's title
    summary: str  # the figures: "6 mentions in the last 3h from 3 outlets (usually 0.3)"
    stories: list[AlertStory]
    generated_at: datetime


def render_alert(message: AlertMessage) -> Rendered:
    """Subject and first lines name the watchlist, say "spike" or "breaking" and name the
    entity or story; every stored string escaped, links only http(s)."""
    import html as markup

    head = clean(f"{message.watchlist}: {message.kind}: {message.name}", 250, single_line=True)
    lines = [head, message.summary, ""]
    html_items = []
    slack_lines = []
    for story in message.stories:
        lines.append(f"- {story.title}")
        links = []
        for title, link, outlet in story.articles:
            safe = safe_link(link)
            lines.append(f"    {outlet}: {title}" + (f" <{safe}>" if safe else ""))
            links.append((f'<a href="{markup.escape(safe)}">{markup.escape(title)}</a>'
                          if safe else markup.escape(title)) + f" · {markup.escape(outlet)}")
            slack_lines.append(f"• <{slack_escape(_slack_url(safe))}|{slack_escape(title)}> — "
                               f"{slack_escape(outlet)}" if safe
                               else f"• {slack_escape(title)} — {slack_escape(outlet)}")
        html_items.append(f"<li><strong>{markup.escape(story.title)}</strong><ul>"
                          + "".join(f"<li>{x}</li>" for x in links) + "</ul></li>")
    lines += ["", "-- ", f"Sent by monitor at {message.generated_at:%Y-%m-%d %H:%M UTC}."]
    text = "\n".join(lines) + "\n"
    body = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{markup.escape(head)}"
            f"</title></head><body style=\"font-family: sans-serif; max-width: 640px\">"
            f"<h1 style=\"font-size: 18px\">{markup.escape(head)}</h1>"
            f"<p>{markup.escape(message.summary)}</p><ul>{''.join(html_items)}</ul>"
            f"<p style=\"font-size: 12px; color: #71717a\">Sent by monitor at "
            f"{message.generated_at:%Y-%m-%d %H:%M UTC}.</p></body></html>")
    first = f"*{slack_escape(head)}*"
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": first}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": slack_escape(message.summary)[:SLACK_MAX_SECTION]}}]
    if slack_lines:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": "\n".join(slack_lines)[:SLACK_MAX_SECTION]}})
    slack = [{"text": slack_escape(head), "blocks": blocks, "unfurl_links": False,
              "unfurl_media": False}]
    return Rendered(subject=clean(f"[monitor] {head}", 250, single_line=True), text=text,
                    html=body, slack=slack)
