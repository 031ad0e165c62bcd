"""Accounts in the app, through a real backend on the sync thread: sign out (unsynced changes
kept and announced), change the password, switch to another account (a new profile with its
own device id), and a one-time password that must be changed at sign-in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import httpx
import pytest

from client.app.viewmodels import AccountViewModel, SignInViewModel
from client.app.viewmodels.account import profile_folder
from client.app.viewmodels.signin import ONE_TIME
from client.device import Device
from client.store.settings import Setting, write_setting
from client.sync.runner import SignInAction, SyncThread
from tests.support.backend import BackendProcess, one_time_password

PASSWORD = "correct horse"
NEW_PASSWORD = "battery staple"


class Profile:
    """A profile signed up on the backend, with a running sync thread, as the app has."""

    def __init__(self, folder: Path, server: str) -> None:
        self.folder, self.server = folder, server
        self.username = f"a{uuid.uuid4().hex[:10]}"
        self.device = Device(folder)
        with self.device.store.write() as conn:  # as the sign-in screen remembers it
            write_setting(conn, Setting.SERVER, server)
        self.thread = SyncThread(self.device, server, periodic_s=3600)
        self.thread.start()
        self.thread.sign_in("signup", self.username, PASSWORD).result(30)

    def model(self) -> AccountViewModel:
        return AccountViewModel(
            self.device,
            self.folder,
            log_out=self.thread.log_out,
            change_password=lambda server, user, old, new: self.thread.change_password(
                user, old, new
            ),
        )

    def close(self) -> None:
        self.thread.stop()
        self.device.close()


@pytest.fixture
def profile(tmp_path: Path, module_backend: BackendProcess) -> Iterator[Profile]:
    made = Profile(tmp_path / "default", module_backend.url)
    try:
        yield made
    finally:
        made.close()


class PushRefused(httpx.AsyncBaseTransport):
    """Real HTTP, except that every upload is answered 503: what the device makes stays on
    it however soon the sync thread runs a cycle."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sync/push":
            return httpx.Response(503, json={"detail": "uploads held by the test"})
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


def refresh_status(server: str, refresh_token: str | None) -> int:
    reply = httpx.post(f"{server}/v1/auth/refresh", json={"refresh_token": refresh_token})
    return reply.status_code


@pytest.mark.integration
def test_sign_out_ends_the_session_and_announces_the_changes_kept(profile: Profile) -> None:
    device = profile.device
    refresh_token = device.store.setting(Setting.REFRESH_TOKEN)
    profile.thread.stop()
    # the new thread's cycles run whenever they like, but no upload gets through: the
    # changes are still the device's at sign-out
    profile.thread = SyncThread(device, profile.server, periodic_s=3600, transport=PushRefused())
    board = device.create_board("Kept")
    device.add_task(board, "unsent")
    profile.thread.start()
    model = profile.model()
    assert model.sign_out().result(30) is True
    assert model.signed_out and not model.busy
    assert device.store.setting(Setting.TOKEN) is None
    assert refresh_status(profile.server, refresh_token) == 401, "ended on the server"
    assert model.message == (
        f"Signed out. 2 changes waiting to send kept on this device for {profile.username}: "
        "sent at the next sign-in."
    )


@pytest.mark.integration
def test_sign_out_without_the_server_still_forgets_the_session_and_says_so(
    tmp_path: Path, profile: Profile
) -> None:
    device = profile.device
    profile.thread.stop()
    nowhere = SyncThread(device, "http://127.0.0.1:9", periodic_s=3600)
    nowhere.start()
    profile.thread = nowhere
    device.create_board("Offline work")
    model = profile.model()
    assert model.sign_out().result(30) is True
    assert device.store.setting(Setting.REFRESH_TOKEN) is None
    assert (model.message or "").startswith(
        "Signed out on this device (the server could not be reached to end the session). "
        "1 change waiting to send kept on this device"
    )


@pytest.mark.integration
def test_change_password_signs_in_again_with_the_new_one(profile: Profile) -> None:
    model = profile.model()
    old_refresh = profile.device.store.setting(Setting.REFRESH_TOKEN)
    assert model.change_password(PASSWORD, NEW_PASSWORD, NEW_PASSWORD).result(30) is True
    assert model.message == (
        "Password changed: every other session has ended; signed in again here"
    )
    assert profile.device.store.setting(Setting.TOKEN) is not None
    assert refresh_status(profile.server, old_refresh) == 401
    login = httpx.post(
        f"{profile.server}/v1/auth/token",
        json={"username": profile.username, "password": NEW_PASSWORD},
    )
    assert login.status_code == 200


@pytest.mark.integration
def test_a_wrong_current_password_is_said_plainly_and_changes_nothing(profile: Profile) -> None:
    model = profile.model()
    assert model.change_password("not the password", NEW_PASSWORD, NEW_PASSWORD).result(30) is False
    assert model.error == "The current password is wrong"


@pytest.mark.parametrize(
    ("new", "again", "error"),
    [
        ("short", "short", "A password is 8 to 128 characters long"),
        (NEW_PASSWORD, "battery stapler", "The new passwords differ"),
        (PASSWORD, PASSWORD, "Choose a password other than the current one"),
    ],
)
def test_a_new_password_refused_here_never_reaches_the_server(
    tmp_path: Path, new: str, again: str, error: str
) -> None:
    def never(*_args: object) -> Future[None]:
        raise AssertionError("went to the server")

    device = Device(tmp_path / "p")
    with device.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
        write_setting(conn, Setting.SERVER, "http://127.0.0.1:9")
    model = AccountViewModel(device, tmp_path / "p", log_out=never, change_password=never)  # type: ignore[arg-type]
    assert model.change_password(PASSWORD, new, again).result(1) is False
    assert model.error == error


@pytest.mark.integration
def test_switching_account_opens_a_new_profile_with_its_own_device_and_keeps_the_old_work(
    profile: Profile,
) -> None:
    profile.thread.stop()
    profile.device.create_board("Alice's unsent")
    model = profile.model()
    assert model.switch("bob")
    target = model.switch_to
    assert target == profile.folder.with_name("default@bob")
    assert (model.message or "").startswith("1 change waiting to send kept on this device for")
    bob = Device(target)
    try:
        assert bob.device_id != profile.device.device_id and bob.username is None
    finally:
        bob.close()
    assert profile.device.pending_count() == 1, "alice's change stays in her profile"
    assert profile_folder(profile.folder, profile.username) == profile.folder
    assert [(p.username, p.current) for p in model.profiles()] == [
        (profile.username, True),
        (None, False),
    ]
    assert not model.switch(profile.username)
    assert model.error == f"You are signed in as {profile.username} already"


@pytest.mark.integration
def test_a_one_time_password_asks_for_a_new_one_at_sign_in(
    tmp_path: Path, module_backend: BackendProcess, profile: Profile
) -> None:
    one_time = one_time_password(module_backend, profile.username)

    tablet = tmp_path / "tablet"
    threads: list[SyncThread] = []

    def thread_for(model: SignInViewModel, server: str) -> SyncThread:
        assert model.device is not None
        if not threads:
            threads.append(SyncThread(model.device, server, periodic_s=3600))
            threads[0].start()
        return threads[0]

    def sign_in(server: str, action: SignInAction, user: str, password: str) -> Future[None]:
        return thread_for(model, server).sign_in(action, user, password)

    def change(server: str, user: str, password: str, new: str) -> Future[None]:
        return thread_for(model, server).change_password(user, password, new)

    model = SignInViewModel(tablet, sign_in=sign_in, change_password=change)
    try:
        model.server_url, model.username, model.password = (
            module_backend.url,
            profile.username,
            one_time,
        )
        assert model.sign_in().result(30) is False
        assert (model.error, model.must_change_password, model.offer_offline) == (
            ONE_TIME,
            True,
            False,
        )
        model.new_password = one_time
        assert model.set_new_password().result(5) is False
        assert model.error == "Choose a password other than the one-time one"
        model.new_password = NEW_PASSWORD
        assert model.set_new_password().result(30) is True
        assert (model.outcome, model.must_change_password, model.password) == (
            "signed_in",
            False,
            "",
        )
        assert model.device is not None and model.device.store.setting(Setting.TOKEN)
    finally:
        for thread in threads:
            thread.stop()
