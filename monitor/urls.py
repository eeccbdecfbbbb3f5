"""URL identity: which links may be fetched, and the canonical form two copies of a link share."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "piwik_", "at_")
_TRACKING = {
    "fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "ref", "ref_src", "cmpid",
    "ncid", "ocid", "smid", "sr_share", "share", "xtor", "_ga", "spm", "__twitter_impression",
    "amp", "outputtype",
}


# scheme://userinfo@host: the userinfo runs to the last '@' before the path
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]*@")


def redact(text: str) -> str:
    """``text`` with the user and password of every URL in it masked
    (``https://***@host/``): wherever a URL is shown or logged."""
    if "@" not in text:
        return text
    return _USERINFO.sub(r"\1***@", text)


def is_fetchable(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def canonical_url(url: str) -> str:
    """One spelling per article: https, lower-case host without www./m./amp., no tracking
    parameters, sorted query, no fragment, no trailing slash or AMP suffix."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return url.strip()
    for prefix in ("www.", "m.", "mobile.", "amp."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix):]
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    path = parts.path or "/"
    for suffix in ("/amp", "/amp/", ".amp"):
        if path.endswith(suffix) and len(path) > len(suffix):
            path = path[: -len(suffix)]
    path = path.rstrip("/") or "/"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _TRACKING and not k.lower().startswith(_TRACKING_PREFIXES)
    )
    return urlunsplit(("https", host, path, urlencode(query), ""))
