"""Sign-in against a server that never answers (a real socket that takes the connection
and says nothing): Cancel gives the form back at once, "Continue offline" works while it
waits, and a short timeout ends the wait on its own."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from client.app.viewmodels import SignInViewModel
from client.app.viewmodels.signin import CANCELLED, UNREACHABLE
from client.sync.runner import SignInAction, SyncThread

PASSWORD = "correct horse"

pytestmark = pytest.mark.integration


def form(
    profile: Path, server: str, timeout_s: float = 60.0
) -> tuple[SignInViewModel, list[SyncThread]]:
    """A filled-in form whose sign-in goes through a sync thread with ``timeout_s``."""
    threads: list[SyncThread] = []

    def sign_in(server: str, action: SignInAction, username: str, password: str) -> Future[None]:
        assert model.device is not None
        thread = SyncThread(model.device, server)
        thread.start()
        threads.append(thread)
        return thread.sign_in(action, username, password, timeout_s)

    model = SignInViewModel(profile, sign_in=sign_in)
    model.server_url, model.username, model.password = server, "alice", PASSWORD
    return model, threads


def stop(threads: list[SyncThread]) -> None:
    for thread in threads:
        thread.stop(timeout=0.5)  # a request to the silent server hangs: do not wait it out


def test_cancel_gives_the_form_back_and_offers_offline(tmp_path: Path, silent_server: str) -> None:
    model, threads = form(tmp_path, silent_server)
    try:
        done = model.sign_in()
        assert model.busy and model.can_cancel and model.can_continue_offline
        assert model.cancel()
        assert done.result(5) is False
        assert (model.busy, model.can_cancel, model.error, model.offer_offline) == (
            False,
            False,
            CANCELLED,
            True,
        )
        assert not model.cancel(), "nothing left to cancel"
        again = model.sign_in()
        assert model.busy, "the form works again"
        model.cancel()
        assert again.result(5) is False
    finally:
        stop(threads)


def test_continue_offline_works_while_the_server_is_asked(
    tmp_path: Path, silent_server: str
) -> None:
    model, threads = form(tmp_path, silent_server)
    try:
        done = model.sign_in()
        assert model.busy
        assert model.continue_offline()
        assert (model.outcome, model.busy, model.error) == ("offline", False, None)
        assert done.result(5) is False, "the sign-in was cancelled, not left running"
        assert model.device is not None and model.device.server == silent_server
    finally:
        stop(threads)


def test_a_server_that_never_answers_is_unreachable_after_the_timeout(
    tmp_path: Path, silent_server: str
) -> None:
    model, threads = form(tmp_path, silent_server, timeout_s=0.5)
    try:
        assert model.sign_in().result(10) is False
        assert (model.error, model.offer_offline, model.busy) == (UNREACHABLE, True, False)
    finally:
        stop(threads)


def test_a_sync_thread_waiting_on_a_silent_server_stops_when_asked(
    tmp_path: Path, silent_server: str
) -> None:
    """Typing another server after a timeout swaps the sync thread, and the new one starts
    only once the old has ended (never two engines on one store): the old one, waiting on a
    server that never answers, must end when asked instead of holding up the user's next
    sign-in for its whole request timeout (it did: 10 s, then both ran)."""
    model, threads = form(tmp_path, silent_server, timeout_s=0.5)
    before = set(threading.enumerate())
    assert model.sign_in().result(10) is False
    (started,) = [t for t in set(threading.enumerate()) - before if t.name == "outpost-sync"]
    threads[0].stop()  # as the app swaps threads: its default wait
    assert not started.is_alive()
