"""The watchlist format: terms, entities and their aliases, rules, guards, fixtures, channels,
schedule and quiet hours, validated as the config is read. ``watchlists.compile`` turns it into
the matcher."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from monitor.fields import (
    ChannelName,
    _apprise_urls,
    _email_address,
    _http_url,
    _one_line,
    _Section,
)
from monitor.schedule import parse_quiet_hours, parse_schedule, parse_timezone


class GuardSettings(_Section):
    terms: Annotated[list[str], Field(min_length=1)] = Field(
        description="Terms of the watchlist that are ambiguous alone (\"Wagner\")."
    )
    near: list[str] = Field(
        default_factory=list, description="One of these must be within `window` words of the "
        "term (\"mercenar*\": a trailing * takes any ending). Empty: no such need."
    )
    not_near: list[str] = Field(
        default_factory=list, description="None of these may be within `window` words "
        "(\"opera\", \"composer\", \"Bayreuth\")."
    )
    window: Annotated[int, Field(ge=1, le=200)] = Field(
        12, description="Words on either side of the term that count as its context."
    )


FieldName = Literal["title", "body"]


class AliasSettings(_Section):
    text: str = Field(description="The alias as written (\"Asmi Guetta\", \"عاصمي غويتا\").")
    fuzzy: bool | None = Field(None, description="Override the entity's `fuzzy` for this alias.")
    exact: bool | None = Field(None, description="Override the entity's `exact` for this alias.")
    capitalised: bool | None = Field(
        None, description="Override the entity's `capitalised` for this alias."
    )

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not re.search(r"\w", v):
            raise ValueError("an alias needs letters or digits")
        return v.strip()


class EntitySettings(_Section):
    name: str = Field(description="What the entity is called in digests (\"Assimi Goïta\").")
    id: str = Field("", description="Short name for queries (`@goita`); default: none.")
    aliases: Annotated[list[str | AliasSettings], Field(min_length=1)] = Field(
        description="Every way it is written, in every script: strings, or tables "
        "{ text, fuzzy, exact, capitalised }."
    )
    fuzzy: bool = Field(
        False, description="Allow spelling noise in words of 7 letters or more (1 edit; 2 from "
        "10 letters; the first letter as written), never in acronyms or all-capital words. "
        "For people's names."
    )
    exact: bool = Field(
        False, description="Match the aliases as written: no Russian case endings, no Arabic "
        "clitics, no fuzziness (case and diacritics are still ignored)."
    )
    capitalised: bool = Field(
        False, description="Only occurrences that start with a capital letter count "
        "(\"Chad\" the country, not \"chad\").",
    )
    fields: Annotated[list[FieldName], Field(min_length=1)] = Field(
        default=["title", "body"], description="Where to look: title, body."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if v and not re.fullmatch(r"[\w.-]+", v):
            raise ValueError("letters, digits, '.', '-' and '_' only")
        return v

    def terms(self) -> list[AliasSettings]:
        out = []
        for a in self.aliases:
            alias = AliasSettings(text=a) if isinstance(a, str) else a
            out.append(AliasSettings(
                text=alias.text,
                fuzzy=self.fuzzy if alias.fuzzy is None else alias.fuzzy,
                exact=self.exact if alias.exact is None else alias.exact,
                capitalised=self.capitalised if alias.capitalised is None else alias.capitalised,
            ))
        return out


class RuleSettings(_Section):
    name: str = Field(description="What the rule is called in digests.")
    query: str = Field(
        description="AND, OR, NOT, \"phrases\", NEAR/n, (groups), title: and body:, @entity, "
        "word* (any ending). Example: `Wagner NEAR/10 (Mali OR Sahel) AND NOT opera`."
    )
    fields: Annotated[list[FieldName], Field(min_length=1)] = Field(
        default=["title", "body"], description="Where its words are looked for: title, body."
    )

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        from monitor.query import parse

        parse(v)
        return v


class FixtureSettings(_Section):
    must_match: list[str] = Field(
        default_factory=list, description="Headlines this watchlist must match; "
        "`monitor check` fails naming each one it misses."
    )
    must_not_match: list[str] = Field(
        default_factory=list, description="Headlines it must leave alone (the traps)."
    )


class WatchlistSettings(_Section):
    name: str = Field(description="Unique name of the watchlist, shown in digests.")
    terms: list[str] = Field(
        default_factory=list,
        description="Terms matched case-insensitively on word boundaries, ignoring diacritics, "
        "with possessives, Russian case endings and Arabic clitics.",
    )
    entities: list[EntitySettings] = Field(
        default_factory=list, description="Names with aliases in several scripts: [[entities]] "
        "name, id, aliases, fuzzy, exact, capitalised, fields."
    )
    rules: list[RuleSettings] = Field(
        default_factory=list, description="Boolean and proximity queries: [[rules]] name, "
        "query, fields."
    )
    fixtures: FixtureSettings = Field(default_factory=FixtureSettings)
    source: str = Field("", exclude=True, description="internal")  # file, key prefix
    channels: list[ChannelName] = Field(
        default=["email"], description="Where this watchlist's digests go: email, slack, apprise."
    )
    recipients: list[str] = Field(
        default_factory=list,
        description="Email recipients of this watchlist's digests (a desk's own list); "
        "default: channels.email.recipients.",
    )
    slack_webhook_url: str = Field(
        "", description="Slack webhook of this watchlist; default: channels.slack.webhook_url."
    )
    apprise_urls: list[str] = Field(
        default_factory=list, description="Apprise URLs of this watchlist; default: "
        "channels.apprise.urls."
    )
    schedule: str = Field(
        "hourly",
        description="When digests go out: 'every 30m', 'hourly', 'daily 07:00' or 'cron ...'. "
        "A watchlist that never sent a digest sends its first one with its first alerts.",
    )
    timezone: str = Field("UTC", description="IANA timezone of the schedule.")
    guards: list[GuardSettings] = Field(
        default_factory=list, description="Context rules for ambiguous terms: "
        "[[guards]] terms, near, not_near, window."
    )
    quiet_hours: str = Field(
        "", description="'22:00-07:00' in the watchlist's timezone: digests due then wait until "
        "it ends (deferred, never dropped). Empty: none."
    )
    urgent: bool = Field(
        False, description="true: every new match goes out at the next cycle, ignoring the "
        "schedule and quiet hours."
    )
    urgent_terms: list[str] = Field(
        default_factory=list, description="Terms, entity names or rule names whose matches go "
        "out at the next cycle, ignoring the schedule and quiet hours; the digest carries "
        "everything pending."
    )
    spike_alerts: bool = Field(
        True, description="Send a message of its own, at the next cycle, when an entity or "
        "term of this watchlist spikes or one of its stories is breaking ([spikes])."
    )
    spikes_in_quiet_hours: bool = Field(
        False, description="true: spike and breaking alerts go out during quiet hours too."
    )

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, v: list[str]) -> list[str]:
        for r in v:
            _email_address(r)
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a watchlist needs a name")
        return _one_line(v)

    @field_validator("slack_webhook_url")
    @classmethod
    def _webhook(cls, v: str) -> str:
        return _http_url(v) if v else v

    @field_validator("apprise_urls")
    @classmethod
    def _apprise(cls, v: list[str]) -> list[str]:
        return _apprise_urls(v)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str) -> str:
        if v.strip():
            parse_quiet_hours(v)
        return v.strip()

    def labels(self) -> list[str]:
        """What a match of this watchlist can name: its terms, entities and rules."""
        return [*self.terms, *(e.name for e in self.entities), *(r.name for r in self.rules)]

    @model_validator(mode="after")
    def _something_to_find(self) -> WatchlistSettings:
        if not (self.terms or self.entities or self.rules):
            raise ValueError("terms: a watchlist needs terms, entities or rules")
        return self

    @model_validator(mode="after")
    def _guard_terms(self) -> WatchlistSettings:
        known = {*self.terms, *(e.name for e in self.entities),
                 *(a.text for e in self.entities for a in e.terms())}
        for i, guard in enumerate(self.guards):
            unknown = [t for t in guard.terms if t not in known]
            if unknown:
                raise ValueError(f"guards[{i}].terms: not among terms, entities or aliases: "
                                 f"{', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _references(self) -> WatchlistSettings:
        from monitor.query import parse, refs_of

        ids = [e.id for e in self.entities if e.id]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"entities: id {dup[0]!r} is used twice")
        for i, rule in enumerate(self.rules):
            for ref in refs_of(parse(rule.query)):
                if ref.entity not in ids:
                    raise ValueError(f"rules[{i}].query: no entity with id {ref.entity!r}")
        return self

    @model_validator(mode="after")
    def _urgent_terms(self) -> WatchlistSettings:
        unknown = [t for t in self.urgent_terms if t not in self.labels()]
        if unknown:
            raise ValueError(f"urgent_terms: not among terms, entities or rules: "
                             f"{', '.join(unknown)}")
        return self

    @field_validator("terms")
    @classmethod
    def _terms(cls, v: list[str]) -> list[str]:
        cleaned = [t.strip() for t in v]
        if any(not re.search(r"\w", t) for t in cleaned):
            raise ValueError("every term needs letters or digits")
        return cleaned

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        parse_timezone(v)
        return v

    @model_validator(mode="after")
    def _schedule(self) -> WatchlistSettings:
        try:
            parse_schedule(self.schedule, self.timezone)
        except ValueError as e:
            raise ValueError(f"schedule: {e}") from None
        return self
