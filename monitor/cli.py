"""Command line: the only place that configures logging and turns errors into exit codes.

Exit codes: 0 ok, 2 bad usage or invalid config, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, config, health
from monitor.errors import ConfigError, MonitorError
from monitor.match import Matcher
from monitor.progress import Progress
from monitor.schedule import parse_duration
from monitor.service import Preview, Service
from monitor.store.tables import Feed
from monitor.text import clean
from monitor.urls import redact
from monitor.watchlists import fixture_problems, matcher_for, term_warnings

log = logging.getLogger("monitor")


class UsageError(Exception):
    """A command asked for something that does not exist: exit 2 with its message."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                        help="config file (default: $MONITOR_CONFIG, else config/monitor.toml)")
    parser = argparse.ArgumentParser(
        prog="monitor", description="Media monitoring: feeds in, deduplicated watchlist "
        "digests out by email and Slack.")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="config file (default: $MONITOR_CONFIG, else config/monitor.toml)")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon in the foreground",
                   description="Poll feeds and send digests on schedule until SIGTERM/SIGINT.")
    sub.add_parser("once", parents=[common], help="one cycle now: poll every feed, deliver due",
                   description="Poll every feed now (ignoring intervals), process new entries, "
                   "deliver whatever is due by schedule, and exit.")
    digest = sub.add_parser("digest", parents=[common], help="send or preview pending digests",
                            description="Deliver or show every pending match of every watchlist.")
    mode = digest.add_mutually_exclusive_group(required=True)
    mode.add_argument("--send", action="store_true",
                      help="send everything pending now, ignoring schedules and retry back-off")
    mode.add_argument("--preview", action="store_true",
                      help="print what would be sent; send nothing, mark nothing")
    mode.add_argument("--resend", type=int, metavar="ID",
                      help="send digest ID again (one that failed, or was lost downstream); "
                      "`monitor status` lists failed digests with their IDs")
    digest.add_argument("--html", metavar="FILE",
                        help="with --preview: also write the HTML version to FILE (one file per "
                        "watchlist, FILE-<watchlist>.html, when there are several)")
    sub.add_parser("check", parents=[common], help="validate the config",
                   description="Validate the config; every problem on its own line.")
    sub.add_parser("status", parents=[common], help="feeds and their health, counts, digests",
                   description="Show feed health, counts, last digest per watchlist and failed "
                   "deliveries.")
    feeds = sub.add_parser("feeds", parents=[common], help="import or export the feed list (OPML)",
                           description="Move the feed list in and out as OPML.")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    imp = feeds_sub.add_parser("import", parents=[common], help="add the feeds of an OPML file",
                               description="Append the OPML file's feeds that are not "
                               "configured yet to the config file, as [[feeds]] tables.")
    imp.add_argument("file", help="the OPML file ('-': standard input)")
    exp = feeds_sub.add_parser("export", parents=[common], help="write the feeds as OPML",
                               description="Write the configured feeds as OPML 2.0.")
    exp.add_argument("file", nargs="?", default="-", help="where to write (default: "
                     "standard output)")
    search = sub.add_parser("search", parents=[common], help="search stored articles",
                            description="Search stored articles (newest first) with the "
                            "watchlist query language: words, \"phrases\", AND, OR, NOT, "
                            "NEAR/n, title:, body:.")
    search.add_argument("query", help='e.g. \'"Africa Corps" NEAR/10 Bamako\'')
    search.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    search.add_argument("--since", metavar="AGE", help="articles stored in the last AGE")
    sub.add_parser("prune", parents=[common], help="apply retention.after now",
                   description="Prune articles older than retention.after to their "
                   "fingerprints and delete their matches and delivery records (the daemon does "
                   "it once a day).")
    sub.add_parser("health", parents=[common], help="is the daemon live? (for HEALTHCHECK)",
                   description="Ask the running daemon's /healthz when [http] is enabled (the "
                   "scheduler ticks, the database answers); else check that the database "
                   "answers. Exit 0 healthy, 1 not.")
    explain = sub.add_parser(
        "explain", parents=[common], help="say which rule matched where, or why not",
        description="Run the watchlists on a text, a stored article, or every stored article "
        "(--history: what a changed watchlist would now match; nothing is changed).")
    explain.add_argument("text", nargs="?", help="the text to try ('-': read standard input)")
    explain.add_argument("--title", default="", help="a headline to try with the text")
    explain.add_argument("--watchlist", metavar="NAME", help="only this watchlist")
    source = explain.add_mutually_exclusive_group()
    source.add_argument("--article", type=int, metavar="ID", help="a stored article")
    source.add_argument("--history", action="store_true",
                        help="every stored article: list those whose match would change")
    explain.add_argument("--since", metavar="AGE", help="with --history: articles stored in "
                         "the last AGE ('30d', '12h'); default: all")
    backfill = sub.add_parser(
        "backfill", parents=[common], help="match stored articles again after a watchlist change",
        description="Record the matches stored articles have under the current watchlists. "
        "Past articles are alerted only with --alert.")
    backfill.add_argument("--watchlist", metavar="NAME", help="only this watchlist")
    backfill.add_argument("--since", metavar="AGE", help="articles stored in the last AGE "
                          "('30d', '12h'); default: all")
    backfill.add_argument("--alert", action="store_true",
                          help="also queue the new matches for the next digests")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = config.load(args.config)
    except ConfigError as e:
        for problem in e.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    _setup_logging(settings.log.level, settings.log.format)
    commands: dict[str, Callable[[config.Settings, argparse.Namespace], int]] = {
        "run": cmd_run, "once": cmd_once, "digest": cmd_digest, "check": cmd_check,
        "status": cmd_status, "explain": cmd_explain, "backfill": cmd_backfill,
        "health": cmd_health, "prune": cmd_prune, "feeds": cmd_feeds, "search": cmd_search,
    }
    try:
        return commands[args.command](settings, args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except MonitorError as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:  # the database failed mid-command (full disk, gone away)
        from monitor.store.db import describe

        print(f"error: database: {redact(describe(e))}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `monitor status | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (not the one of set-up time,
    which may be closed since: a test's capture, a redirected stream)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _Redact(logging.Filter):
    """No password of a URL (``https://user:pass@host``) ever reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact(v) if isinstance(v, str) else v
                             for k, v in fields.items()}
        return True


def _setup_logging(level: str, form: str = "text") -> None:
    handler = _StderrHandler()
    handler.addFilter(_Redact())
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "trafilatura", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))


def cmd_check(settings: config.Settings, _args: argparse.Namespace) -> int:
    problems = fixture_problems(settings)
    for problem in problems:
        print(f"config error: {problem}", file=sys.stderr)
    if problems:
        return 2
    channels = ", ".join(f"{name} {'on' if name in settings.active_channels() else 'off'}"
                         for name in config.CHANNEL_NAMES)
    print(f"{settings.source}: ok ({len(settings.feeds)} feeds, {len(settings.watchlists)} "
          f"watchlists; channels: {channels})")
    for warning in term_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    for w in settings.watchlists:
        off = [c for c in w.channels if c not in settings.channels_of(w)]
        if off:
            print(f"note: watchlist {w.name!r}: channel {', '.join(off)} not configured; "
                  "its alerts are not queued until it is")
    return 0


def cmd_once(settings: config.Settings, _args: argparse.Namespace) -> int:
    from monitor.store.db import daemon_lock

    with daemon_lock(settings.sqlite_path()):
        service = Service(settings)
        try:
            service.prepare()
            bar = Progress("polling", len(settings.feeds))
            results = service.cycle(ignore_schedule=True, progress=bar.advance)
            bar.close()
        finally:
            service.close()
    for r in results:
        if r.status == "failed":
            print(f"feed failed: {redact(r.url)}: {redact(r.error)}")
        else:
            print(f"feed {r.status}: {redact(r.url)}: {r.new} new, {r.copies} copies, "
                  f"{r.alerts} alerts")
    return 0


def cmd_run(settings: config.Settings, _args: argparse.Namespace) -> int:
    from monitor.reload import Reloader
    from monitor.scheduler import run_daemon
    from monitor.store.db import daemon_lock

    with daemon_lock(settings.sqlite_path()):
        service = Service(settings)
        service.prepare()
        problems = fixture_problems(settings)
        if problems:  # a watchlist that fails its own fixtures does not start
            for problem in problems:
                print(f"config error: {problem}", file=sys.stderr)
            service.close()
            return 2
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
    service = Service(settings)
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


def _feed_state(f: Feed, now: datetime) -> str:
    if not f.active:
        return "inactive"
    if f.error_count:
        return f"FAILING x{f.error_count} since {_when(f.last_success_at or f.created_at)}"
    quiet = health.silence(now=now, cadence_seconds=f.cadence_seconds,
                           newest_entry_at=f.newest_entry_at,
                           last_new_entry_at=f.last_new_entry_at, since=f.created_at)
    if quiet is not None:
        return f"SILENT for {health.describe_gap(quiet.total_seconds())}"
    return "ok" if f.last_success_at else "not polled yet"


def cmd_status(settings: config.Settings, _args: argparse.Namespace) -> int:
    service = Service(settings, write=False)
    try:
        info = service.status()
    finally:
        service.close()
    feeds = info["feeds"]
    assert isinstance(feeds, list)
    print(f"Feeds ({len(feeds)}):")
    now = service.clock()
    for f in feeds:
        print(f"  [{_feed_state(f, now)}] {redact(f.url)}")
        print(f"      last success {_when(f.last_success_at)}, next check "
              f"{_when(f.next_check_at)}, entries {f.entries_total}"
              + (f", usually every {health.describe_gap(f.cadence_seconds)}"
                 if f.cadence_seconds else ""))
        if f.last_error:
            print(f"      last error ({_when(f.last_error_at)}): {redact(f.last_error)}")
    counts = info["counts"]
    assert isinstance(counts, dict)
    print("Counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    last_sent = info["last_sent"]
    assert isinstance(last_sent, dict)
    print("Last digest:")
    for w in settings.watchlists:
        for channel in w.channels:
            print(f"  {w.name} / {channel}: {_when(last_sent.get((w.name, channel)))}")
    failed = info["failed"]
    assert isinstance(failed, list)
    print(f"Failed deliveries ({len(failed)}):")
    for d in failed:
        print(f"  digest {d.id} {d.watchlist}/{d.channel} at {_when(d.created_at)}: "
              f"{redact(d.last_error or '')}")
    incomplete = info["incomplete"]
    assert isinstance(incomplete, list)
    for d in incomplete:
        print(f"  incomplete: digest {d.id} {d.watchlist}/{d.channel} at {_when(d.sent_at)}: "
              f"{redact(d.last_error or '')}")
    unsent = info["unsent"]
    assert isinstance(unsent, list)
    for d in unsent:
        print(f"  queued: digest {d.id} {d.watchlist}/{d.channel}, attempts {d.attempts}"
              + (f", last error: {d.last_error}" if d.last_error else ""))
    return 0


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
    for name in names:
        print(f"{name}:")
        for line in report[name]:
            print(f"  {line}")
    return 0 if any(report[n][0].startswith("MATCH") for n in names) else 1


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

    names = _watchlists(settings, args.watchlist)
    matcher = matcher_for(settings)
    since = _since(args.since)
    engine, sessions = db.open_database(settings.storage.url)
    try:
        for name in names:
            wl = settings.watchlist(name)
            assert wl is not None
            bar = Progress(f"backfill {name}", history.count(sessions, since))
            report = history.backfill(sessions, matcher, name, settings.channels_of(wl), since,
                                      datetime.now(UTC), alert=args.alert,
                                      progress=bar.advance)
            bar.close()
            print(f"{name}: {report.scanned} articles scanned, {report.matched} match, "
                  f"{report.recorded} new matches recorded, "
                  f"{len(report.changes) - report.recorded} updated, "
                  f"{report.alerts} alerts queued"
                  + ("" if args.alert else " (without --alert, past articles are not alerted)"))
    finally:
        engine.dispose()
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
    service = Service(settings)
    try:
        pruned = service.prune()
    finally:
        service.close()
    print(f"{pruned.articles} articles pruned to their fingerprints; {pruned.matches} matches, "
          f"{pruned.digests} digests and {pruned.alerts} alerts deleted")
    return 0


def cmd_feeds(settings: config.Settings, args: argparse.Namespace) -> int:
    from monitor import opml

    if args.feeds_command == "export":
        text = opml.write(settings)
        if args.file == "-":
            sys.stdout.write(text)
        else:
            Path(args.file).write_text(text, encoding="utf-8")
            print(f"{len(settings.feeds)} feeds written to {args.file}")
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
    print(f"{len(added)} feeds added to {settings.source} ({len(found) - len(added)} already "
          f"there); a running daemon picks them up at its next tick")
    return 0


def cmd_search(settings: config.Settings, args: argparse.Namespace) -> int:
    from monitor import history
    from monitor.match import Rule, Watchlist
    from monitor.query import QueryError
    from monitor.store import db

    try:
        matcher = Matcher([Watchlist("search", rules=(Rule("query", args.query),))],
                          settings.digest.snippet_chars)
    except (QueryError, ValueError) as e:
        raise UsageError(f"query: {e}") from None
    engine, sessions = db.open_database(settings.storage.url)
    shown = 0
    try:
        for article in history.newest_first(sessions, _since(args.since)):
            found = matcher.match(article.title, article.text)
            if not found:
                continue
            shown += 1
            when = article.published_at or article.created_at
            print(f"[{article.id}] {when:%Y-%m-%d} {article.outlet}: {article.title}")
            print(f"    {article.link}")
            print(f"    {found[0].snippet}")
            if shown >= args.limit:
                break
    finally:
        engine.dispose()
    if not shown:
        print("nothing found")
    return 0 if shown else 1


if __name__ == "__main__":
    raise SystemExit(main())
