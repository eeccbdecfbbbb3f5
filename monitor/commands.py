"""What each command does, once ``cli.py`` has parsed the arguments and loaded the config.
Imported only after parsing, so ``monitor --help`` loads none of this."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import config, health
from monitor.errors import ConfigError
from monitor.progress import Progress
from monitor.schedule import parse_duration
from monitor.text import clean
from monitor.urls import redact

if TYPE_CHECKING:  # the pipeline is imported by the commands that run it, not by `check`
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from monitor.cutter import Preview
    from monitor.match import Matcher
    from monitor.service import Service
    from monitor.store import status as status_store
    from monitor.store.stories import Listed

log = logging.getLogger("monitor")


def _service(settings: config.Settings, *, write: bool = True) -> Service:
    from monitor.service import Service

    return Service(settings, write=write)


class UsageError(Exception):
    """A command asked for something that does not exist: exit 2 with its message."""


def cmd_check(settings: config.Settings, _args: argparse.Namespace) -> int:
    from monitor.watchlists import fixture_problems, term_warnings

    problems = fixture_problems(settings)
    for problem in problems:
        print(f"config error: {problem}", file=sys.stderr)
    if problems:
        return 2
    channels = ", ".join(f"{name} {'on' if name in settings.active_channels() else 'off'}"
                         for name in config.CHANNEL_NAMES)
    print(f"{settings.source}: ok ({_count(len(settings.feeds), 'feed')}, "
          f"{_count(len(settings.watchlists), 'watchlist')}; channels: {channels})")
    for warning in term_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    for refused in _refused_feeds(settings):
        print(f"warning: {refused}", file=sys.stderr)
    for w in settings.watchlists:
        off = [c for c in w.channels if c not in settings.channels_of(w)]
        if off:
            print(f"note: watchlist {w.name!r}: channel {', '.join(off)} not configured; "
                  "its alerts are not queued until it is")
    return 0


def _refused_feeds(settings: config.Settings) -> list[str]:
    """Feeds on an internal address (an IP literal, localhost) the fetcher will refuse as the
    config stands; names are not resolved here."""
    import ipaddress
    from urllib.parse import urlsplit

    from monitor.guard import AddressPolicy, is_internal

    policy = AddressPolicy.from_settings(settings.fetch.allow_private_addresses,
                                         settings.fetch.allowed_hosts)
    out = []
    for i, feed in enumerate(settings.feeds):
        parts = urlsplit(feed.url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            internal = host in ("localhost", "localhost.") or is_internal(
                ipaddress.ip_address(host))
        except ValueError:
            continue  # a name: resolved when fetched
        if internal and not policy.host_opened(host, port):
            shown = f"[{host}]" if ":" in host else host
            out.append(f"{settings.source}: feeds[{i}].url: {shown} is an internal address, "
                       f"refused when fetched; open it with fetch.allowed_hosts = "
                       f"[\"{shown}:{port}\"] (or fetch.allow_private_addresses = true)")
    return out


def cmd_once(settings: config.Settings, _args: argparse.Namespace) -> int:
    from monitor.store.db import daemon_lock

    for handler in logging.getLogger().handlers:  # each feed is reported once, below
        handler.addFilter(_FeedLinesOff())
    with daemon_lock(settings.sqlite_path()):
        service = _service(settings)
        try:
            service.prepare()
            bar = Progress("polling", len(settings.feeds))
            results = service.cycle(ignore_schedule=True, progress=bar.advance)
            bar.close()
            cut, relay = service.last_cut, service.last_relay
        finally:
            service.close()
    for r in results:
        if r.status == "failed":
            print(f"feed failed: {redact(r.url)}: {redact(r.error)}")
        else:
            print(f"feed {r.status}: {redact(r.url)}: {r.new} new, "
                  f"{_count(r.copies, 'copy', 'copies')}, {_count(r.alerts, 'alert')}")
    for error in relay.errors:
        print(f"delivery: {redact(error)}")
    failed = sum(r.status == "failed" for r in results)
    print(f"once: {_count(len(results), 'feed')} ({len(results) - failed} ok, {failed} failed), "
          f"{_count(sum(r.new for r in results), 'new article')}, "
          f"{_count(sum(r.copies for r in results), 'copy', 'copies')}, "
          f"{_count(sum(r.alerts for r in results), 'alert')}; "
          f"{_count(cut, 'digest')} cut: {relay.sent} sent, {relay.retrying} to retry, "
          f"{relay.failed} failed for good" + (" (monitor status)" if relay.failed else ""))
    return 0


def cmd_trends(settings: config.Settings, args: argparse.Namespace) -> int:
    import json

    from monitor import trending
    from monitor.store import db

    _watchlists(settings, args.watchlist)
    rules = settings.spikes.rules()
    engine, sessions = db.open_database(settings.storage.url, write=False)
    try:
        with sessions() as session:
            found = trending.current(session, settings, datetime.now(UTC), rules,
                                     args.watchlist)
    finally:
        engine.dispose()
    hours = rules.window.total_seconds() / 3600
    if args.json:
        print(json.dumps([{
            "watchlist": t.watchlist, "entity": t.entity, "window_hours": hours,
            "count": t.verdict.count, "baseline": t.verdict.expected,
            "score": t.verdict.score, "spike": t.verdict.spike,
            "alerted_at": t.alerted_at.isoformat().replace("+00:00", "Z")
            if t.alerted_at else None} for t in found], ensure_ascii=False, indent=1))
        return 0
    if not found:
        print("no watchlist entities or terms")
    for t in found:
        v = t.verdict
        flag = "SPIKE" if v.spike else "     "
        print(f"{flag} {t.watchlist} / {t.entity}: {v.count} in the last {hours:g}h "
              f"({_count(v.outlets, 'outlet')}), usually {v.expected:g}; score {v.score:g}")
    return 0


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


class _FeedLinesOff(logging.Filter):
    """Drops the per-feed result lines of the log and the delivery troubles (``once`` prints
    each itself, once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and "feed" in fields and "status" in fields:
            return False
        return _DELIVERY_TROUBLE.match(record.getMessage()) is None


_DELIVERY_TROUBLE = re.compile(r"digest=\d+ .*status=(?:failed|retrying|sent warning=)")


def cmd_run(settings: config.Settings, _args: argparse.Namespace) -> int:
    from monitor.reload import Reloader
    from monitor.scheduler import run_daemon
    from monitor.store.db import daemon_lock
    from monitor.watchlists import fixture_problems

    with daemon_lock(settings.sqlite_path()):
        service = _service(settings)
        service.prepare()
        problems = fixture_problems(settings)
        if problems:  # a watchlist that fails its own fixtures does not start
            for problem in problems:
                print(f"config error: {problem}", file=sys.stderr)
            service.close()
            return 2
        service.documents.start()  # ready means ready: the first poll does not wait for them
        finished = run_daemon(service, Reloader(settings.source, settings))
        if not finished:  # worker threads still busy: leave now, leases and transactions cover it
            logging.shutdown()
            os._exit(0)
        service.close()
    return 0


def cmd_digest(settings: config.Settings, args: argparse.Namespace) -> int:
    if args.html and not args.preview:
        print("error: --html goes with --preview", file=sys.stderr)
        return 2
    service = _service(settings)
    try:
        if args.preview:
            previews = service.preview()
            if not previews:
                print("nothing pending")
            for p in previews:
                print(f"--- {p.watchlist} / {p.channel} ---")
                print(p.text)
            if args.html:
                try:
                    _write_html(args.html, previews)
                except OSError as e:
                    print(f"error: cannot write {args.html}: {e.strerror or e}", file=sys.stderr)
                    return 1
            return 0
        if args.resend is not None:
            resent = service.resend(args.resend)
            if resent is None:
                print(f"error: no failed or sent digest {args.resend} to re-send",
                      file=sys.stderr)
                return 1
            report, left = resent, service.unsent()
        else:
            service.cut_digests(force=True)
            report = service.relay(ignore_backoff=True)
            left = service.unsent()
    finally:
        service.close()
    for error in report.errors:
        print(f"not delivered: {error}")
    print(f"digests sent: {report.sent}, retrying later: {report.retrying}, "
          f"failed: {report.failed}, still queued: {left}")
    return 0 if left == 0 and report.failed == 0 else 1


def _write_html(target: str, previews: list[Preview]) -> None:
    """One HTML file per watchlist (its channels share the content)."""
    by_watchlist = {p.watchlist: p.html for p in previews}
    path = Path(target)
    for watchlist, html in by_watchlist.items():
        out = path if len(by_watchlist) == 1 else \
            path.with_name(f"{path.stem}-{re.sub(r'[^A-Za-z0-9_.-]', '_', watchlist)}{path.suffix}")
        out.write_text(html, encoding="utf-8")
        print(f"HTML of {watchlist}: {out}")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def cmd_status(settings: config.Settings, _args: argparse.Namespace) -> int:
    from monitor.store import db
    from monitor.store import status as status_store

    engine, _sessions = db.open_database(settings.storage.url)  # reading needs no writes
    try:
        with db.readers(engine)() as session:
            info = status_store.read(session)
            now = datetime.now(UTC)
            _print_status(settings, info, now)
    finally:
        engine.dispose()
    return 0


def _print_status(settings: config.Settings, info: status_store.Status, now: datetime) -> None:
    print(f"Feeds ({len(info.feeds)}):")
    for f in info.feeds:
        print(f"  [{health.feed_state(f, now)}] {redact(f.url)}")
        print(f"      last success {_when(f.last_success_at)}, next check "
              f"{_when(f.next_check_at)}, entries {f.entries_total}"
              + (f", usually every {health.describe_gap(f.cadence_seconds)}"
                 if f.cadence_seconds else ""))
        if f.last_error and f.error_count:
            print(f"      last error ({_when(f.last_error_at)}): {redact(f.last_error)}")
        elif f.last_error:
            print(f"      recovered since its last error ({_when(f.last_error_at)})")
    print("Counts: " + ", ".join(f"{k} {v}" for k, v in info.counts.items()))
    print("Watchlists:")
    for w in settings.watchlists:
        due = info.next_due.get(w.name)
        pending = sum(n for (name, _c), n in info.pending.items() if name == w.name)
        print(f"  {w.name}: next digest "
              + (_when(due) if due else "with the first alert" if pending == 0 else "now")
              + f", {_count(pending, 'alert')} pending ({w.schedule}, {w.timezone})")
    print("Last digest:")
    for w in settings.watchlists:
        active = settings.channels_of(w)
        for channel in w.channels:
            state = _when(info.last_sent.get((w.name, channel))) if channel in active else \
                f"off ([channels.{channel}] is not configured)"
            print(f"  {w.name} / {channel}: {state}")
    print(f"Failed deliveries ({len(info.failed)}):")
    for d in info.failed:
        print(f"  digest {d.id} {d.watchlist}/{d.channel} at {_when(d.created_at)}: "
              f"{redact(d.last_error or '')} (re-send: monitor digest --resend {d.id})")
    for d in info.incomplete:
        print(f"  incomplete: digest {d.id} {d.watchlist}/{d.channel} at {_when(d.sent_at)}: "
              f"{redact(d.last_error or '')}")
    if info.unsent:
        print(f"Queued deliveries ({len(info.unsent)}):")
    for d in info.unsent:
        print(f"  queued: digest {d.id} {d.watchlist}/{d.channel}, attempts {d.attempts}"
              + (f", last error: {redact(d.last_error)}" if d.last_error else ""))


def _watchlists(settings: config.Settings, name: str | None) -> list[str]:
    names = [w.name for w in settings.watchlists]
    if name is None:
        return names
    if name not in names:
        raise UsageError(f"no watchlist {name!r} (there are: {', '.join(names) or 'none'})")
    return [name]


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(value)
    except ValueError as e:
        raise UsageError(f"--since {value!r}: {e}") from None


def cmd_explain(settings: config.Settings, args: argparse.Namespace) -> int:
    from monitor.watchlists import matcher_for

    names = _watchlists(settings, args.watchlist)
    matcher = matcher_for(settings)
    if args.history:
        return _explain_history(settings, matcher, names, _since(args.since))
    if args.article is not None:
        title, text = _stored_article(settings, args.article)
    elif args.text is None and not args.title:
        raise UsageError("give a text, --title, --article ID or --history")
    else:
        title = args.title
        text = sys.stdin.read() if args.text == "-" else args.text or ""
    report = matcher.explain(clean(title, 100_000), clean(text, 10_000_000))
    delivery, story = _article_lines(settings, args.article, names) if args.article \
        is not None else ({}, [])
    for name in names:
        print(f"{name}:")
        for line in report[name] + delivery.get(name, []):
            print(f"  {line}")
    for line in story:
        print(line)
    return 0 if any(report[n][0].startswith("MATCH") for n in names) else 1


def _article_lines(settings: config.Settings, article_id: int, names: list[str]
                   ) -> tuple[dict[str, list[str]], list[str]]:
    """A stored article's delivery lines per watchlist, and its story lines."""
    from monitor import why
    from monitor.store import db

    engine, sessions = db.open_database(settings.storage.url)
    try:
        with sessions() as session:
            return ({name: why.delivery_lines(session, settings, article_id, name)
                     for name in names}, why.story_lines(session, article_id))
    finally:
        engine.dispose()


def _stored_article(settings: config.Settings, article_id: int) -> tuple[str, str]:
    from monitor.store import db
    from monitor.store.tables import Article

    engine, sessions = db.open_database(settings.storage.url)
    try:
        with sessions() as session:
            article = session.get(Article, article_id)
            if article is None:
                raise UsageError(f"no stored article {article_id}")
            return article.title, article.text
    finally:
        engine.dispose()


def _explain_history(settings: config.Settings, matcher: Matcher, names: list[str],
                     since: datetime | None) -> int:
    from monitor import history
    from monitor.store import db

    engine, sessions = db.open_database(settings.storage.url)
    try:
        for name in names:
            bar = Progress(f"matching {name}", history.count(sessions, since))
            preview = history.preview(sessions, matcher, name, since, bar.advance)
            bar.close()
            print(f"{name}: {preview.matched} of {preview.scanned} stored articles match; "
                  f"{len(preview.changes)} would change")
            for c in preview.changes:
                was = ", ".join(c.before) or "no match"
                now = ", ".join(c.after) or "no match"
                print(f"  article {c.article_id}: {was} -> {now}: {c.title[:80]!r} {c.link}")
    finally:
        engine.dispose()
    return 0


def cmd_backfill(settings: config.Settings, args: argparse.Namespace) -> int:
    from monitor import history
    from monitor.store import db
    from monitor.watchlists import matcher_for

    names = _watchlists(settings, args.watchlist)
    matcher = matcher_for(settings)
    since = _since(args.since)
    engine, sessions = db.open_database(settings.storage.url)
    if args.stories:
        return _backfill_stories(sessions, matcher, engine)
    try:
        for name in names:
            wl = settings.watchlist(name)
            assert wl is not None
            bar = Progress(f"backfill {name}", history.count(sessions, since))
            report = history.backfill(sessions, matcher, name, settings.channels_of(wl), since,
                                      datetime.now(UTC), alert=args.alert,
                                      progress=bar.advance)
            bar.close()
            print(f"{name}: {_count(report.scanned, 'article')} scanned, {report.matched} "
                  f"match, {_count(report.recorded, 'new match', 'new matches')} recorded, "
                  f"{len(report.changes) - report.recorded} updated, "
                  f"{_count(report.alerts, 'alert')} queued"
                  + ("" if args.alert else " (without --alert, past articles are not alerted)"))
    finally:
        engine.dispose()
    return 0


def _backfill_stories(sessions: sessionmaker[Session], matcher: Matcher, engine: Engine) -> int:
    from monitor import history
    from monitor.store import stories as story_store
    from monitor.stories.features import extract
    from monitor.stories.keeper import Stories

    try:
        with sessions() as session:
            bar = Progress("backfill stories", story_store.count_unplaced(session))
        placed = history.backfill_stories(sessions, matcher, Stories(), extract,
                                          datetime.now(UTC), progress=bar.advance)
        bar.close()
    finally:
        engine.dispose()
    print(f"{_count(placed, 'article')} placed in stories")
    return 0


def cmd_health(settings: config.Settings, _args: argparse.Namespace) -> int:
    if settings.http.enabled:
        import urllib.error
        import urllib.request

        host, _, port = settings.http.listen.rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0", "[::]", "::") else host.strip("[]")
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                print(response.read().decode().strip())
                return 0
        except urllib.error.HTTPError as e:
            print(e.read().decode(errors="replace").strip() or f"HTTP {e.code}")
            e.close()
            return 1
        except OSError as e:
            print(f"not live: {url}: {getattr(e, 'reason', e)}")
            return 1
    from monitor.store import db

    engine, _sessions = db.open_database(settings.storage.url)  # raises StorageError: exit 1
    engine.dispose()
    print("database ok (enable [http] for the scheduler's own health)")
    return 0


def cmd_prune(settings: config.Settings, _args: argparse.Namespace) -> int:
    if not settings.retention.after:
        print("retention.after is 0 (keep everything): nothing to prune")
        return 0
    service = _service(settings)
    try:
        pruned = service.prune()
    finally:
        service.close()
    print(f"{_count(pruned.articles, 'article')} pruned to their fingerprints; "
          f"{_count(pruned.matches, 'match', 'matches')}, {_count(pruned.digests, 'digest')} "
          f"and {_count(pruned.alerts, 'alert')} deleted")
    return 0


def cmd_feeds(settings: config.Settings, args: argparse.Namespace) -> int:
    from monitor import opml

    if args.feeds_command == "export":
        text = opml.write(settings)
        if args.file == "-":
            sys.stdout.write(text)
        else:
            Path(args.file).write_text(text, encoding="utf-8")
            print(f"{_count(len(settings.feeds), 'feed')} written to {args.file}")
        return 0
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {args.file}: {e.strerror or e}") from None
    found, skipped = opml.read(data)
    for line in skipped:
        print(line)
    try:  # the config file changes only if the result is a valid config
        added = opml.append_to_config(Path(settings.source), settings, found)
    except ConfigError as e:
        for problem in e.problems:
            print(f"config error: {problem}", file=sys.stderr)
        print(f"{settings.source} is unchanged", file=sys.stderr)
        return 2
    print(f"{_count(len(added), 'feed')} added to {settings.source} "
          f"({len(found) - len(added)} already there); a running daemon picks them up at its "
          f"next tick")
    return 0


def cmd_search(settings: config.Settings, args: argparse.Namespace) -> int:
    from monitor import history, search
    from monitor.query import QueryError, lowercase_operators
    from monitor.store import db

    try:
        matcher, node, entities = search.prepare(settings, args.query)
    except (QueryError, ValueError) as e:
        raise UsageError(f"query: {e}") from None
    for word in lowercase_operators(args.query):
        print(f"note: {word!r} is searched for as a word; operators are upper case "
              f"({word.upper()})", file=sys.stderr)
    engine, sessions = db.open_database(settings.storage.url)
    since = _since(args.since)
    shown = 0
    try:
        for hit in search.find(sessions, matcher, node, entities, since, args.limit,
                               lambda: history.newest_first(sessions, since)):
            shown += 1
            article = hit.article
            when = article.published_at or article.created_at
            print(f"[{article.id}] {when:%Y-%m-%d} {article.outlet}: {article.title}")
            print(f"    {article.link}")
            print(f"    {hit.match.snippet}")
    finally:
        engine.dispose()
    if not shown:
        print("nothing found")
    return 0 if shown else 1


def cmd_watchlists(settings: config.Settings, _args: argparse.Namespace) -> int:
    if not settings.watchlists:
        print("no watchlists: add [[watchlists]] or watchlist_files to the config")
    for w in settings.watchlists:
        active = settings.channels_of(w)
        channels = ", ".join(c if c in active else f"{c} (off)" for c in w.channels) or "none"
        aliases = sum(len(e.aliases) for e in w.entities)
        print(f"{w.name}: {_count(len(w.terms), 'term')}, "
              f"{_count(len(w.entities), 'entity', 'entities')} "
              f"({_count(aliases, 'alias', 'aliases')}), {_count(len(w.rules), 'rule')}, "
              f"{_count(len(w.guards), 'guard')}; channels: {channels}; schedule: {w.schedule} "
              f"({w.timezone}){'; urgent' if w.urgent else ''}")
        print(f"    from {w.source.partition('#')[0] or settings.source}")
    return 0


def cmd_test_channel(settings: config.Settings, args: argparse.Namespace) -> int:
    """Send a test message through one channel, as a digest would go; nothing is stored."""
    import html
    import json
    import socket

    from monitor import notify
    from monitor.digest import message_id, sender_domain
    from monitor.errors import DeliveryError
    from monitor.store.outbox import DigestJob

    if args.channel not in config.CHANNEL_NAMES:
        raise UsageError(f"no channel {args.channel!r}: use {', '.join(config.CHANNEL_NAMES)}")
    if args.channel not in settings.active_channels():
        raise UsageError(f"[channels.{args.channel}] is not configured in {settings.source}")
    users = [w.name for w in settings.watchlists if args.channel in settings.channels_of(w)]
    name = args.watchlist or (users[0] if users else None)
    if name is None:
        raise UsageError(f"no watchlist uses {args.channel}: name one with --watchlist")
    _watchlists(settings, name)  # a usage error when there is no such watchlist
    now = datetime.now(UTC)
    text = (f"This is a test message from monitor on {socket.gethostname()}, for the "
            f"watchlist {name!r} on {args.channel}, sent {now:%Y-%m-%d %H:%M} UTC. If you "
            f"read it, the channel works; digests will come the same way.")
    domain = sender_domain(settings.channels.email.sender)
    job = DigestJob(0, name, args.channel, f"[monitor] test message ({name})", text,
                    f"<p>{html.escape(text)}</p>", json.dumps([{"text": text}]),
                    message_id(int(now.timestamp()), name, f"test-{args.channel}", domain), 1, 0)
    try:
        warning = notify.sender(args.channel, settings, name, lambda: now).send(job,
                                                                               lambda _n: None)
    except DeliveryError as e:
        print(f"test message on {args.channel} ({name}) failed: {redact(str(e))}")
        return 1
    print(f"test message sent on {args.channel} ({name})"
          + (f"; {redact(warning)}" if warning else ""))
    return 0


def cmd_stories(settings: config.Settings, args: argparse.Namespace) -> int:
    import json

    from monitor.store import db
    from monitor.store import stories as story_store

    _watchlists(settings, args.watchlist)
    since = _since(args.since or "7d")
    assert since is not None
    engine, sessions = db.open_database(settings.storage.url, write=False)
    try:
        with sessions() as session:
            listed = story_store.recent(session, since, limit=args.limit,
                                        watchlist=args.watchlist)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps([_story_json(s) for s in listed], ensure_ascii=False, indent=1))
        return 0
    if not listed:
        print(f"no stories since {since:%Y-%m-%d %H:%M} UTC")
    for story in listed:
        outlets = len({a.outlet for a in story.articles})
        print(f"[{story.id}] {clean(story.title, 200, single_line=True)}")
        print(f"    {_count(len(story.articles), 'article')}, {_count(outlets, 'outlet')}, "
              f"{' '.join(story.languages) or 'language unknown'}; "
              f"{story.first_seen:%Y-%m-%d %H:%M} to {story.last_seen:%Y-%m-%d %H:%M} UTC")
        for a in story.articles:
            copy = "  (copy)" if a.copy_of is not None else ""
            print(f"      {a.language or '??'}  {a.outlet}: "
                  f"{clean(a.title, 120, single_line=True)}{copy}")
            print(f"          {redact(a.url)}")
    return 0


def _story_json(story: Listed) -> dict[str, object]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value is not None else None

    return {"id": story.id, "title": story.title, "first_seen": when(story.first_seen),
            "last_seen": when(story.last_seen), "languages": story.languages,
            "articles": [{"url": a.url, "title": a.title, "outlet": a.outlet,
                          "language": a.language, "published": when(a.published),
                          "copy_of": a.copy_of} for a in story.articles]}


COMMANDS: dict[str, Callable[[config.Settings, argparse.Namespace], int]] = {
    "run": cmd_run, "once": cmd_once, "digest": cmd_digest, "check": cmd_check,
    "status": cmd_status, "explain": cmd_explain, "backfill": cmd_backfill,
    "health": cmd_health, "prune": cmd_prune, "feeds": cmd_feeds, "search": cmd_search,
    "watchlists": cmd_watchlists, "test-channel": cmd_test_channel, "stories": cmd_stories,
    "trends": cmd_trends,
}
