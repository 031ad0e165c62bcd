"""The webhook allow-list (``OUTPOST_WEBHOOK_ALLOW``): nothing by default; private and
loopback addresses only when the list names them as addresses."""

from __future__ import annotations

import asyncio

import pytest

from backend.gateway.allow import AllowList
from backend.gateway.errors import TargetRefused


def check(setting: str, url: str) -> None:
    asyncio.run(AllowList.parse(setting).check(url))


def test_the_default_allows_nothing() -> None:
    with pytest.raises(TargetRefused, match="OUTPOST_WEBHOOK_ALLOW is empty"):
        check("", "http://127.0.0.1:9000/hook")


def test_an_address_entry_allows_that_address() -> None:
    check("127.0.0.1", "http://127.0.0.1:9000/hook")
    check("10.1.0.0/16", "https://10.1.2.3/hook")
    with pytest.raises(TargetRefused):
        check("127.0.0.1", "http://127.0.0.2/hook")


def test_a_name_never_opens_a_private_address() -> None:
    # localhost resolves to loopback without any network: named, still refused
    with pytest.raises(TargetRefused, match="private or reserved"):
        check("localhost", "http://localhost:9000/hook")
    check("localhost,127.0.0.0/8,::1", "http://localhost:9000/hook")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "http:///nohost",
        "http://user:pw@127.0.0.1/x",
        "http://169.254.169.254/latest",
        "not a url",
        "http://127.0.0.1:99999/x",
    ],
)
def test_other_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        check("127.0.0.1", url)


def test_name_entries_match_exactly_or_by_subdomain() -> None:
    allow = AllowList.parse("hooks.example.com, *.acme.test")
    assert allow.names == ("hooks.example.com", "*.acme.test")
    with pytest.raises(TargetRefused, match="not on the allow-list"):
        asyncio.run(allow.check("https://evil.example.com/x"))
    with pytest.raises(TargetRefused, match="not on the allow-list"):
        asyncio.run(allow.check("https://acme.test/x"))
