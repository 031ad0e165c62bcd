"""``outpost client passwd`` and ``outpost client logout`` end to end: the real command
line, a real backend over real HTTP, real profile folders."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from client.device import Device
from client.store.settings import Setting
from tests.support.backend import BackendProcess, one_time_password

pytestmark = pytest.mark.integration

PASSWORD = "correct horse"
NEW_PASSWORD = "battery staple"


def client(
    profile: Path, server: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    options = ["--data-dir", str(profile), "--server", server]
    return subprocess.run(
        [sys.executable, "-m", "outpost", "client", *options, *args],
        input=stdin,
        capture_output=True,
        text=True,
    )


def signed_up(tmp_path: Path, server: str, name: str = "phone") -> tuple[Path, str]:
    profile = tmp_path / name
    username = f"c{uuid.uuid4().hex[:10]}"
    result = client(profile, server, "signup", username, "--password", PASSWORD)
    assert result.returncode == 0, result.stderr
    return profile, username


def tokens(profile: Path) -> tuple[str | None, str | None]:
    device = Device(profile)
    try:
        return device.store.setting(Setting.TOKEN), device.store.setting(Setting.REFRESH_TOKEN)
    finally:
        device.close()


def refresh_status(server: str, refresh_token: str | None) -> int:
    reply = httpx.post(f"{server}/v1/auth/refresh", json={"refresh_token": refresh_token})
    return reply.status_code


def test_passwd_from_stdin_ends_every_session_and_signs_this_device_in_again(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    server = module_backend.url
    phone, username = signed_up(tmp_path, server)
    laptop = tmp_path / "laptop"
    assert client(laptop, server, "login", username, "--password", PASSWORD).returncode == 0
    _, laptop_refresh = tokens(laptop)

    result = client(phone, server, "passwd", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")

    assert result.returncode == 0, result.stderr
    assert "password changed" in result.stdout
    assert client(phone, server, "sync").returncode == 0
    assert refresh_status(server, laptop_refresh) == 401
    stale = client(laptop, server, "sync")
    assert stale.returncode == 1
    assert "sign in again" in stale.stderr
    assert client(laptop, server, "login", username, "--password", PASSWORD).returncode == 1
    assert client(laptop, server, "login", username, "--password", NEW_PASSWORD).returncode == 0


def test_passwd_with_a_wrong_current_password_changes_nothing(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    server = module_backend.url
    phone, _ = signed_up(tmp_path, server)

    result = client(phone, server, "passwd", stdin=f"not mine at all\n{NEW_PASSWORD}\n")

    assert result.returncode == 1
    assert "wrong username or password" in result.stderr
    assert client(phone, server, "sync").returncode == 0


def test_passwd_refuses_a_short_new_password_before_asking_the_server(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    server = module_backend.url
    phone, _ = signed_up(tmp_path, server)

    result = client(phone, server, "passwd", stdin=f"{PASSWORD}\nshort\n")

    assert result.returncode == 2
    assert "8..128 characters" in result.stderr
    assert client(phone, server, "sync").returncode == 0


def test_passwd_changes_a_one_time_password_from_reset_password(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    server = module_backend.url
    phone, username = signed_up(tmp_path, server)
    one_time = one_time_password(module_backend, username)
    tablet = tmp_path / "tablet"  # a new profile: the user lost the phone
    refused = client(tablet, server, "login", username, "--password", one_time)
    assert refused.returncode == 1
    assert "a new password is required" in refused.stderr

    result = client(tablet, server, "passwd", username, stdin=f"{one_time}\n{NEW_PASSWORD}\n")

    assert result.returncode == 0, result.stderr
    assert client(tablet, server, "sync").returncode == 0
    assert client(phone, server, "sync").returncode == 1  # its session ended at the reset
    again = f"{NEW_PASSWORD}\n{NEW_PASSWORD}!\n"
    other = client(tablet, server, "passwd", "someone-else", stdin=again)
    assert other.returncode == 2
    assert f"this profile belongs to {username}" in other.stderr
    nobody = client(tmp_path / "fresh", server, "passwd", stdin=again)
    assert nobody.returncode == 2
    assert "no account in this profile yet: name the username" in nobody.stderr


def test_logout_ends_the_session_and_keeps_unsynced_changes(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    server = module_backend.url
    phone, username = signed_up(tmp_path, server)
    laptop = tmp_path / "laptop"
    assert client(laptop, server, "login", username, "--password", PASSWORD).returncode == 0
    assert client(phone, server, "board", "create", "Offline work").returncode == 0
    _, refresh_token = tokens(phone)

    result = client(phone, server, "logout")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "signed out; 1 change(s) waiting to send kept for the next sign-in"
    )
    assert tokens(phone) == (None, None)
    assert refresh_status(server, refresh_token) == 401
    assert client(laptop, server, "sync").returncode == 0  # another session goes on
    assert client(phone, server, "login", username, "--password", PASSWORD).returncode == 0
    assert "waiting to send: 0" in client(phone, server, "sync").stdout


def test_logout_without_the_server_forgets_the_tokens_here(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    phone, _ = signed_up(tmp_path, module_backend.url)
    _, refresh_token = tokens(phone)

    result = client(phone, "http://127.0.0.1:9", "logout")

    assert result.returncode == 0, result.stderr
    assert "signed out here only" in result.stdout
    assert tokens(phone) == (None, None)
    assert refresh_status(module_backend.url, refresh_token) == 200  # honestly: still alive
