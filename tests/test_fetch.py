"""The fetcher against a real loopback server: address guard, rebinding, redirects, caps, 304."""

from __future__ import annotations

import pytest

from monitor.errors import BlockedAddress, FetchError, TooLarge
from monitor.fetch import NOT_MODIFIED, Fetched, Fetcher
from monitor.guard import AddressPolicy
from tests.conftest import Route, Web


def fetcher(web: Web, *, allowed: bool = True, resolver: object = None) -> Fetcher:
    hosts = [f"127.0.0.1:{web.port}", f"localhost:{web.port}"] if allowed else []
    kwargs = {"resolver": resolver} if resolver else {}
    return Fetcher(policy=AddressPolicy.from_settings(False, hosts), user_agent="test",
                   timeout=5, connect_timeout=2, **kwargs)  # type: ignore[arg-type]


def test_internal_address_refused_and_never_contacted(web: Web) -> None:
    web.routes["/feed"] = Route(200, b"secret")
    f = fetcher(web, allowed=False)
    for spelling in ["127.0.0.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]"]:
        with pytest.raises((BlockedAddress, FetchError)):
            f.get(f"http://{spelling}:{web.port}/feed", max_bytes=1000)
    assert web.requests == []


def test_dns_rebinding_gets_nothing_through(web: Web) -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["127.0.0.1"])

    f = fetcher(web, allowed=False, resolver=rebinding)
    with pytest.raises(FetchError):
        f.get(f"http://rebind.example:{web.port}/feed", max_bytes=1000)
    with pytest.raises(BlockedAddress):
        f.get(f"http://rebind.example:{web.port}/feed", max_bytes=1000)
    assert web.requests == []


def test_allowed_host_fetches_and_conditional_get(web: Web) -> None:
    web.routes["/feed"] = Route(200, b"<rss/>", {"ETag": '"e1"'})
    f = fetcher(web)
    got = f.get(web.url("/feed"), max_bytes=1000)
    assert isinstance(got, Fetched) and got.body == b"<rss/>" and got.etag == '"e1"'
    assert f.get(web.url("/feed"), max_bytes=1000, etag='"e1"') is NOT_MODIFIED


def test_redirect_to_internal_address_is_refused(web: Web) -> None:
    web.routes["/hop"] = Route(302, b"", {"Location": f"http://10.0.0.1:{web.port}/x"})
    with pytest.raises(BlockedAddress):
        fetcher(web).get(web.url("/hop"), max_bytes=1000)


def test_redirect_loops_stop_after_five_hops(web: Web) -> None:
    web.routes["/loop"] = Route(302, b"", {"Location": "/loop"})
    with pytest.raises(FetchError, match="redirects"):
        fetcher(web).get(web.url("/loop"), max_bytes=1000)
    assert web.hits("/loop") == 6


def test_redirect_to_file_scheme_is_refused(web: Web) -> None:
    web.routes["/f"] = Route(302, b"", {"Location": "file:///etc/passwd"})
    with pytest.raises(BlockedAddress, match="only http and https"):
        fetcher(web).get(web.url("/f"), max_bytes=1000)


def test_body_over_the_cap_is_refused(web: Web) -> None:
    web.routes["/big"] = Route(200, b"x" * 5000)
    with pytest.raises(TooLarge):
        fetcher(web).get(web.url("/big"), max_bytes=1000)


def test_gzip_bomb_is_stopped_on_decoded_bytes(web: Web) -> None:
    import gzip

    web.routes["/bomb"] = Route(200, gzip.compress(b"\0" * 5_000_000),
                                {"Content-Encoding": "gzip"})
    with pytest.raises(TooLarge, match="decoded"):
        fetcher(web).get(web.url("/bomb"), max_bytes=100_000)


def test_retry_after_is_reported(web: Web) -> None:
    from monitor.errors import RetryLater

    web.routes["/busy"] = Route(429, b"", {"Retry-After": "120"})
    with pytest.raises(RetryLater) as info:
        fetcher(web).get(web.url("/busy"), max_bytes=1000)
    assert info.value.retry_after == 120
