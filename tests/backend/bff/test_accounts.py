"""Accounts over real HTTP (SPEC section 6): changing the password ends every session of
the user in every BFF process, logging out ends one session, and a one-time password from
``outpost users reset-password`` only lets its user change it.

One pair of BFF processes on one data folder serves the whole module; they reload revoked
sessions on every request (``OUTPOST_REVOCATION_REFRESH_S=0``), so what one process ends
the other refuses on the very next request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.backend import BackendProcess, ControlledNats, reset_password, two_processes
from tests.support.device import PASSWORD, Device

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a brand new secret"
Pair = tuple[BackendProcess, BackendProcess]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, module_nats: ControlledNats) -> Iterator[Pair]:
    env = {"OUTPOST_REVOCATION_REFRESH_S": "0"}
    with two_processes(tmp_path_factory.mktemp("accounts"), module_nats, env=env) as both:
        yield both


def unique() -> str:
    return f"a{uuid.uuid4().hex[:10]}"


def pull_with(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{url}/v1/sync/pull", headers=headers).status_code


def refresh(url: str, token: str | None) -> int:
    return httpx.post(f"{url}/v1/auth/refresh", json={"refresh_token": token}).status_code


def sign_in(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/auth/token", json={"username": username, "password": password})


def change_password(url: str, token: str | None, password: str, new: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/auth/password",
        json={"password": password, "new_password": new},
        headers={"Authorization": f"Bearer {token}"},
    )


def logout(url: str, token: str | None, refresh_token: str | None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/auth/logout",
        json={"refresh_token": refresh_token},
        headers={"Authorization": f"Bearer {token}"},
    )


# changing the password


def test_a_password_change_ends_every_session_in_both_processes(pair: Pair) -> None:
    first, second = pair
    phone = Device(first.url, unique()).signup()
    laptop = Device(second.url, phone.username).login()
    assert pull_with(second.url, phone.token) == 200

    answer = change_password(first.url, phone.token, PASSWORD, NEW_PASSWORD)

    assert answer.status_code == 204, answer.text
    for url in (first.url, second.url):
        for device in (phone, laptop):
            assert pull_with(url, device.token) == 401
            assert refresh(url, device.refresh_token) == 401
    assert sign_in(second.url, phone.username, PASSWORD).status_code == 401
    fresh = sign_in(second.url, phone.username, NEW_PASSWORD)
    assert fresh.status_code == 200
    assert pull_with(first.url, fresh.json()["token"]) == 200


def test_a_wrong_current_password_is_401_and_changes_nothing(pair: Pair) -> None:
    first, second = pair
    device = Device(first.url, unique()).signup()

    answer = change_password(second.url, device.token, "not my password", NEW_PASSWORD)

    assert answer.status_code == 401
    assert answer.json()["detail"] == "wrong password: give your current password"
    assert pull_with(first.url, device.token) == 200
    assert sign_in(first.url, device.username, PASSWORD).status_code == 200
    assert sign_in(first.url, device.username, NEW_PASSWORD).status_code == 401


@pytest.mark.parametrize("new", ["short", "x" * 129], ids=["7-chars", "129-chars"])
def test_a_new_password_outside_8_to_128_is_422_and_changes_nothing(pair: Pair, new: str) -> None:
    first, _ = pair
    device = Device(first.url, unique()).signup()

    answer = change_password(first.url, device.token, PASSWORD, new)

    assert answer.status_code == 422
    assert answer.json()["detail"] == "the new password must be 8..128 characters"
    assert pull_with(first.url, device.token) == 200
    assert sign_in(first.url, device.username, PASSWORD).status_code == 200


def test_changing_the_password_needs_a_valid_bearer_token(pair: Pair) -> None:
    first, _ = pair
    device = Device(first.url, unique()).signup()
    body = {"password": PASSWORD, "new_password": NEW_PASSWORD}
    assert httpx.post(f"{first.url}/v1/auth/password", json=body).status_code == 401
    assert change_password(first.url, "forged", PASSWORD, NEW_PASSWORD).status_code == 401
    assert sign_in(first.url, device.username, PASSWORD).status_code == 200


def test_a_password_change_body_with_unknown_fields_is_400(pair: Pair) -> None:
    first, _ = pair
    device = Device(first.url, unique()).signup()
    body = {"password": PASSWORD, "new_password": NEW_PASSWORD, "admin": True}
    answer = device.http.post("/v1/auth/password", json=body, headers=device.headers)
    assert answer.status_code == 400
    assert sign_in(first.url, device.username, PASSWORD).status_code == 200


# logging out


def test_logout_ends_only_that_session_in_both_processes(pair: Pair) -> None:
    first, second = pair
    phone = Device(first.url, unique()).signup()
    laptop = Device(second.url, phone.username).login()

    answer = logout(first.url, phone.token, phone.refresh_token)

    assert answer.status_code == 204, answer.text
    for url in (first.url, second.url):
        assert pull_with(url, phone.token) == 401
        assert pull_with(url, laptop.token) == 200
    assert refresh(second.url, phone.refresh_token) == 401
    assert refresh(second.url, laptop.refresh_token) == 200


def test_logging_out_with_a_session_of_the_same_user_ends_that_one(pair: Pair) -> None:
    """The laptop, still signed in, ends the phone's session (the phone was lost)."""
    first, second = pair
    phone = Device(first.url, unique()).signup()
    laptop = Device(second.url, phone.username).login()

    assert logout(second.url, laptop.token, phone.refresh_token).status_code == 204

    assert pull_with(first.url, phone.token) == 401
    assert pull_with(first.url, laptop.token) == 200
    # Again: the session has already ended, and saying so changes nothing.
    assert logout(second.url, laptop.token, phone.refresh_token).status_code == 204
    assert pull_with(first.url, laptop.token) == 200


def test_logout_with_a_forged_or_anothers_token_is_401_and_ends_nothing(pair: Pair) -> None:
    first, _ = pair
    mine = Device(first.url, unique()).signup()
    theirs = Device(first.url, unique()).signup()
    genuine = mine.refresh_token or ""
    forged = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    for token in (forged, "legacy-looking-token", theirs.refresh_token):
        answer = logout(first.url, mine.token, token)
        assert answer.status_code == 401, token
        assert answer.json()["detail"] == "refresh token unknown: it names no session of yours"
    assert pull_with(first.url, mine.token) == 200
    assert pull_with(first.url, theirs.token) == 200
    assert refresh(first.url, theirs.refresh_token) == 200


def test_logout_needs_a_valid_bearer_token(pair: Pair) -> None:
    first, _ = pair
    device = Device(first.url, unique()).signup()
    body = {"refresh_token": device.refresh_token}
    assert httpx.post(f"{first.url}/v1/auth/logout", json=body).status_code == 401
    assert pull_with(first.url, device.token) == 200


# one-time passwords


def test_a_reset_password_ends_every_session_and_must_be_changed(pair: Pair) -> None:
    first, second = pair
    device = Device(first.url, unique()).signup()
    other = Device(second.url, device.username).login()

    reset = reset_password(first, device.username)

    assert reset.returncode == 0, reset.stderr
    one_time = reset.stdout.strip()
    assert len(one_time) >= 16
    assert "2 session(s) ended" in reset.stderr
    for url in (first.url, second.url):
        assert pull_with(url, device.token) == 401
        assert pull_with(url, other.token) == 401
        assert refresh(url, other.refresh_token) == 401
    assert sign_in(first.url, device.username, PASSWORD).status_code == 401

    answer = sign_in(second.url, device.username, one_time)

    assert answer.status_code == 403
    body = answer.json()
    assert body["detail"] == "a new password is required: POST /v1/auth/password"
    assert body["extra"]["expires_in"] == 300
    password_token = body["extra"]["password_token"]
    # The token changes the password and does nothing else.
    assert pull_with(first.url, password_token) == 401
    assert logout(first.url, password_token, device.refresh_token).status_code == 401
    wrong = change_password(first.url, password_token, "a wrong one", NEW_PASSWORD)
    assert wrong.status_code == 401
    assert change_password(first.url, password_token, one_time, NEW_PASSWORD).status_code == 204
    # Once changed, the token and the one-time password are spent.
    again = change_password(second.url, password_token, NEW_PASSWORD, "yet another one")
    assert again.status_code == 401
    assert "changed already" in again.json()["detail"]
    assert sign_in(first.url, device.username, one_time).status_code == 401
    fresh = sign_in(first.url, device.username, NEW_PASSWORD)
    assert fresh.status_code == 200
    assert pull_with(second.url, fresh.json()["token"]) == 200


def test_reset_password_of_an_unknown_user_fails_and_says_so(pair: Pair) -> None:
    first, _ = pair
    reset = reset_password(first, "nobody-here")
    assert reset.returncode == 1
    assert reset.stdout == ""
    assert "no user 'nobody-here'" in reset.stderr


def test_accounts_on_postgresql(tmp_path: Path, module_nats: ControlledNats, pg_url: str) -> None:
    """The same statements on PostgreSQL: a change, a log-out, a reset by --db-url."""
    env = {"OUTPOST_REVOCATION_REFRESH_S": "0"}
    backend = BackendProcess(tmp_path / "pg", nats_url=module_nats.url, db_url=pg_url, env=env)
    backend.start()
    try:
        url = backend.url
        phone = Device(url, unique()).signup()
        laptop = Device(url, phone.username).login()
        assert logout(url, laptop.token, laptop.refresh_token).status_code == 204
        assert pull_with(url, laptop.token) == 401
        assert pull_with(url, phone.token) == 200
        assert change_password(url, phone.token, PASSWORD, NEW_PASSWORD).status_code == 204
        assert pull_with(url, phone.token) == 401
        session = sign_in(url, phone.username, NEW_PASSWORD).json()

        reset = reset_password(backend, phone.username)

        assert reset.returncode == 0, reset.stderr
        assert "1 session(s) ended" in reset.stderr
        assert pull_with(url, session["token"]) == 401
        answer = sign_in(url, phone.username, reset.stdout.strip())
        assert answer.status_code == 403
        token = answer.json()["extra"]["password_token"]
        changed = change_password(url, token, reset.stdout.strip(), "the third password")
        assert changed.status_code == 204
        assert sign_in(url, phone.username, "the third password").status_code == 200
    finally:
        backend.stop()
