"""Edges of the sync engine found in review: edits made while a push is out, boards lost
during a rebuild, stored edits on a lost board, a busy server at refresh, one user per
profile. Each test failed before its fix."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from client.errors import InvalidAction, ServerUnreachable
from client.store.settings import Setting, write_setting
from client.sync import engine as engine_module
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import PASSWORD
from tests.support.phone import Phone, phone_factory
from tests.support.transport import RecordingTransport

pytestmark = pytest.mark.integration

DAY = 86_400_000


def name(p: str) -> str:
    return f"{p}{uuid.uuid4().hex[:8]}"


class HookTransport(RecordingTransport):
    """Real HTTP; runs hooks around requests (to act 'during' a request, or cut a pull)."""

    def __init__(self) -> None:
        super().__init__()
        self.after_push: Callable[[bytes], None] | None = None
        """Run once, after a push's reply came back (as if the UI acted meanwhile)."""
        self.fail_pulls_after: int | None = None
        """How many more pulls go through before the connection breaks."""
        self.pulls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/sync/pull" and self.fail_pulls_after is not None:
            if self.pulls >= self.fail_pulls_after:
                raise httpx.ReadError("cut (test)", request=request)
            self.pulls += 1
        response = await super().handle_async_request(request)
        if path == "/v1/sync/push" and self.after_push is not None:
            hook, self.after_push = self.after_push, None
            hook(request.content)
        return response


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Callable[[str], Phone]]:
    yield from phone_factory(tmp_path, HookTransport)


def test_an_edit_made_while_a_skewed_push_is_out_is_restamped_and_the_last_edit_wins(
    module_backend: BackendProcess, phones: Callable[[str], Phone]
) -> None:
    phone = phones(module_backend.url).signup(name("skew"))
    board = phone.device.create_board("Clock")
    task = phone.device.add_task(board, "Original")
    phone.settle()
    phone.device.clock.offset_ms = DAY  # the device clock is a day fast
    phone.device.set_task(task, title="A")  # E1, skewed, in the push

    def ui_edit_while_push_in_flight(body: bytes) -> None:
        # the UI thread records an edit while the push request is out (clock not rebased yet)
        phone.device.set_task(task, title="B")  # E2, skewed, made after `upto`

    phone.transport.after_push = ui_edit_while_push_in_flight
    phone.sync()  # E1 -> clock_skew -> rebase + restamp -> accepted
    phone.device.set_task(task, title="C")  # E3: the user's LAST edit, rebased clock
    local_now = phone.device.entity("task", task)["values"]["title"]
    phone.settle()
    final = phone.device.entity("task", task)["values"]["title"]
    assert local_now == "C", f"the view shows {local_now!r} right after the user typed 'C'"
    assert final == "C", f"the user's last edit was lost: converged on {final!r}"


def test_a_task_made_while_a_skewed_push_is_out_reaches_the_server_before_its_comment(
    module_backend: BackendProcess, phones: Callable[[str], Phone]
) -> None:
    phone = phones(module_backend.url).signup(name("skewc"))
    board = phone.device.create_board("Clock")
    phone.settle()
    phone.device.clock.offset_ms = DAY
    phone.device.rename_board(board, "Clock 2")  # E1 skewed
    made: dict[str, str] = {}

    def ui(body: bytes) -> None:
        made["task"] = phone.device.add_task(board, "made during the push")  # skewed

    phone.transport.after_push = ui
    phone.sync()
    phone.device.add_comment(made["task"], "first!")  # fresh (rebased) hlc
    for _ in range(10):
        with contextlib.suppress(ServerUnreachable):
            phone.sync()
        time.sleep(0.1)
    rejected = [(r["event"]["type"], r["reason"]) for r in phone.device.rejected()]
    assert not rejected, f"a valid comment was rejected for good: {rejected}"


def test_a_board_lost_during_an_interrupted_rebuild_stays_gone(
    module_backend: BackendProcess,
    phones: Callable[[str], Phone],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "PULL_LIMIT", 1)
    alice = phones(module_backend.url).signup(name("alice"))
    bob = phones(module_backend.url).signup(name("bob"))
    board = alice.device.create_board("Secret")
    alice.device.add_task(board, "Plan")
    alice.device.share_board(board, bob.device.username)
    alice.settle()
    bob.settle()
    assert [b["id"] for b in bob.device.boards()] == [board]
    # bob's cursor becomes unusable (same path as a reset): rebuild aside, bootstrap from 0
    with bob.device.store.write() as conn:
        write_setting(conn, Setting.CURSOR, "bm90LWEtY3Vyc29y")
    bob.transport.fail_pulls_after = 2  # the 400 + one page of the bootstrap, then offline
    with pytest.raises(ServerUnreachable):
        bob.sync()
    assert bob.device.store.setting(Setting.REBUILDING) == "1"
    alice.device.unshare_board(board, bob.device.username)
    alice.settle()  # returns once the watermark covers the removal: the views have it
    bob.transport.fail_pulls_after = None
    bob.settle()
    notices = [n["reason"] for n in bob.device.notices()]
    assert "removed_from_board" in notices  # the removal WAS delivered ...
    assert bob.device.boards() == [], "... yet the lost board is back on bob's device"


def test_a_stored_edit_on_a_lost_board_is_not_reported_as_not_saved(
    module_backend: BackendProcess, phones: Callable[[str], Phone]
) -> None:
    alice = phones(module_backend.url).signup(name("alice"))
    bob = phones(module_backend.url).signup(name("bob"))
    board = alice.device.create_board("Shared")
    task = alice.device.add_task(board, "Plan")
    alice.device.share_board(board, bob.device.username)
    alice.settle()
    bob.settle()
    bob.device.set_task(task, title="Bob's edit")
    bob.transport.fail_pulls_after = bob.transport.pulls  # push goes through, pull is cut
    with pytest.raises(ServerUnreachable):
        bob.sync()
    with bob.device.store.read() as conn:
        [(seq,)] = conn.execute("SELECT seq FROM outbox").fetchall()
    assert seq is not None  # accepted by the backend
    alice.device.unshare_board(board, bob.device.username)
    alice.settle()
    assert alice.device.entity("task", task)["values"]["title"] == "Bob's edit"
    bob.transport.fail_pulls_after = None
    bob.settle()
    rejected = bob.device.rejected()
    assert not any("not saved" in n["message"] for n in bob.device.notices())
    assert not rejected, "bob is told his stored edit was 'not saved'"


def test_a_board_lost_during_a_rebuild_never_comes_back_later(
    module_backend: BackendProcess,
    module_nats: ControlledNats,
    phones: Callable[[str], Phone],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Follow-up: after the ghost appears, further syncs never remove it."""
    monkeypatch.setattr(engine_module, "PULL_LIMIT", 1)
    alice = phones(module_backend.url).signup(name("alice"))
    bob = phones(module_backend.url).signup(name("bob"))
    board = alice.device.create_board("Secret")
    task = alice.device.add_task(board, "Plan")
    alice.device.share_board(board, bob.device.username)
    alice.settle()
    bob.settle()
    with bob.device.store.write() as conn:
        write_setting(conn, Setting.CURSOR, "bm90LWEtY3Vyc29y")
    bob.transport.fail_pulls_after = 2
    with pytest.raises(ServerUnreachable):
        bob.sync()
    alice.device.unshare_board(board, bob.device.username)
    alice.device.set_task(task, title="after bob left")
    alice.settle()
    bob.transport.fail_pulls_after = None
    last = module_nats.last_seq()  # alice's last edit: a ghost would come back by then
    deadline = time.monotonic() + 20
    while int(bob.device.store.setting(Setting.WATERMARK, "0") or 0) < last:
        assert time.monotonic() < deadline, "bob's pulls never reached alice's last edit"
        bob.settle()
    bob.settle()
    assert bob.device.boards() == []


def test_a_profile_refuses_to_sign_in_as_another_user(
    module_backend: BackendProcess, phones: Callable[[str], Phone]
) -> None:
    alice = phones(module_backend.url).signup(name("alice"))
    a_board = alice.device.create_board("Alice's private board")
    alice.settle()
    bob_name = name("bob")
    bob = phones(module_backend.url).signup(bob_name)
    b_board = bob.device.create_board("Bob's board")
    bob.settle()
    with pytest.raises(InvalidAction, match="this profile belongs to"):
        alice.run(alice.engine.login(bob_name, PASSWORD))  # `outpost client login bob`
    alice.settle()
    assert [b["id"] for b in alice.device.boards()] == [a_board]
    assert [b["id"] for b in bob.device.boards()] == [b_board]
