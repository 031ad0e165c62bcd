"""The member check before a share, ``GET /v1/users/{username}``: 204 or 404 for a signed-in
user, every rejection path, and the per-user limit that keeps it from listing usernames;
then ``outpost client board share`` using it over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

LIMIT = 6
PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def checked_backend(
    tmp_path_factory: pytest.TempPathFactory, module_nats: ControlledNats
) -> Iterator[BackendProcess]:
    """A backend whose users may each make ``LIMIT`` member checks at once, then one an
    hour."""
    process = BackendProcess(
        tmp_path_factory.mktemp("backend"),
        nats_url=module_nats.url,
        env={"OUTPOST_USER_CHECK_LIMIT": str(LIMIT), "OUTPOST_USER_CHECK_WINDOW_S": "3600"},
    ).start()
    try:
        yield process
    finally:
        process.stop()


def user(backend: BackendProcess, name: str = "u") -> Device:
    return Device(backend.url, f"{name}{uuid.uuid4().hex[:8]}").signup()


def check(backend: BackendProcess, asker: Device | None, username: str) -> httpx.Response:
    if asker is None:
        return httpx.get(f"{backend.url}/v1/users/{username}")
    return asker.http.get(f"/v1/users/{username}", headers=asker.headers)


def test_an_existing_user_is_204_and_an_unknown_one_404_with_no_name_list(
    checked_backend: BackendProcess,
) -> None:
    alice, bob = user(checked_backend, "alice"), user(checked_backend, "bob")
    found = check(checked_backend, alice, bob.username)
    assert (found.status_code, found.content) == (204, b"")
    assert check(checked_backend, alice, alice.username).status_code == 204
    missing = check(checked_backend, alice, "nosuchuser-at-all")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no user named 'nosuchuser-at-all'"


def test_a_name_that_cannot_be_a_username_is_400(checked_backend: BackendProcess) -> None:
    alice = user(checked_backend, "alice")
    reply = check(checked_backend, alice, "Not A Name")
    assert reply.status_code == 400
    assert "is not a username" in reply.json()["detail"]


def test_without_a_session_the_check_is_401(checked_backend: BackendProcess) -> None:
    assert check(checked_backend, None, "anyone").status_code == 401
    forged = httpx.get(
        f"{checked_backend.url}/v1/users/anyone", headers={"Authorization": "Bearer nonsense"}
    )
    assert forged.status_code == 401


def test_a_user_gets_few_checks_then_429_with_retry_after_and_others_are_unaffected(
    checked_backend: BackendProcess,
) -> None:
    prober, other = user(checked_backend, "probe"), user(checked_backend, "other")
    answers = [check(checked_backend, prober, f"guess{n:03d}").status_code for n in range(LIMIT)]
    assert answers == [404] * LIMIT
    refused = check(checked_backend, prober, other.username)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["detail"].startswith("too many member checks: retry in ")
    assert check(checked_backend, other, prober.username).status_code == 204, "per user"


def client(profile: Path, server: str, *args: str) -> subprocess.CompletedProcess[str]:
    options = ["--data-dir", str(profile), "--server", server]
    return subprocess.run(
        [sys.executable, "-m", "outpost", "client", *options, *args],
        capture_output=True,
        text=True,
    )


def members_shown(profile: Path, server: str) -> list[str]:
    shown = json.loads(client(profile, server, "show", "--json").stdout)
    return [m["username"] for board in shown["boards"] for m in board["members"]]


def test_the_client_shares_with_a_user_who_exists_and_queues_nothing_for_a_typo(
    tmp_path: Path, checked_backend: BackendProcess
) -> None:
    server = checked_backend.url
    bob = user(checked_backend, "bob")
    profile = tmp_path / "alice"
    alice = f"alice{uuid.uuid4().hex[:8]}"
    assert client(profile, server, "signup", alice, "--password", PASSWORD).returncode == 0
    board = client(profile, server, "board", "create", "Trip").stdout.strip()

    typo = client(profile, server, "board", "share", board, "nosuchuser")
    assert typo.returncode == 2
    assert typo.stderr.strip() == ("outpost client: no user named 'nosuchuser': nothing queued")
    assert members_shown(profile, server) == [alice]

    shared = client(profile, server, "board", "share", board, bob.username)
    assert shared.returncode == 0, shared.stderr
    assert sorted(members_shown(profile, server)) == sorted([alice, bob.username])


def test_offline_the_client_queues_the_share_and_says_it_is_checked_later(
    tmp_path: Path, checked_backend: BackendProcess
) -> None:
    profile = tmp_path / "offline"
    board = client(profile, "http://127.0.0.1:9", "board", "create", "Trip").stdout.strip()
    result = client(profile, "http://127.0.0.1:9", "board", "share", board, "someone")
    assert result.returncode == 0
    assert "the name is checked when the share is sent" in result.stderr
    assert "someone" in members_shown(profile, "http://127.0.0.1:9")
