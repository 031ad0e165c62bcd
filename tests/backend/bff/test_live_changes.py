"""``GET /v1/sync/live?since=<cursor>``: the stream carries ``event: changes``, each exactly a
pull page from the connection's cursor, on real backend processes over real HTTP; it says
``poke`` (and the device pulls) for a reset or a burst of more than one page, and refuses a
cursor the server never made before the stream starts."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from tests.backend.bff.test_live import (
    FAST_KEEPALIVE,
    Received,
    live,
    pushed,
    user,
)
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

PAGE_LIMIT = 5
PAGE_KEYS = {"changes", "cursor", "has_more", "watermark", "server_time", "generation", "reset"}


@pytest.fixture(scope="module")
def changes_backend(
    tmp_path_factory: pytest.TempPathFactory, module_nats: ControlledNats
) -> Iterator[BackendProcess]:
    env = {**FAST_KEEPALIVE, "OUTPOST_LIVE_PAGE_LIMIT": str(PAGE_LIMIT)}
    process = BackendProcess(
        tmp_path_factory.mktemp("backend"), nats_url=module_nats.url, env=env
    ).start()
    try:
        yield process
    finally:
        process.stop()


def _pages(received: list[Received]) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.data) for r in received if r.kind == "changes"]


def _page_with(what: str, found: Any) -> Any:
    def look(received: list[Received]) -> dict[str, Any] | None:
        return next((page for page in _pages(received) if found(page)), None)

    look.__name__ = what
    return look


def _change(page: dict[str, Any], kind: str, entity: str) -> dict[str, Any] | None:
    return next((c for c in page["changes"] if (c["kind"], c["id"]) == (kind, entity)), None)


def _synced_owner(backend: BackendProcess) -> tuple[Device, str, str]:
    alice = user(backend, "alice")
    board, created = alice.new_board()
    task, made = alice.new_task(board, title="first")
    alice.sync_until(pushed(alice, created, made))
    return alice, board, task


def test_a_cursor_the_server_never_made_is_refused_before_the_stream_starts(
    changes_backend: BackendProcess,
) -> None:
    alice = user(changes_backend, "alice")
    for since in ("not-a-cursor", "v2.e30.forged", "v9." + "A" * 40):
        response = httpx.get(
            f"{changes_backend.url}/v1/sync/live",
            params={"since": since},
            headers=alice.headers,
            timeout=10,
        )
        assert response.status_code == 400, (since, response.text)
        assert "cursor" in response.json()["detail"]


def test_an_edit_arrives_as_a_pull_page_from_the_connection_cursor(
    changes_backend: BackendProcess,
) -> None:
    alice, board, task = _synced_owner(changes_backend)
    since = alice.cursor
    edit = alice.event("TaskUpdated", {"fields": {"title": "second"}}, board=board, entity=task)
    with live(alice, since) as stream:
        seq = pushed(alice, edit)
        page = stream.wait_for(
            "a page with the edit",
            _page_with(
                "edit",
                lambda p: (c := _change(p, "task", task)) and c["values"]["title"] == "second",
            ),
        )
        assert not [r for r in stream.snapshot() if r.kind == "poke"]

    assert set(page) == PAGE_KEYS and page["watermark"] >= seq
    assert page["reset"] is False and page["has_more"] is False
    # Exactly what a pull from the same cursor answers, and its cursor goes on from there.
    pulled = alice.pull_page(since).json()
    assert set(pulled) == PAGE_KEYS
    assert _change(pulled, "task", task) == _change(page, "task", task)
    assert alice.pull_page(page["cursor"]).json()["changes"] == []


def test_a_removed_member_learns_it_through_the_stream(changes_backend: BackendProcess) -> None:
    alice, board, _ = _synced_owner(changes_backend)
    bob = user(changes_backend, "bob")
    bob.sync_until(
        pushed(alice, alice.event("MemberAdded", {"username": bob.username}, board=board))
    )
    assert board in bob.boards()
    with live(bob, bob.cursor) as stream:
        pushed(alice, alice.event("MemberRemoved", {"username": bob.username}, board=board))
        page = stream.wait_for(
            "the board's removal", _page_with("removal", lambda p: _change(p, "board", board))
        )
    assert _change(page, "board", board) == {
        "kind": "board",
        "id": board,
        "board": board,
        "version": _change(page, "board", board)["version"],  # type: ignore[index]
        "removed": True,
        "values": None,
    }


def test_a_new_member_gets_the_whole_board_through_the_stream(
    changes_backend: BackendProcess,
) -> None:
    alice, board, task = _synced_owner(changes_backend)
    bob = user(changes_backend, "bob")
    bob.pull()
    with live(bob, bob.cursor) as stream:
        pushed(alice, alice.event("MemberAdded", {"username": bob.username}, board=board))
        # The backfill: tasks written before Bob could see the board come too.
        page = stream.wait_for(
            "the shared board with its task",
            _page_with("backfill", lambda p: _change(p, "task", task)),
        )
    assert _change(page, "task", task)["values"]["title"] == "first"  # type: ignore[index]
    assert any(
        c["kind"] == "board" and c["id"] == board
        for p in _pages(stream.snapshot())
        for c in p["changes"]
    )


def test_a_burst_of_more_pages_than_a_turn_holds_says_poke_and_the_device_pulls(
    changes_backend: BackendProcess,
) -> None:
    alice, board, _ = _synced_owner(changes_backend)
    before = alice.cursor
    burst = [alice.new_task(board, title=f"burst {i}")[1] for i in range(PAGE_LIMIT * 4)]
    seq = pushed(alice, *burst)
    # The whole burst is in the views before the stream opens from the cursor before it, so
    # its first turn meets all four pages at once (opened earlier, a turn could begin while
    # the projector has committed only part of the burst, and a short page ends a turn).
    alice.sync_until(seq)
    with live(alice, before) as stream:
        stream.wait_poke(seq)
        after_poke = pushed(alice, alice.new_task(board, title="after")[1])
        stream.wait_poke(after_poke)  # from then on it pokes: the device reconnects
        received = [r for r in stream.snapshot() if r.kind in ("changes", "poke")]
    # At most three pages in a row, each a full page that says more follow, then pokes.
    kinds = [r.kind for r in received]
    pages = kinds.index("poke")
    assert 0 <= pages <= 3 and set(kinds[pages:]) == {"poke"}, kinds
    assert all(page["has_more"] for page in _pages(received))
    alice.pull()
    titles = {c["values"]["title"] for (kind, _), c in alice.state.items() if kind == "task"}
    assert {"burst 0", f"burst {PAGE_LIMIT * 4 - 1}", "after"} <= titles


def test_a_cursor_of_another_generation_says_poke_for_the_reset(
    changes_backend: BackendProcess,
) -> None:
    alice, _, _ = _synced_owner(changes_backend)
    # An unsigned cursor, as this backend made them before: a pull from it is a reset.
    old = base64.urlsafe_b64encode(msgspec.json.encode(["old-generation", 1])).decode()
    with live(alice, old.rstrip("=")) as stream:
        stream.wait_for(
            "a poke for the reset", lambda got: [r for r in got if r.kind == "poke"] or None
        )
        assert not _pages(stream.snapshot())


def test_two_connections_at_one_cursor_each_get_every_page(
    changes_backend: BackendProcess,
) -> None:
    # They share one read of each page (until the next change notice), and neither misses
    # the edit that follows.
    alice, board, task = _synced_owner(changes_backend)
    since = alice.cursor
    with live(alice, since) as first, live(alice, since) as second:
        for title in ("one", "two"):
            edit = alice.event(
                "TaskUpdated", {"fields": {"title": title}}, board=board, entity=task
            )
            pushed(alice, edit)
            for stream in (first, second):
                stream.wait_for(
                    f"a page with {title!r}",
                    _page_with(
                        title,
                        lambda p, t=title: (
                            (c := _change(p, "task", task)) and c["values"]["title"] == t
                        ),
                    ),
                )
