"""``/metrics`` and the detailed health: loopback clients or the admin token only (SPEC 6).

A test has no other address than loopback to come from, so the non-loopback client is the
one a trusted proxy (127.0.0.1 here) names in ``X-Forwarded-For``, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.backend import BackendProcess, ControlledNats

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-for-the-test"
FROM_AFAR = {"X-Forwarded-For": "203.0.113.9"}


@pytest.fixture
def gated(tmp_path: Path, controlled_nats: ControlledNats) -> Iterator[BackendProcess]:
    env = {"OUTPOST_TRUSTED_PROXIES": "127.0.0.1", "OUTPOST_ADMIN_TOKEN": ADMIN_TOKEN}
    process = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=env).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_remote_client_gets_no_metrics_without_the_admin_token(gated: BackendProcess) -> None:
    anonymous = httpx.get(f"{gated.url}/metrics", headers=FROM_AFAR)
    wrong = httpx.get(f"{gated.url}/metrics", headers={**FROM_AFAR, "Authorization": "Bearer nope"})
    admin = httpx.get(
        f"{gated.url}/metrics", headers={**FROM_AFAR, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["status_code"] == 401
    assert "outpost_" not in anonymous.text
    assert wrong.status_code == 403
    assert admin.status_code == 200
    assert "outpost_projector_lag_events" in admin.text


def test_a_remote_client_sees_only_the_health_status(gated: BackendProcess) -> None:
    remote = httpx.get(f"{gated.url}/v1/health", headers=FROM_AFAR)
    admin = httpx.get(
        f"{gated.url}/v1/health", headers={**FROM_AFAR, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    local = httpx.get(f"{gated.url}/v1/health")
    assert remote.status_code == 200
    assert remote.json() == {"status": "ok"}
    for detailed in (admin, local):
        assert detailed.json()["nats"] == "connected"
        assert "projector" in detailed.json()["consumers"]


def test_a_loopback_client_gets_metrics_without_a_token(gated: BackendProcess) -> None:
    assert "outpost_projector_lag_events" in httpx.get(f"{gated.url}/metrics").text


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_admin_token_opens_nothing(
    tmp_path: Path, controlled_nats: ControlledNats, blank: str
) -> None:
    """``OUTPOST_ADMIN_TOKEN=`` (as an env file leaves it) means no token, not the empty one."""
    env = {"OUTPOST_TRUSTED_PROXIES": "127.0.0.1", "OUTPOST_ADMIN_TOKEN": blank}
    process = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=env).start()
    try:
        for authorization in ("Bearer", "bearer"):
            response = httpx.get(
                f"{process.url}/metrics", headers={**FROM_AFAR, "Authorization": authorization}
            )
            assert response.status_code == 403, (authorization, response.status_code)
            assert "outpost_" not in response.text
        health = httpx.get(
            f"{process.url}/v1/health", headers={**FROM_AFAR, "Authorization": "Bearer"}
        )
        assert set(health.json()) == {"status"}
    finally:
        process.stop()


def test_a_request_relayed_by_an_untrusted_proxy_is_not_loopback(
    module_backend: BackendProcess,
) -> None:
    """No trusted proxies: a request carrying X-Forwarded-For came through a proxy that may
    run on this host, so its loopback peer does not make it an operator."""
    assert httpx.get(f"{module_backend.url}/metrics", headers=FROM_AFAR).status_code == 401
    health = httpx.get(f"{module_backend.url}/v1/health", headers=FROM_AFAR).json()
    assert set(health) == {"status"}
