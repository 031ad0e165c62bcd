"""Outbound webhooks end to end: a real backend (its gateway component), a real nats-server
and a real HTTP receiver of ours. The receiver fails, then accepts, and verifies every
signature; a dead receiver never holds back the stream; an exhausted schedule is a fault
that ``outpost faults resubmit`` sends again; registration is the board owner's, to
allowed targets only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from outpost.cli import main
from tests.backend.gateway.conftest import owner_with_board
from tests.backend.gateway.receiver import Receiver
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


def add_webhook(owner: Device, board: str, url: str) -> dict[str, Any]:
    reply = owner.http.post(
        f"/v1/boards/{board}/webhooks", json={"url": url}, headers=owner.headers
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def deliveries(owner: Device, board: str, endpoint: str) -> list[dict[str, Any]]:
    reply = owner.http.get(
        f"/v1/boards/{board}/webhooks/{endpoint}/deliveries", headers=owner.headers
    )
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()
    return found


def settled_log(
    read: Callable[[], list[dict[str, Any]]],
    settled: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20,
) -> list[dict[str, Any]]:
    """The delivery log ``read`` gives, once ``settled`` holds: the receiver has its answer
    a moment before the gateway commits the try, so a test that read the log at once would
    race it."""
    deadline = time.monotonic() + timeout
    while True:
        log = read()
        if settled(log):
            return log
        assert time.monotonic() < deadline, f"the delivery log never settled: {log}"
        time.sleep(0.05)


def logged_when(
    owner: Device,
    board: str,
    endpoint: str,
    settled: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    return settled_log(lambda: deliveries(owner, board, endpoint), settled)


def test_a_receiver_that_fails_then_accepts_gets_every_change_signed(
    gateway_backend: BackendProcess, receiver: Receiver
) -> None:
    owner, board = owner_with_board(gateway_backend)
    receiver.plans["/flaky"] = [500, 503]
    endpoint = add_webhook(owner, board, receiver.url("/flaky"))
    assert endpoint["secret"].startswith("whsec_")
    _, created = owner.new_task(board, "Ship it")
    [result] = owner.push(created)
    got = receiver.wait("/flaky", lambda rs: any(r.answered == 200 for r in rs))
    assert [r.answered for r in got] == [500, 503, 200]
    hook = Webhook(endpoint["secret"])
    for request in got:  # every try signed, with the same webhook-id
        payload = hook.verify(request.body, request.headers)
        assert payload["type"] == "TaskCreated"
        assert payload["data"]["id"] == created["id"]
        assert payload["data"]["seq"] == result["seq"]
        assert payload["data"]["payload"]["title"] == "Ship it"
        assert payload["data"]["actor"] == owner.username
    assert len({r.headers["webhook-id"] for r in got}) == 1
    # the delivery log says what happened
    [logged] = logged_when(owner, board, endpoint["id"], lambda log: log[0]["status"] != "pending")
    assert logged["id"] == got[0].headers["webhook-id"]
    assert (logged["status"], logged["attempts"]) == ("delivered", 3)
    assert [t["status"] for t in logged["tries"]] == [500, 503, 200]
    listed = owner.http.get(f"/v1/boards/{board}/webhooks", headers=owner.headers).json()
    assert [(e["id"], e["delivered"], e["pending"]) for e in listed] == [(endpoint["id"], 1, 0)]
    assert "secret" not in listed[0]


def test_a_dead_receiver_never_holds_back_the_stream_and_its_exhausted_delivery_is_a_fault(
    gateway_backend: BackendProcess, receiver: Receiver, module_nats: ControlledNats
) -> None:
    owner, board = owner_with_board(gateway_backend)
    receiver.plans["/dead"] = [500] * 4  # every try of the first delivery
    dead = add_webhook(owner, board, receiver.url("/dead"))
    add_webhook(owner, board, receiver.url("/alive"))
    pushed = [owner.push(owner.new_task(board, f"T{i}")[1])[0] for i in range(3)]
    last = pushed[-1]["seq"]
    # The stream goes on: the gateway's consumer passes every event, and the live endpoint
    # gets all three, while the dead one is still on its first.
    gateway_backend.wait_passed("gateway", last)
    receiver.wait("/alive", lambda rs: len(rs) == 3)
    first_event = pushed[0]["id"]
    # Four tries (the first and three retries), then the delivery is failed and faulted;
    # the endpoint goes on with the next deliveries, which the receiver now accepts.
    receiver.wait("/dead", lambda rs: sum(r.answered == 200 for r in rs) == 2)
    settled = logged_when(
        owner, board, dead["id"], lambda log: all(d["status"] != "pending" for d in log)
    )
    log = {d["event_id"]: d for d in settled}
    assert (log[first_event]["status"], log[first_event]["attempts"]) == ("failed", 4)
    assert "HTTP 500" in log[first_event]["last_error"]
    fault = wait_for_fault(module_nats, first_event)
    assert fault["component"] == "gateway"
    # Resubmitted, it is delivered (same webhook-id, fresh schedule).
    done = outpost_faults(module_nats, "resubmit", str(fault["id"]))
    assert done.returncode == 0, done.stderr
    got = receiver.wait(
        "/dead",
        lambda rs: any(
            r.answered == 200 and r.headers["webhook-id"] == log[first_event]["id"] for r in rs
        ),
    )
    assert json.loads(got[-1].body)["data"]["id"] == first_event
    assert Webhook(dead["secret"]).verify(got[-1].body, got[-1].headers)


def test_redeliver_sends_a_delivered_one_again(
    gateway_backend: BackendProcess, receiver: Receiver
) -> None:
    owner, board = owner_with_board(gateway_backend)
    endpoint = add_webhook(owner, board, receiver.url("/again"))
    owner.push(owner.new_task(board, "Once")[1])
    [first] = receiver.wait("/again", lambda rs: len(rs) == 1)
    [logged] = deliveries(owner, board, endpoint["id"])
    reply = owner.http.post(
        f"/v1/boards/{board}/webhooks/{endpoint['id']}/deliveries/{logged['id']}/redeliver",
        headers=owner.headers,
    )
    assert reply.status_code == 202, reply.text
    [_, second] = receiver.wait("/again", lambda rs: len(rs) == 2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    logged_when(  # both tries logged, the delivery done again
        owner,
        board,
        endpoint["id"],
        lambda log: log[0]["status"] == "delivered" and len(log[0]["tries"]) == 2,
    )
    missing = owner.http.post(
        f"/v1/boards/{board}/webhooks/{endpoint['id']}/deliveries/{uuid.uuid4()}/redeliver",
        headers=owner.headers,
    )
    assert missing.status_code == 404
    # The component is in the health (its consumer, the queue) and in the metrics.
    health = owner.http.get("/v1/health").json()
    assert health["consumers"]["gateway"]["breaker"] == "closed"
    assert health["webhooks"]["delivered"] >= 1  # this one, at least
    metrics = owner.http.get("/metrics").text
    assert 'outpost_webhook_deliveries{status="delivered"}' in metrics
    assert 'outpost_consumer_lag_events{component="gateway"}' in metrics


def test_registration_is_the_owners_and_to_allowed_targets_only(
    gateway_backend: BackendProcess, receiver: Receiver
) -> None:
    owner, board = owner_with_board(gateway_backend)
    other = Device(gateway_backend.url, f"other{uuid.uuid4().hex[:8]}").signup()
    path = f"/v1/boards/{board}/webhooks"
    url = {"url": receiver.url("/x")}
    assert owner.http.post(path, json=url).status_code == 401
    refused = other.http.post(path, json=url, headers=other.headers)
    assert refused.status_code == 403, refused.text
    assert other.http.get(path, headers=other.headers).status_code == 403
    unknown = owner.http.post(
        f"/v1/boards/{uuid.uuid4()}/webhooks", json=url, headers=owner.headers
    )
    assert unknown.status_code == 404
    private = owner.http.post(path, json={"url": "http://10.0.0.1/x"}, headers=owner.headers)
    assert private.status_code == 422
    assert "allow-list" in private.json()["detail"]
    named = owner.http.post(path, json={"url": "http://localhost:1/x"}, headers=owner.headers)
    assert named.status_code == 422
    endpoint = add_webhook(owner, board, receiver.url("/x"))
    gone = owner.http.delete(f"{path}/{endpoint['id']}", headers=owner.headers)
    assert gone.status_code == 204
    assert owner.http.delete(f"{path}/{endpoint['id']}", headers=owner.headers).status_code == 404
    assert owner.http.get(path, headers=owner.headers).json() == []


def outpost_faults(nats: ControlledNats, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "outpost", "faults", *args, "--nats-url", nats.url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def wait_for_fault(nats: ControlledNats, event_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        listed = outpost_faults(nats, "list", "--json", "--component", "gateway")
        assert listed.returncode == 0, listed.stderr
        found = [f for f in json.loads(listed.stdout) if f["event_id"] == event_id]
        if found:
            return dict(found[0])
        assert time.monotonic() < deadline, f"no gateway fault for {event_id}"
        time.sleep(0.2)


def test_the_owner_manages_it_all_with_outpost_webhooks(
    gateway_backend: BackendProcess,
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile = str(tmp_path / "profile")

    def outpost(*args: str, status: int = 0) -> str:
        capsys.readouterr()
        assert main(list(args)) == status, capsys.readouterr().err
        captured = capsys.readouterr()
        return (captured.out if status == 0 else captured.err).strip()

    def webhooks(*args: str) -> Any:
        return json.loads(outpost("webhooks", "--data-dir", profile, "--json", *args))

    client = ("client", "--data-dir", profile)
    username = f"cli{uuid.uuid4().hex[:8]}"
    outpost(
        *client, "--server", gateway_backend.url, "signup", username, "--password", "pw-12345678"
    )
    board = outpost(*client, "board", "create", "CLI")
    outpost(*client, "sync")
    added = webhooks("add", board, receiver.url("/cli"))
    assert added["secret"].startswith("whsec_")
    outpost(*client, "task", "add", board, "From the CLI")
    outpost(*client, "sync")
    [request] = receiver.wait("/cli", lambda rs: len(rs) == 1)
    assert Webhook(added["secret"]).verify(request.body, request.headers)["type"] == "TaskCreated"
    [listed] = webhooks("list", board)
    assert (listed["id"], listed["url"]) == (added["id"], receiver.url("/cli"))
    [logged] = settled_log(
        lambda: webhooks("deliveries", board, added["id"]),
        lambda log: log[0]["status"] != "pending",
    )
    assert logged["status"] == "delivered"
    assert webhooks("redeliver", board, added["id"], logged["id"]) is None
    receiver.wait("/cli", lambda rs: len(rs) == 2)
    source = webhooks("source", "add", board, "github")
    assert source["path"] == f"/v1/inbound/github/{board}"
    assert [s["source"] for s in webhooks("source", "list", board)] == ["github"]
    assert webhooks("login", "map", board, "OctoCat", username) == {
        "login": "octocat",
        "username": username,
    }
    text = outpost("webhooks", "--data-dir", profile, "login", "list", board)
    assert text == f"octocat -> {username}"
    assert webhooks("remove", board, added["id"]) is None
    refused = outpost(
        "webhooks", "--data-dir", profile, "add", board, "http://10.0.0.1/x", status=1
    )
    assert "allow-list" in refused
    usage = outpost("webhooks", "--data-dir", profile, "login", "map", board, "octocat", status=2)
    assert "needs a LOGIN and a USERNAME" in usage
