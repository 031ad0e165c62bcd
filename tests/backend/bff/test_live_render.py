"""A page that many live connections share is encoded once, but not for long: its
``server_time`` is what each device's clock takes in, so a connection that gets it later
than ``RENDER_FRESH_S`` after it was encoded gets it encoded again, with the time then."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

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
