"""Sign-in: validation before any network, sign up and sign in through a real backend on
the sync thread (the answer back on the UI thread), errors in plain words, continue
offline, and offline work pushed after a later sign-in."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from client.app.viewmodels import SignInViewModel, StatusViewModel
from client.app.viewmodels.signin import TAKEN, UNREACHABLE, WRONG_CREDENTIALS
from client.device import Device
from client.errors import ClientError, StoreError
from client.store.settings import Setting, write_setting
from client.sync.engine import SyncEngine
from client.sync.runner import SignInAction, SyncThread
from client.sync.transport import connect
from tests.support.backend import BackendProcess

PASSWORD = "correct horse"
NOWHERE = "http://127.0.0.1:9"
URL_RULE = "The server address starts with http:// or https://"
NAME_RULE = "A username is 3 to 32 characters: lowercase a-z, 0-9, _ . or -"
PASSWORD_RULE = "A password is 8 to 128 characters long"


def no_network(*_request: Any) -> Future[None]:
    raise AssertionError("the view model went to the network")


def filled(profile: Path, server: str, username: str, **kwargs: Any) -> SignInViewModel:
    """A filled-in form; unless told otherwise, signing in goes through a sync thread."""
    if "sign_in" not in kwargs:
        kwargs["sign_in"] = lambda *request: through_sync_thread(model, *request)
    model = SignInViewModel(profile, **kwargs)
    model.server_url, model.username, model.password = server, username, PASSWORD
    return model


def through_sync_thread(
    model: SignInViewModel, server: str, action: SignInAction, username: str, password: str
) -> Future[None]:
    """What the app does, without a window: the sign-in runs on a ``SyncThread`` of the
    model's device. The thread stops once it has answered, so the test's own syncs run
    alone on the store (the app keeps it running instead)."""
    assert model.device is not None
    thread = SyncThread(model.device, server)
    thread.start()
    answer = thread.sign_in(action, username, password)
    done: Future[None] = Future()

    def wait_then_stop() -> None:
        failure = answer.exception()
        thread.stop()
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)

    threading.Thread(target=wait_then_stop, daemon=True).start()
    return done


def new_user() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


def sync(device: Device, server: str) -> StatusViewModel:
    """Sync until nothing is pending, its progress fed to a status view model (which tells
    how it went: a failed cycle raises, and the status line says why)."""
    status = StatusViewModel(device)

    async def cycle() -> None:
        async with connect(server) as http:
            engine = SyncEngine(device, http, status.update)
            deadline = time.monotonic() + 15
            try:
                await engine.sync()
                while device.pending_count() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)  # accepted, not yet in the views: sync again
                    await engine.sync()
            except ClientError:
                pass

    asyncio.run(cycle())
    return status


# before any network


def test_prefills_the_server_and_username_the_profile_remembers(tmp_path: Path) -> None:
    device = Device(tmp_path)
    with device.store.write() as conn:
        write_setting(conn, Setting.SERVER, "https://outpost.example")
        write_setting(conn, Setting.USERNAME, "alice")
    model = SignInViewModel(tmp_path, device_factory=lambda _: device)
    assert (model.server_url, model.username, model.password) == (
        "https://outpost.example",
        "alice",
        "",
    )


def test_a_new_profile_starts_with_the_default_server(tmp_path: Path) -> None:
    model = SignInViewModel(tmp_path, default_server="http://localhost:8000")
    assert (model.server_url, model.username, model.has_session) == (
        "http://localhost:8000",
        "",
        False,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("server_url", "outpost.example", URL_RULE),
        ("server_url", "ftp://outpost.example", URL_RULE),
        ("username", "al", NAME_RULE),
        ("username", "Alice", NAME_RULE),
        ("username", "a" * 33, NAME_RULE),
        ("password", "short", PASSWORD_RULE),
        ("password", "x" * 129, PASSWORD_RULE),
    ],
)
def test_invalid_input_is_refused_before_any_network(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    model = filled(tmp_path, "https://outpost.example", "alice", sign_in=no_network)
    setattr(model, field, value)
    for command in (model.sign_in, model.sign_up):
        assert command().result(1) is False
        assert (model.error, model.field_errors) == (message, {field: message})


def test_every_invalid_field_gets_its_message(tmp_path: Path) -> None:
    model = SignInViewModel(tmp_path, sign_in=no_network)
    assert model.sign_in().result(1) is False
    assert set(model.field_errors) == {"server_url", "username", "password"}


def test_a_profile_of_one_user_is_not_handed_to_another(tmp_path: Path) -> None:
    Device(tmp_path).close()
    model = filled(tmp_path, "https://outpost.example", "bob", sign_in=no_network)
    assert model.device is not None
    with model.device.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
    assert model.sign_in().result(1) is False
    assert model.error is not None and "This profile belongs to alice" in model.error


def test_a_profile_that_cannot_be_opened_says_so_and_signs_nobody_in(tmp_path: Path) -> None:
    def broken(_: Path) -> Device:
        raise StoreError("cannot open the local store: disk I/O error")

    model = filled(tmp_path, "https://outpost.example", "alice", device_factory=broken)
    assert model.error == "Cannot open the local store: disk I/O error"
    assert model.sign_in().result(1) is False
    assert model.continue_offline() is False
    assert model.error == "Cannot open the local store: disk I/O error"


def test_busy_while_the_server_answers_and_subscribers_hear_both_ends(tmp_path: Path) -> None:
    pending: Future[None] = Future()
    asked: list[tuple[Any, ...]] = []

    def sign_in(*request: Any) -> Future[None]:
        asked.append(request)
        return pending

    model = filled(tmp_path, "https://outpost.example", "alice", sign_in=sign_in)
    seen: list[bool] = []
    model.subscribe(lambda: seen.append(model.busy))
    done = model.sign_in()
    assert model.busy and not done.done()
    assert model.sign_in().result(1) is False  # no second attempt while one runs
    assert asked == [("https://outpost.example", "login", "alice", PASSWORD)]
    pending.set_result(None)
    assert done.result(1) is True
    assert (model.busy, model.outcome, model.password) == (False, "signed_in", "")
    assert seen[0] is True and seen[-1] is False


def test_an_interrupted_sign_in_asks_to_try_again(tmp_path: Path) -> None:
    def cancelled(*_request: Any) -> Future[None]:
        future: Future[None] = Future()
        future.cancel()
        return future

    model = filled(tmp_path, "https://outpost.example", "alice", sign_in=cancelled)
    assert model.sign_in().result(1) is False
    assert (model.error, model.busy, model.outcome) == (
        "Signing in was interrupted: try again",
        False,
        None,
    )


def test_a_programming_error_is_not_dressed_up_for_the_user(tmp_path: Path) -> None:
    def failing(*_request: Any) -> Future[None]:
        future: Future[None] = Future()
        future.set_exception(KeyError("token"))
        return future

    model = filled(tmp_path, "https://outpost.example", "alice", sign_in=failing)
    with pytest.raises(KeyError):
        model.sign_in().result(1)
    assert model.error is None and not model.busy


# through the sync thread, the answer on the UI thread


class UiThread:
    """A stand-in for the app's UI thread: ``post`` (the app's ``on_ui``) queues, and the
    test runs what was queued, on its own thread, when it chooses."""

    def __init__(self) -> None:
        self.queued: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def post(self, fn: Callable[[], None]) -> None:
        self.queued.put(fn)

    def run_next(self, timeout: float = 10) -> None:
        self.queued.get(timeout=timeout)()


def session_server(threads: list[str]) -> httpx.MockTransport:
    """A server that signs anyone in, noting which thread each request came from."""

    def answer(request: httpx.Request) -> httpx.Response:
        threads.append(threading.current_thread().name)
        if request.url.path == "/v1/auth/token":
            user = msgspec.json.decode(request.content)["username"]
            body = {"user_id": "u1", "username": user, "token": "t", "expires_in": 900}
            return httpx.Response(200, json={**body, "refresh_token": "r"})
        return httpx.Response(503, json={"status_code": 503, "detail": "not in this test"})

    return httpx.MockTransport(answer)


def test_signing_in_goes_through_the_sync_thread_and_answers_on_the_ui_thread(
    tmp_path: Path,
) -> None:
    device = Device(tmp_path)
    threads: list[str] = []
    sync = SyncThread(device, "http://outpost.test", transport=session_server(threads))
    ui = UiThread()
    model = filled(
        tmp_path,
        "http://outpost.test",
        "alice",
        device_factory=lambda _: device,
        sign_in=lambda _server, *request: sync.sign_in(*request),
        on_answer=ui.post,
    )
    heard: list[str] = []
    model.subscribe(lambda: heard.append(threading.current_thread().name))
    sync.start()
    try:
        done = model.sign_in()
        assert not done.done()  # only the UI thread may finish it
        ui.run_next()  # the answer, handed to the UI thread
        assert done.result(0) is True
    finally:
        sync.stop()
    assert threads[0] == "outpost-sync", "only the sync thread talks to the server"
    assert (model.outcome, model.has_session, device.username) == ("signed_in", True, "alice")
    assert set(heard) == {threading.current_thread().name}, "the model changed off the UI thread"
    assert [t.name for t in threading.enumerate() if "sign-in" in t.name] == []


# an unreachable server


@pytest.mark.integration
def test_an_unreachable_server_offers_to_continue_offline(tmp_path: Path) -> None:
    model = filled(tmp_path, NOWHERE, "alice")
    assert model.sign_in().result(20) is False
    assert (model.error, model.offer_offline, model.outcome, model.busy) == (
        UNREACHABLE,
        True,
        None,
        False,
    )


def test_continue_offline_opens_the_local_profile_and_keeps_the_server(tmp_path: Path) -> None:
    model = filled(tmp_path, NOWHERE + "/", "alice")
    assert model.continue_offline() is True
    assert model.outcome == "offline" and model.device is not None
    assert model.device.server == NOWHERE
    assert model.device.username is None
    assert model.device.create_board("Offline plans")


def test_continue_offline_without_a_valid_server_still_works(tmp_path: Path) -> None:
    model = SignInViewModel(tmp_path)
    model.server_url = "not a url"
    assert model.continue_offline() is True
    assert model.device is not None and model.device.server is None


# a real backend


@pytest.mark.integration
def test_sign_up_signs_in_and_never_stores_the_password(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    username = new_user()
    model = filled(tmp_path, module_backend.url, username)
    assert model.sign_up().result(30) is True
    assert (model.outcome, model.error, model.password, model.has_session) == (
        "signed_in",
        None,
        "",
        True,
    )
    assert model.device is not None and model.device.username == username
    assert model.device.server == module_backend.url
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())
    assert PASSWORD.encode() not in stored


@pytest.mark.integration
def test_sign_up_with_a_taken_username_says_so(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    username = new_user()
    assert filled(tmp_path / "a", module_backend.url, username).sign_up().result(30)
    model = filled(tmp_path / "b", module_backend.url, username)
    assert model.sign_up().result(30) is False
    assert (model.error, model.outcome, model.offer_offline) == (TAKEN, None, False)


@pytest.mark.integration
def test_sign_in_with_a_wrong_password_says_so(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    username = new_user()
    assert filled(tmp_path / "a", module_backend.url, username).sign_up().result(30)
    model = filled(tmp_path / "b", module_backend.url, username)
    model.password = "not the password"
    assert model.sign_in().result(30) is False
    assert model.error == WRONG_CREDENTIALS
    assert model.password == "not the password"  # kept to correct, never written down


@pytest.mark.integration
def test_sign_in_on_a_second_profile_reaches_the_same_account(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    username = new_user()
    first = filled(tmp_path / "a", module_backend.url, username)
    assert first.sign_up().result(30)
    assert first.device is not None
    first.device.create_board("Shared plans")
    assert sync(first.device, module_backend.url).text.startswith("Up to date · last synced")
    second = filled(tmp_path / "b", module_backend.url, username)
    assert second.sign_in().result(30) is True
    assert second.device is not None
    sync(second.device, module_backend.url)
    assert [b["name"] for b in second.device.boards()] == ["Shared plans"]


@pytest.mark.integration
def test_work_done_offline_is_pushed_after_signing_in_later(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    username = new_user()
    model = filled(tmp_path / "a", NOWHERE, username)
    assert model.sign_up().result(20) is False and model.offer_offline
    assert model.continue_offline()
    assert model.device is not None
    board = model.device.create_board("Made offline")
    model.device.add_task(board, "Written on a plane")
    assert sync(model.device, NOWHERE).text == "Offline · 2 changes waiting to send"

    model.server_url = module_backend.url
    assert model.sign_up().result(30) is True
    status = sync(model.device, module_backend.url)
    assert status.pending == 0 and model.device.rejected() == []
    assert model.device.boards()[0]["owner"] == username

    other = filled(tmp_path / "b", module_backend.url, username)
    assert other.sign_in().result(30) and other.device is not None
    sync(other.device, module_backend.url)
    assert [t["title"] for t in other.device.tasks(board)] == ["Written on a plane"]
