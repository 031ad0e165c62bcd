"""A refresh token used twice ends its whole sign-in, and only that one (FAULTS 24)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.backend import BackendProcess
from tests.support.device import Device

pytestmark = pytest.mark.integration


def refresh(device: Device, token: str | None) -> httpx.Response:
    return device.http.post("/v1/auth/refresh", json={"refresh_token": token})


def pull_with(device: Device, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return device.http.get("/v1/sync/pull", headers=headers).status_code


def test_a_refresh_token_replayed_after_rotation_ends_its_family(
    module_backend: BackendProcess,
) -> None:
    phone = Device(module_backend.url, f"r{uuid.uuid4().hex[:10]}").signup()
    laptop = Device(module_backend.url, phone.username).login()  # another sign-in
    first = phone.refresh_token
    second = refresh(phone, first).json()
    third = refresh(phone, second["refresh_token"]).json()
    assert pull_with(phone, third["token"]) == 200

    replayed = refresh(phone, first)

    assert replayed.status_code == 401
    assert "sign in again" in replayed.json()["detail"]
    assert refresh(phone, third["refresh_token"]).status_code == 401
    assert pull_with(phone, third["token"]) == 401
    assert pull_with(phone, second["token"]) == 401
    assert pull_with(phone, phone.token or "") == 401
    # The other sign-in is another family: it goes on.
    assert pull_with(laptop, laptop.token or "") == 200
    assert refresh(laptop, laptop.refresh_token).status_code == 200


def test_a_forged_refresh_token_is_401_and_ends_nothing(module_backend: BackendProcess) -> None:
    device = Device(module_backend.url, f"r{uuid.uuid4().hex[:10]}").signup()
    genuine = device.refresh_token or ""
    forged = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    older = genuine.replace(".1.", ".0.", 1)  # an older generation, without its mac
    for token in (forged, older, "r1.not-a-family.1.x", "legacy-looking-token"):
        assert refresh(device, token).status_code == 401, token
    assert pull_with(device, device.token or "") == 200
    assert refresh(device, genuine).status_code == 200
