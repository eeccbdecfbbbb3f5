"""TOML config -> frozen, validated settings. The only module that reads the environment.

Every setting is declared once below, with its default, type, validation and help text (the
``description``). Unknown keys are rejected. ``${VAR}`` reads the environment (an unset variable
is an error naming it); ``${VAR:-default}`` falls back. Relative paths resolve against the folder
of the config file. Every problem is reported as ``file: key: message``, all at once.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from monitor.errors import ConfigError, ConfigProblem
from monitor.fields import (
    CHANNEL_NAMES,
    ChannelName,
    Seconds,
    _apprise_urls,
    _duration_seconds,
    _email_address,
    _http_url,
    _one_line,
    _Section,
    _sender,
)
from monitor.spikes import Rules
from monitor.watchlists.compile import watchlist_of
from monitor.watchlists.schema import WatchlistSettings

__all__ = ["CHANNEL_NAMES", "ChannelName", "Settings", "WatchlistSettings", "load"]

DEFAULT_CONFIG = "config/monitor.toml"




class StorageSettings(_Section):
    url: str = Field(
        "sqlite:///data/monitor.db",
        description="SQLAlchemy URL: sqlite:///relative/or/absolute.db (embedded default) or "
        "postgresql+psycopg://user@host:5432/db (several instances can share it).",
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith("postgresql")):
            raise ValueError("use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB")
        if v.startswith("postgresql") and not v.startswith("postgresql+psycopg"):
            raise ValueError("use the psycopg driver: postgresql+psycopg://...")
        return v


class SeedSettings(_Section):
    paths: list[str] = Field(
        default_factory=list,
        description="Files or folders of seed documents (plain text): articles already known. "
        "A copy of a seed is recorded and linked, never alerted.",
    )


class FetchSettings(_Section):
    allow_private_addresses: bool = Field(
        False, description="true: every internal address (loopback, RFC 1918, ...) may be fetched."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description='Hosts or host:port that may resolve to internal addresses, e.g. '
        '["127.0.0.1:8080", "intranet.example"]. Nothing else internal is fetched.',
    )
    timeout: Seconds = Field(
        30.0, description="Total deadline in seconds for one request, redirects included."
    )
    connect_timeout: Seconds = Field(
        10.0, description="Seconds to wait for a connection."
    )
    feed_max_bytes: Annotated[int, Field(gt=0, le=1 << 31)] = Field(
        10_000_000, description="Cap on the decoded size of a feed document."
    )
    page_max_bytes: Annotated[int, Field(gt=0, le=1 << 31)] = Field(
        5_000_000, description="Cap on the decoded size of an article page."
    )
    max_redirects: Annotated[int, Field(ge=0, le=5)] = Field(
        5, description="Redirect hops followed, each checked; at most 5."
    )
    user_agent: str = Field(
        "monitor/0.1 (self-hosted media monitor)", description="User-Agent sent with every request."
    )
    workers: Annotated[int, Field(ge=1, le=64)] = Field(
        8, description="Feeds processed at once."
    )
    per_host: Annotated[int, Field(ge=1, le=16)] = Field(
        2, description="Requests at once to one host."
    )
    fetch_pages: bool = Field(
        True, description="Fetch each new entry's page and extract its text (else feed text only)."
    )
    feed_budget: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = Field(
        300.0, description="Seconds one feed's new entries may take in a cycle; entries left over "
        "are taken up by the next poll, due at once."
    )

    @field_validator("feed_budget", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> float:
        return _duration_seconds(v)


class DocumentSettings(_Section):
    processes: Annotated[int, Field(ge=0, le=64)] = Field(
        0, description="Worker processes that parse feeds and extract pages (0: one per core)."
    )
    timeout: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = Field(
        20.0, description="Seconds one feed parse or page extraction may take; then its worker "
        "is killed and replaced (the feed fails, the entry keeps its feed text)."
    )
    memory_limit: Annotated[int, Field(ge=0, le=1_048_576)] = Field(
        768, description="Address space each worker process may take in MiB, beyond the "
        "parsers and story models it starts with (0: no limit)."
    )


class PollSettings(_Section):
    interval: float = Field(
        1800.0, description="Default poll interval of a feed ('15m', '1h' or seconds)."
    )
    tick: float = Field(
        30.0, description="How often the daemon looks for due feeds and digests."
    )
    max_backoff: float = Field(
        21600.0, description="Longest wait between retries of a failing feed (never given up)."
    )
    dead_after: float = Field(
        259200.0, description="A feed failing this long ('3d') is reported to the operator in "
        "the footer of every digest until it recovers."
    )

    @field_validator("interval", "max_backoff", "dead_after", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return _duration_seconds(v)

    @field_validator("tick", mode="before")
    @classmethod
    def _tick(cls, v: Any) -> float:
        return _duration_seconds(v, timedelta(hours=1))


class FeedSettings(_Section):
    url: str = Field(description="The feed's address (http or https).")
    name: str | None = Field(None, description="Outlet shown in digests (default: feed title).")
    interval: float | None = Field(None, description="Poll interval for this feed ('15m').")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> float | None:
        return None if v is None else _duration_seconds(v)


class EmailChannel(_Section):
    enabled: bool = Field(True, description="false: keep the settings but send no mail.")
    host: str = Field("", description="SMTP server; empty disables the channel.")
    port: Annotated[int, Field(gt=0, lt=65536)] = Field(587, description="SMTP port.")
    tls: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="'starttls' (default), 'ssl' (implicit TLS) or 'none'."
    )
    username: str = Field("", description="SMTP user; empty: no login.")
    password: str = Field("", description="SMTP password (use ${SMTP_PASSWORD}).")
    sender: str = Field("monitor@localhost", description="From address.")
    recipients: list[str] = Field(default_factory=list, description="To addresses.")
    subject: str = Field(
        "[monitor] {watchlist}: {count} new article{plural}",
        description="Subject line; {watchlist}, {count} and {plural} are filled in.",
    )
    timeout: Seconds = Field(
        30.0, description="Seconds for the whole SMTP conversation (a total deadline, not per "
        "read: a server that drips its answers is cut off)."
    )

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.host)

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        return _sender(v)

    @field_validator("host", "subject", "username")
    @classmethod
    def _single_line(cls, v: str) -> str:
        return _one_line(v)

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, v: list[str]) -> list[str]:
        for r in v:
            _email_address(r)
        return v


class SlackChannel(_Section):
    enabled: bool = Field(True, description="false: keep the settings but post nothing.")
    webhook_url: str = Field("", description="Incoming-webhook URL; empty disables the channel.")
    timeout: Seconds = Field(
        30.0, description="Seconds for one delivery to the webhook, every part included (a "
        "total deadline)."
    )

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.webhook_url)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v) if v else v


class AppriseChannel(_Section):
    enabled: bool = Field(True, description="false: keep the settings but notify nothing.")
    urls: list[str] = Field(
        default_factory=list,
        description="Apprise URLs (msteams://, tgram://, discord://, matrix://, ntfy://, "
        "json://...): the text digest goes to each; empty disables the channel.",
    )
    max_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        8, description="Apprise does not say which failures are permanent: after this many "
        "failed attempts a digest is marked failed."
    )

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.urls)

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return _apprise_urls(v)


class ChannelSettings(_Section):
    email: EmailChannel = EmailChannel()
    slack: SlackChannel = SlackChannel()
    apprise: AppriseChannel = AppriseChannel()


class SpikeSettings(_Section):
    """When an entity is mentioned improbably often (``monitor/spikes.py`` says how)."""

    window: float = Field(10800.0, description="The recent window an entity's mentions are "
                          "counted in ('3h').")
    baseline: float = Field(1209600.0, description="The trailing period its usual count comes "
                            "from ('14d').")
    threshold: Annotated[float, Field(gt=0, le=100)] = Field(
        4.0, description="Surprise score for a spike: -log10 of the chance of so many mentions "
        "at the usual rate (4: one in 10,000).")
    min_count: Annotated[int, Field(ge=1, le=10_000)] = Field(
        4, description="Least mentions in the window for a spike.")
    min_outlets: Annotated[int, Field(ge=1, le=1000)] = Field(
        2, description="Least outlets among them.")
    ratio: Annotated[float, Field(ge=1, le=1000)] = Field(
        3.0, description="Least multiple of the usual count.")
    cooldown: float = Field(43200.0, description="After an alert, how long the same entity or "
                            "story stays quiet ('12h') unless its surge grows `growth` times.")
    growth: Annotated[float, Field(ge=1, le=1000)] = Field(
        2.0, description="How much a surge must grow to alert again within the cooldown.")
    breaking_outlets: Annotated[int, Field(ge=2, le=1000)] = Field(
        4, description="A story is breaking when this many outlets carry it within "
        "`breaking_window`...")
    breaking_languages: Annotated[int, Field(ge=2, le=100)] = Field(
        3, description="... or it is told in this many languages within it (by at least "
        "`min_outlets` outlets).")
    breaking_window: float = Field(21600.0, description="The window of a story's velocity "
                                   "('6h').")

    @field_validator("window", "baseline", "cooldown", "breaking_window", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return _duration_seconds(v, timedelta(days=90))

    def rules(self) -> Rules:
        return Rules(window=timedelta(seconds=self.window),
                     baseline=timedelta(seconds=self.baseline), threshold=self.threshold,
                     min_count=self.min_count, min_outlets=self.min_outlets, ratio=self.ratio,
                     cooldown=timedelta(seconds=self.cooldown), growth=self.growth)


class RetentionSettings(_Section):
    after: float = Field(
        0.0, description="Age ('365d') after which an article loses its text, its matches and "
        "its delivery records (sent and failed digests); its fingerprints stay, so later copies "
        "are still recognised (and not alerted). 0: keep everything."
    )

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, v: Any) -> float:
        if v == 0:
            return 0.0
        return _duration_seconds(v, timedelta(days=36500))


class DigestSettings(_Section):
    templates: str | None = Field(
        None, description="Folder of templates overriding the built-in digest.txt/digest.html."
    )
    snippet_chars: Annotated[int, Field(ge=40, le=2000)] = Field(
        240, description="Characters of context around a match in digests."
    )


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per line (time, level, message and the "
        "fields of feed results), for log collectors."
    )


class HttpSettings(_Section):
    enabled: bool = Field(
        False, description="Serve the web desk (/, /search, /feeds, /digests...), /healthz, "
        "/metrics (Prometheus) and /feeds/<watchlist>.atom."
    )
    listen: str = Field(
        "127.0.0.1:9108", description="host:port of the endpoint: loopback, unless a token is "
        "set (a non-loopback address without one refuses to start)."
    )
    token: str = Field(
        "", description="With a token, every page but /healthz asks for it: a browser logs in "
        "once (a cookie), a client sends 'Authorization: Bearer <token>'. Use ${MONITOR_TOKEN}; "
        "at least 16 characters."
    )
    atom_items: Annotated[int, Field(ge=1, le=1000)] = Field(
        50, description="Matches per watchlist in its Atom feed."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {v!r}")
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        if v and len(v) < 16:
            raise ValueError("too short: use at least 16 characters (e.g. the output of "
                             "`openssl rand -hex 16`)")
        return v

    @model_validator(mode="after")
    def _loopback_or_token(self) -> HttpSettings:
        if self.enabled and not self.token and not is_loopback(self.listen):
            raise ValueError(f"listen {self.listen!r} is not a loopback address: set "
                             f"http.token to serve the desk there")
        return self


def is_loopback(listen: str) -> bool:
    """Whether ``host:port`` listens on loopback only (an empty host or 0.0.0.0 is everywhere)."""
    import ipaddress

    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to


class Settings(_Section):
    """The whole config, frozen once loaded."""

    watchlist_files: list[str] = Field(
        default_factory=list, description="Globs of more watchlist files, one watchlist per file."
    )
    storage: StorageSettings = StorageSettings()
    seeds: SeedSettings = SeedSettings()
    fetch: FetchSettings = FetchSettings()
    documents: DocumentSettings = DocumentSettings()
    poll: PollSettings = PollSettings()
    feeds: list[FeedSettings] = Field(default_factory=list)
    watchlists: list[WatchlistSettings] = Field(default_factory=list)
    channels: ChannelSettings = ChannelSettings()
    digest: DigestSettings = DigestSettings()
    retention: RetentionSettings = RetentionSettings()
    spikes: SpikeSettings = SpikeSettings()
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()

    # Filled by load(), not by the user.
    source: str = Field("", exclude=True, description="internal")
    base_dir: str = Field(".", exclude=True, description="internal")

    @model_validator(mode="after")
    def _everyone_has_recipients(self) -> Settings:
        if not self.channels.email.active or self.channels.email.recipients:
            return self
        lacking = [w.name for w in self.watchlists if "email" in w.channels and not w.recipients]
        if lacking:
            raise ValueError(f"channels.email.recipients: needed, since watchlist "
                             f"{lacking[0]!r} sends email and has no recipients of its own")
        return self

    def active_channels(self) -> list[str]:
        return [name for name in CHANNEL_NAMES if getattr(self.channels, name).active]

    def watchlist(self, name: str) -> WatchlistSettings | None:
        return next((w for w in self.watchlists if w.name == name), None)

    def channels_of(self, wl: WatchlistSettings) -> list[str]:
        """The channels this watchlist really delivers to: listed, enabled and addressed
        (by the channel's settings or the watchlist's own recipients, webhook or URLs)."""
        c = self.channels
        ready = {
            "email": c.email.active,
            "slack": c.slack.enabled and bool(wl.slack_webhook_url or c.slack.webhook_url),
            "apprise": c.apprise.enabled and bool(wl.apprise_urls or c.apprise.urls),
        }
        return [str(name) for name in wl.channels if ready[name]]

    def recipients_of(self, watchlist: str) -> list[str]:
        wl = self.watchlist(watchlist)
        return list(wl.recipients) if wl and wl.recipients else list(self.channels.email.recipients)

    def slack_webhook_of(self, watchlist: str) -> str:
        wl = self.watchlist(watchlist)
        return wl.slack_webhook_url if wl and wl.slack_webhook_url else \
            self.channels.slack.webhook_url

    def apprise_urls_of(self, watchlist: str) -> list[str]:
        wl = self.watchlist(watchlist)
        return list(wl.apprise_urls) if wl and wl.apprise_urls else list(self.channels.apprise.urls)

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def seed_paths(self) -> list[Path]:
        return [self.resolve(p) for p in self.seeds.paths]

    def sqlite_path(self) -> Path | None:
        url = self.storage.url
        if not url.startswith("sqlite:///"):
            return None
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


# ---------------------------------------------------------------------------------------------
# Loading


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, key: str, env: Mapping[str, str], problems: list[ConfigProblem],
            file: str) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, recursively."""
    if isinstance(value, str):
        def sub(found: re.Match[str]) -> str:
            name, default = found.group(1), found.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(ConfigProblem(file, key, f"environment variable {name} is not set "
                                          f"(set it, or write ${{{name}:-default}})"))
            return ""
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", env, problems, file) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}" if key else k, env, problems, file)
                for k, v in value.items()}
    return value


def _read_toml(path: Path, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(ConfigProblem(str(path), "", "file not found"))
    except tomllib.TOMLDecodeError as e:
        problems.append(ConfigProblem(str(path), "", f"not valid TOML: {e}"))
    except OSError as e:
        problems.append(ConfigProblem(str(path), "", f"cannot read: {e.strerror}"))
    return None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _known_keys() -> set[str]:
    """Every key of every config section, for "did you mean"."""
    keys: set[str] = set()
    sections: list[type[BaseModel]] = [_Section, Settings]
    while sections:
        model = sections.pop()
        sections.extend(model.__subclasses__())
        keys.update(model.model_fields)
    return keys


def _message(err: Mapping[str, Any]) -> str:
    """One line that says what is wrong, with the value that was given."""
    given = err.get("input")
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        close = difflib.get_close_matches(key, sorted(_known_keys()), n=1, cutoff=0.75)
        return f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        options = [o.strip(" '") for o in re.split(r",| or ", expected) if o.strip(" '")]
        close = difflib.get_close_matches(str(given), options, n=1, cutoff=0.6)
        return (f"{given!r} is not allowed; use {expected}"
                + (f" (did you mean {close[0]!r}?)" if close else ""))
    msg = str(err["msg"]).removeprefix("Value error, ")
    if isinstance(given, str | int | float | bool) and repr(given) not in msg:
        msg += f", got {given!r}"
    return msg


def _validation_problems(e: ValidationError, file_of: Any) -> list[ConfigProblem]:
    out = []
    for err in e.errors():
        loc = tuple(err["loc"])
        file, loc = file_of(loc)
        out.append(ConfigProblem(file, _loc(loc), _message(err)))
    return out


def load(path: str | os.PathLike[str] | None = None,
         env: Mapping[str, str] | None = None, *, empty_globs: bool = False) -> Settings:
    """Read, expand and validate the config; raise ConfigError listing every problem.

    A ``watchlist_files`` glob that matches nothing is a mistake at start-up and in ``check``;
    a reload passes ``empty_globs`` (its files may be gone for a moment, or removed on
    purpose: the reloader decides)."""
    env = os.environ if env is None else env
    if path is None:
        path = env.get("MONITOR_CONFIG") or DEFAULT_CONFIG
    cfg_path = Path(path)
    problems: list[ConfigProblem] = []
    raw = _read_toml(cfg_path, problems)
    if raw is None:
        raise ConfigError(problems)
    file = str(cfg_path)
    data = _expand(raw, "", env, problems, file)
    base_dir = cfg_path.resolve().parent

    # Watchlist files: one watchlist per file, its keys at top level (name defaults to the stem).
    inline = data.get("watchlists", [])
    if not isinstance(inline, list):
        problems.append(ConfigProblem(file, "watchlists", "must be an array of tables"))
        inline = []
    origins: list[tuple[str, int | None]] = [(file, i) for i in range(len(inline))]
    for i, w in enumerate(inline):
        if isinstance(w, dict):
            w["source"] = f"{file}#watchlists[{i}]"
    files = data.get("watchlist_files", [])
    if isinstance(files, list):
        for i, pattern in enumerate(files):
            if not isinstance(pattern, str):
                continue
            full = pattern if os.path.isabs(pattern) else str(base_dir / pattern)
            matched = sorted(glob.glob(full))
            if not matched and not (empty_globs and glob.has_magic(pattern)):
                problems.append(ConfigProblem(file, f"watchlist_files[{i}]",
                                              f"no file matches {full}" if glob.has_magic(pattern)
                                              else f"no such file: {full}"))
            for wfile in matched:
                wraw = _read_toml(Path(wfile), problems)
                if wraw is None:
                    continue
                wdata = _expand(wraw, "", env, problems, wfile)
                wdata.setdefault("name", Path(wfile).stem)
                wdata["source"] = wfile
                inline.append(wdata)
                origins.append((wfile, None))
    data["watchlists"] = inline

    def file_of(loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        if len(loc) >= 2 and loc[0] == "watchlists" and isinstance(loc[1], int):
            origin, index = origins[loc[1]] if loc[1] < len(origins) else (file, loc[1])
            if index is None:
                return origin, loc[2:]
            return origin, ("watchlists", index, *loc[2:])
        return file, loc

    settings: Settings | None = None
    try:
        settings = Settings.model_validate({**data, "source": file, "base_dir": str(base_dir)})
    except ValidationError as e:
        problems.extend(_validation_problems(e, file_of))
    if settings is not None:
        problems.extend(_cross_checks(settings, origins))
    if problems:
        raise ConfigError(problems)
    assert settings is not None
    return _resolved(settings)


def _cross_checks(s: Settings, origins: list[tuple[str, int | None]]) -> list[ConfigProblem]:
    from monitor.match import Matcher

    problems = []
    seen: dict[str, int] = {}
    for i, w in enumerate(s.watchlists):
        origin, index = origins[i]
        key = f"watchlists[{index}].name" if index is not None else "name"
        if w.name in seen:
            problems.append(ConfigProblem(origin, key, f"duplicate watchlist name {w.name!r}"))
        seen[w.name] = i
        try:  # what the daemon will build: a word with nothing to match is found here
            Matcher([watchlist_of(w)])
        except ValueError as e:
            prefix = f"watchlists[{index}]." if index is not None else ""
            problems.append(ConfigProblem(origin, f"{prefix}terms", str(e)))
    urls: set[str] = set()
    for i, f in enumerate(s.feeds):
        if f.url in urls:
            problems.append(ConfigProblem(s.source, f"feeds[{i}].url", f"duplicate feed {f.url}"))
        urls.add(f.url)
    for i, p in enumerate(s.seeds.paths):
        if not s.resolve(p).exists():
            problems.append(ConfigProblem(s.source, f"seeds.paths[{i}]",
                                          f"no such file or folder: {s.resolve(p)}"))
    if s.digest.templates and not s.resolve(s.digest.templates).is_dir():
        problems.append(ConfigProblem(s.source, "digest.templates",
                                      f"no such folder: {s.resolve(s.digest.templates)}"))
    for i, host in enumerate(s.fetch.allowed_hosts):
        if not host or "/" in host or " " in host:
            problems.append(ConfigProblem(s.source, f"fetch.allowed_hosts[{i}]",
                                          f"expected host or host:port, got {host!r}"))
    return problems


def _resolved(s: Settings) -> Settings:
    """Make the SQLite path absolute (relative to the config file's folder)."""
    url = s.storage.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url.removeprefix("sqlite:///")
        if rest and not rest.startswith(":memory:"):
            url = "sqlite:///" + str(s.resolve(rest))
            s = s.model_copy(update={"storage": StorageSettings(url=url)})
    return s


# ---------------------------------------------------------------------------------------------
# Reference documentation, generated from the declarations above (README.md embeds it; a test
# fails when the two drift apart: run `python -m monitor.config` and paste, or
# `python scripts/update_reference.py`).


def _default(field: Any) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    return f"`{value!r}`"


def reference_rows(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """One Markdown table row per setting: key, default, description."""
    rows: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        annotation = field.annotation
        key = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += reference_rows(annotation, f"{key}.")
            continue
        item = getattr(annotation, "__args__", (None,))[0]
        if isinstance(item, type) and issubclass(item, BaseModel):  # [[feeds]], [[watchlists]]
            table = f"{prefix[2:prefix.index(']]')]}.{name}" if prefix.startswith("[[") else key
            rows += reference_rows(item, f"[[{table}]] ")
            continue
        text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_default(field)} | {text} |")
    return rows


def reference_markdown() -> str:
    return "\n".join(["| key | default | meaning |", "|---|---|---|", *reference_rows()])


if __name__ == "__main__":
    print(reference_markdown())
