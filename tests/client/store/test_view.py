"""The view is the confirmed state with the pending events folded on top, however many of
the outbox's events are kept decoded between refolds."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.device import Device
from client.store import view
from client.store.view import OWN_ACTOR, event_of, keys_of_board, refold


def test_a_pending_event_is_by_whoever_the_profile_is_signed_in_as(tmp_path: Path) -> None:
    device = Device(tmp_path / "profile")
    board = device.create_board("Board")
    with device.store.read() as conn:
        (body,) = conn.execute("SELECT body FROM outbox").fetchone()
    device.close()
    assert event_of(body, None).actor == OWN_ACTOR
    assert event_of(body, "alice").actor == "alice"
    assert event_of(body, None).board == event_of(body, "alice").board == board


@pytest.mark.parametrize("kept", [1, 3, 10_000])
def test_a_refold_shows_the_same_view_whatever_is_kept_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: int
) -> None:
    monkeypatch.setattr(view, "DECODED_KEPT", kept)
    device = Device(tmp_path / "profile")
    try:
        board = device.create_board("Board")
        tasks = [device.add_task(board, f"Task {i}") for i in range(5)]
        for i in range(40):
            device.set_task(tasks[i % 5], title=f"Edit {i}", priority=i % 5)
            if i % 7 == 0:
                device.add_label(tasks[i % 5], f"label {i % 3}")
        shown = device.snapshot()
        with device.store.write() as conn:
            conn.execute("UPDATE view SET vals = NULL, state = x'7b7d'")  # all of it lost
            refold(conn, keys_of_board(conn, board), None)
        assert device.snapshot() == shown
        assert len(view._decoded) <= kept
    finally:
        device.close()
