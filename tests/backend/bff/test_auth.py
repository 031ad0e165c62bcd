"""Sign-up, sign-in and refresh over real HTTP (SPEC section 6)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.backend import BackendProcess
from tests.support.device import PASSWORD, Device

pytestmark = pytest.mark.integration


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def test_signup_answers_201_with_a_session(module_backend: BackendProcess) -> None:
    name = unique()
    response = httpx.post(
        f"{module_backend.url}/v1/auth/signup", json={"username": name, "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user_id", "username", "token", "expires_in", "refresh_token"}
    assert body["username"] == name and body["expires_in"] == 900


def test_a_taken_username_is_409(module_backend: BackendProcess) -> None:
    device = Device(module_backend.url, unique()).signup()
    response = device.http.post(
        "/v1/auth/signup", json={"username": device.username, "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.json() == {
        "status_code": 409,
        "detail": f"username {device.username!r} is taken",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"username": "Alice", "password": PASSWORD},
        {"username": "al", "password": PASSWORD},
        {"username": "a" * 33, "password": PASSWORD},
        {"username": "alice smith", "password": PASSWORD},
        {"username": "alice", "password": "short"},
        {"username": "alice", "password": "x" * 129},
        {"username": "alice"},
        {"username": "alice", "password": PASSWORD, "admin": True},
    ],
    ids=[
        "uppercase",
        "too-short",
        "too-long",
        "space",
        "short-password",
        "long-password",
        "no-password",
        "extra-field",
    ],
)
def test_an_invalid_signup_is_400_naming_the_field(
    module_backend: BackendProcess, body: dict[str, object]
) -> None:
    response = httpx.post(f"{module_backend.url}/v1/auth/signup", json=body)
    assert response.status_code == 400
    assert response.json()["status_code"] == 400
    assert "detail" in response.json()


def test_sign_in_with_the_right_password_and_not_with_a_wrong_one(
    module_backend: BackendProcess,
) -> None:
    device = Device(module_backend.url, unique()).signup()
    assert device.login().token
    wrong = device.http.post(
        "/v1/auth/token", json={"username": device.username, "password": "wrong password"}
    )
    unknown = device.http.post("/v1/auth/token", json={"username": unique(), "password": PASSWORD})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json() == {"status_code": 401, "detail": "wrong username or password"}


def test_a_refresh_token_works_once_and_gives_a_new_one(module_backend: BackendProcess) -> None:
    device = Device(module_backend.url, unique()).signup()
    first = device.refresh_token
    response = device.http.post("/v1/auth/refresh", json={"refresh_token": first})
    assert response.status_code == 200
    second = response.json()["refresh_token"]
    assert second != first
    new_token = response.json()["token"]
    pull = device.http.get("/v1/sync/pull", headers={"Authorization": f"Bearer {new_token}"})
    assert pull.status_code == 200
    again = device.http.post("/v1/auth/refresh", json={"refresh_token": first})
    assert again.status_code == 401  # and it ends the family: test_refresh_reuse.py
    assert "sign in again" in again.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}],
    ids=["none", "garbage", "wrong-scheme"],
)
def test_sync_routes_need_a_valid_bearer_token(
    module_backend: BackendProcess, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/v1/sync/pull"),
        ("POST", "/v1/sync/push"),
        ("GET", "/v1/sync/live"),
    ]:
        response = httpx.request(method, f"{module_backend.url}{path}", headers=headers, json={})
        assert response.status_code == 401, (path, response.text)
        assert response.json()["status_code"] == 401


def test_info_health_and_schema_need_no_token(module_backend: BackendProcess) -> None:
    info = httpx.get(f"{module_backend.url}/v1/sync/info").json()
    assert info["protocols"] == [1, 1]
    assert (info["max_batch_events"], info["max_batch_bytes"]) == (500, 1048576)
    assert isinstance(info["generation"], str)
    health = httpx.get(f"{module_backend.url}/v1/health").json()
    assert health["status"] == "ok" and health["nats"] == "connected"
    schema = httpx.get(f"{module_backend.url}/schema/openapi.json")
    assert schema.status_code == 200 and "/v1/sync/push" in schema.json()["paths"]
    metrics = httpx.get(f"{module_backend.url}/metrics")
    assert "outpost_projector_lag_events" in metrics.text
