"""Failed sign-ins throttled per (username, client address) with a ceiling per username;
hashing under a cap; sign-ups per address; all of it across BFF processes (FAULTS 23).

Guessers connect from their own loopback addresses (127.0.0.2 and up: the socket binds to
them), so the backend sees forty clients, as it would on a network.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.backend import BackendProcess, ControlledNats, two_processes
from tests.support.device import PASSWORD, Device

pytestmark = pytest.mark.integration

GUESSERS = [f"127.0.0.{i}" for i in range(2, 42)]
PER_ADDRESS = 3
PER_USERNAME = 20
HASH_CAP = 2
THROTTLED = {
    "OUTPOST_SIGNIN_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
    "OUTPOST_SIGNIN_FAILURES_PER_USERNAME": str(PER_USERNAME),
    "OUTPOST_SIGNIN_BLOCK_S": "1",
    "OUTPOST_PASSWORD_HASH_CONCURRENCY": str(HASH_CAP),
}


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def client_from(url: str, address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 on Linux)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def sign_in(client: httpx.Client, username: str, password: str, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/auth/token", json={"username": username, "password": password}, headers=headers
    )


def hash_peak(url: str) -> int:
    metrics = httpx.get(f"{url}/metrics").text
    found = re.search(r"^outpost_password_hashes_in_flight_max (\S+)$", metrics, re.M)
    assert found, metrics
    return int(float(found.group(1)))


@dataclass
class Guesser:
    address: str
    statuses: list[int] = field(default_factory=list)
    retry_after: list[int] = field(default_factory=list)


@pytest.fixture
def throttled(tmp_path: Path, controlled_nats: ControlledNats) -> Iterator[BackendProcess]:
    process = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=THROTTLED).start()
    try:
        yield process
    finally:
        process.stop()


def test_forty_guessers_are_throttled_while_the_owner_signs_in(
    throttled: BackendProcess,
) -> None:
    owner = Device(throttled.url, unique("owner")).signup()
    bystander = Device(throttled.url, unique("other")).signup()
    guessers = [Guesser(address) for address in GUESSERS]
    stop = threading.Event()

    def guess(guesser: Guesser) -> None:
        with client_from(throttled.url, guesser.address) as client:
            for n in range(200):  # bounded, and stops once the owner is in
                if stop.is_set():
                    return
                response = sign_in(client, owner.username, f"wrong guess {n}")
                guesser.statuses.append(response.status_code)
                if response.status_code == 429:
                    guesser.retry_after.append(int(response.headers["Retry-After"]))
                    time.sleep(0.05)

    threads = [threading.Thread(target=guess, args=(g,)) for g in guessers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 180  # hashes are slow on a busy machine
        while not all(429 in g.statuses for g in guessers):  # every guesser is throttled
            assert time.monotonic() < deadline, [g.statuses for g in guessers]
            time.sleep(0.05)
        with client_from(throttled.url, "127.0.0.1") as own:
            signed_in = sign_in(own, owner.username, PASSWORD)
        pulled = bystander.pull_page()
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)

    assert signed_in.status_code == 200, signed_in.text
    assert pulled.status_code == 200, pulled.text
    failures_before_429 = []
    for guesser in guessers:
        assert set(guesser.statuses) <= {401, 429}, (guesser.address, guesser.statuses)
        assert 429 in guesser.statuses, (guesser.address, guesser.statuses)
        failures_before_429.append(guesser.statuses.index(429))
        assert min(guesser.retry_after) >= 1
    assert max(failures_before_429) <= PER_ADDRESS, failures_before_429
    # Past the username's ceiling every address was blocked at its next failure.
    assert sum(failures_before_429) <= PER_USERNAME + len(guessers), failures_before_429
    assert 1 <= hash_peak(throttled.url) <= HASH_CAP


def test_the_retry_after_grows_with_each_further_failure(throttled: BackendProcess) -> None:
    owner = Device(throttled.url, unique("owner")).signup()
    waits: list[int] = []
    with client_from(throttled.url, "127.0.0.2") as client:
        codes = [sign_in(client, owner.username, "wrong").status_code for _ in range(PER_ADDRESS)]
        assert codes == [401] * PER_ADDRESS
        for _ in range(3):
            refused = sign_in(client, owner.username, "wrong")
            assert refused.status_code == 429, refused.text
            assert refused.json()["status_code"] == 429
            waits.append(int(refused.headers["Retry-After"]))
            time.sleep(waits[-1])  # as the answer says; then one more wrong guess
            deadline = time.monotonic() + 10
            while (again := sign_in(client, owner.username, "wrong")).status_code == 429:
                assert time.monotonic() < deadline, again.text
                time.sleep(0.2)
            assert again.status_code == 401
    assert waits[0] >= 1 and waits[0] < waits[1] < waits[2], waits
    with client_from(throttled.url, "127.0.0.1") as own:
        assert sign_in(own, owner.username, PASSWORD).status_code == 200


def test_refresh_is_never_throttled(throttled: BackendProcess) -> None:
    owner = Device(throttled.url, unique("owner")).signup()
    with client_from(throttled.url, "127.0.0.1") as client:
        for _ in range(PER_ADDRESS + 1):
            sign_in(client, owner.username, "wrong")
        assert sign_in(client, owner.username, PASSWORD).status_code == 429
        token = owner.refresh_token
        for _ in range(5):
            response = client.post("/v1/auth/refresh", json={"refresh_token": token})
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    env = {**THROTTLED, "OUTPOST_TRUSTED_PROXIES": "127.0.0.1/32"}
    process = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=env).start()
    try:
        owner = Device(process.url, unique("owner")).signup()
        with client_from(process.url, "127.0.0.1") as proxy:
            # Through the trusted proxy: the client is the right-most hop it did not add;
            # what the client wrote to the left of it changes nothing.
            for n in range(PER_ADDRESS):
                hops = f"10.9.9.{n}, 203.0.113.5"
                reply = sign_in(proxy, owner.username, "wrong", **{"X-Forwarded-For": hops})
                assert reply.status_code == 401
            blocked = sign_in(
                proxy, owner.username, "wrong", **{"X-Forwarded-For": "1.1.1.1, 203.0.113.5"}
            )
            assert blocked.status_code == 429
            other = sign_in(proxy, owner.username, PASSWORD, **{"X-Forwarded-For": "203.0.113.6"})
            assert other.status_code == 200, "another client behind the proxy is not blocked"
        with client_from(process.url, "127.0.0.2") as untrusted:
            # Not a trusted proxy: its X-Forwarded-For is not believed, whatever it says.
            codes = [
                sign_in(
                    untrusted, owner.username, "wrong", **{"X-Forwarded-For": f"198.51.100.{n}"}
                ).status_code
                for n in range(PER_ADDRESS + 1)
            ]
        assert codes == [401] * PER_ADDRESS + [429]
    finally:
        process.stop()


def test_sign_ups_are_limited_per_client_address(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    env = {"OUTPOST_SIGNUP_LIMIT": "3", "OUTPOST_SIGNUP_WINDOW_S": "3600"}
    process = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=env).start()
    try:
        body = {"password": PASSWORD}
        with client_from(process.url, "127.0.0.2") as client:
            codes = [
                client.post("/v1/auth/signup", json={**body, "username": unique()}).status_code
                for _ in range(4)
            ]
            refused = client.post("/v1/auth/signup", json={**body, "username": unique()})
        assert codes == [201, 201, 201, 429]
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "sign-ups" in refused.json()["detail"]
        with client_from(process.url, "127.0.0.3") as elsewhere:
            reply = elsewhere.post("/v1/auth/signup", json={**body, "username": unique()})
            assert reply.status_code == 201
    finally:
        process.stop()


def test_ipv6_clients_are_counted_by_their_64_network(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    """A host holds a whole /64: new addresses inside it are the same client to the limits."""
    env = {
        "OUTPOST_SIGNUP_LIMIT": "3",
        "OUTPOST_SIGNUP_WINDOW_S": "3600",
        "OUTPOST_TRUSTED_PROXIES": "127.0.0.1",
    }
    process = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=env).start()
    try:
        with client_from(process.url, "127.0.0.1") as proxy:

            def signup(address: str) -> int:
                body = {"password": PASSWORD, "username": unique()}
                headers = {"X-Forwarded-For": address}
                return proxy.post("/v1/auth/signup", json=body, headers=headers).status_code

            same_host = [signup(f"2001:db8:1:2::{n:x}") for n in range(1, 5)]
            assert same_host == [201, 201, 201, 429]
            assert signup("2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
            assert signup("2001:db8:1:3::1") == 201  # the next /64: another client
    finally:
        process.stop()


TWO_BFF_LIMITS = {
    **THROTTLED,
    "OUTPOST_RATE_LIMIT_PER_S": "0.01",
    "OUTPOST_RATE_LIMIT_BURST": "4",
    "OUTPOST_SIGNUP_LIMIT": "3",
}
"""The settings of ``limits_hold_across`` (also used on ``outpost cluster``'s two BFFs)."""


def test_the_limits_and_revocations_hold_across_two_bff_processes(
    tmp_path: Path, controlled_nats: ControlledNats, db_url: str | None
) -> None:
    env = TWO_BFF_LIMITS
    with two_processes(tmp_path / "backend", controlled_nats, db_url=db_url, env=env) as (a, b):
        limits_hold_across(a, b)


def limits_hold_across(a: Any, b: Any) -> None:
    """Sign-in throttles, sign-up and per-user rate limits and refresh-token revocation hold
    across two BFF processes ``a`` and ``b`` (anything with a ``url``) that run with
    ``TWO_BFF_LIMITS``: a client that alternates between them gets no more than from one."""
    owner = Device(a.url, unique("owner")).signup()
    with client_from(a.url, "127.0.0.2") as on_a, client_from(b.url, "127.0.0.2") as on_b:
        codes = [
            sign_in(client, owner.username, "wrong").status_code
            for client in [on_a, on_b] * PER_ADDRESS
        ]
        signups = [
            client.post(
                "/v1/auth/signup", json={"username": unique(), "password": PASSWORD}
            ).status_code
            for client in [on_a, on_b, on_a, on_b]
        ]
    assert codes[:PER_ADDRESS] == [401] * PER_ADDRESS
    assert set(codes[PER_ADDRESS:]) == {429}, codes
    assert signups == [201, 201, 201, 429], signups

    user = Device(a.url, unique("rate")).signup()
    pulls = []
    for url in [a.url, b.url] * 3:
        user.http.base_url = httpx.URL(url)
        pulls.append(user.pull_page().status_code)
    assert pulls == [200, 200, 200, 200, 429, 429]

    # A refresh token replayed on B ends the family on A too (within a second).
    first = owner.refresh_token
    rotated = httpx.post(f"{a.url}/v1/auth/refresh", json={"refresh_token": first}).json()
    replay = httpx.post(f"{b.url}/v1/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    headers = {"Authorization": f"Bearer {rotated['token']}"}
    deadline = time.monotonic() + 10
    while (reply := httpx.get(f"{a.url}/v1/sync/pull", headers=headers)).status_code != 401:
        assert reply.status_code in (200, 429), reply.text  # 429: past auth, rate-limited
        assert time.monotonic() < deadline, "the revocation never reached process A"
        time.sleep(0.1)
