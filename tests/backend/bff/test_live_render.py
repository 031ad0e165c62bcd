"""A page that many live connections share is encoded once, but not for long: its
``server_time`` is what each device's clock takes in, so a connection that gets it later
than ``RENDER_FRESH_S`` after it was encoded gets it encoded again, with the time then.
And a change notice the projector hands to the hub in place is offered to the connections
once, not again when its NATS copy comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from backend.bff.sync import live
from backend.bff.sync.live import ChangeHub
from backend.bff.sync.pull import Page
from backend.db import Database


def _server_time(rendered: live.Rendered) -> int:
    data = rendered[1].encode().decode()
    return int(data.split('"server_time":')[1].split(",")[0])


def test_a_shared_page_is_encoded_again_once_its_server_time_would_be_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = {"monotonic": 1000.0, "ms": 1_800_000_000_000}
    monkeypatch.setattr(live.time, "monotonic", lambda: clock["monotonic"])
    monkeypatch.setattr(live, "system_ms", lambda: clock["ms"])
    hub = ChangeHub(NatsClient(), Database.for_component("projector", data_dir=tmp_path, url=None))
    page = Page(changes=[], cursor="c", has_more=False, watermark=7, generation="g", reset=False)

    first = hub.render(page)
    clock["monotonic"] += live.RENDER_FRESH_S / 2
    clock["ms"] += 500
    assert hub.render(page) is first  # shared: one encoding for the connections of a moment
    assert _server_time(first) == 1_800_000_000_000

    clock["monotonic"] += live.RENDER_FRESH_S
    clock["ms"] += 60_000
    later = hub.render(page)
    assert later is not first and _server_time(later) == 1_800_000_060_500


def test_a_notice_handed_over_in_place_is_not_offered_again_when_nats_brings_it(
    tmp_path: Path,
) -> None:
    """The projector beside the BFF hands its change notice to the hub at once
    (``ConsumerRunner.notify_here``); the copy on NATS, for the other processes, carries the
    hub's origin and is skipped here, while a notice of another process's projector is not."""
    hub = ChangeHub(NatsClient(), Database.for_component("projector", data_dir=tmp_path, url=None))
    offered: list[tuple[int, str]] = []

    class Counting(live.Listener):
        def offer(self, notice: live.ChangeNotice) -> None:
            offered.append((notice.watermark, notice.origin))

    hub._listeners.add(Counting("ann"))

    def notice(watermark: int, origin: str) -> bytes:
        body = {"component": "projector", "boards": ["b"], "usernames": [], "watermark": watermark}
        return msgspec.json.encode({**body, "origin": origin})

    here = notice(5, hub.origin)
    hub.offer_notice(here)
    asyncio.run(hub._on_notice(Msg(NatsClient(), subject="outpost.changes", data=here)))
    elsewhere = notice(6, "another-process")
    asyncio.run(hub._on_notice(Msg(NatsClient(), subject="outpost.changes", data=elsewhere)))
    old_projector = msgspec.json.encode(
        {"component": "p", "boards": [], "usernames": [], "watermark": 7}
    )
    asyncio.run(hub._on_notice(Msg(NatsClient(), subject="outpost.changes", data=old_projector)))
    assert offered == [(5, hub.origin), (6, "another-process"), (7, "")]
