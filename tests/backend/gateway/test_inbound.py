"""Inbound deliveries end to end, on a real backend: a GitHub-shaped delivery signed with a
test secret creates, labels and closes a task; a redelivery changes nothing; the generic
source creates and closes by an external key; every refusal (bad signature 401, unknown
source or board 404, unreadable body 422, unknown action 202 with nothing written)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from backend.gateway.signatures import sign_github, standard_headers
from backend.gateway.sources.common import task_id
from tests.backend.gateway.conftest import owner_with_board
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


def register(owner: Device, board: str, source: str) -> dict[str, Any]:
    reply = owner.http.put(f"/v1/boards/{board}/sources/{source}", headers=owner.headers)
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    assert body["secret"].startswith("whsec_")
    assert body["path"] == f"/v1/inbound/{source}/{board}"
    return body


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def github_body(action: str, updated_ms: int, **extra: Any) -> bytes:
    issue = {
        "number": 42,
        "title": "Rocket " + "x" * 600,
        "body": "It does not fly.",
        "state": "closed" if action == "closed" else "open",
        "labels": [{"name": "bug"}],
        "assignee": {"login": "OctoCat"},
        "updated_at": iso(updated_ms),
    }
    body = {"action": action, "issue": issue, "repository": {"full_name": "acme/rocket"}, **extra}
    return json.dumps(body).encode()


def send_github(
    http: httpx.Client, path: str, secret: str, body: bytes, delivery: str, event: str = "issues"
) -> httpx.Response:
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign_github(secret, body),
        "content-type": "application/json",
    }
    return http.post(path, content=body, headers=headers)


def test_a_github_issue_creates_labels_and_closes_a_task_and_a_redelivery_changes_nothing(
    gateway_backend: BackendProcess, module_nats: ControlledNats
) -> None:
    owner, board = owner_with_board(gateway_backend)
    source = register(owner, board, "github")
    mapped = owner.http.put(
        f"/v1/boards/{board}/logins/OctoCat",
        json={"username": owner.username},
        headers=owner.headers,
    )
    assert mapped.status_code == 200, mapped.text
    http, path, secret = owner.http, source["path"], source["secret"]
    start = int(time.time() * 1000) - 60_000
    opened = send_github(http, path, secret, github_body("opened", start), "gh-1")
    assert opened.status_code == 200, opened.text
    assert opened.json()["status"] == "written"
    labeled = github_body("labeled", start + 1000, label={"name": "p1"})
    assert send_github(http, path, secret, labeled, "gh-2").json()["status"] == "written"
    closed = send_github(http, path, secret, github_body("closed", start + 2000), "gh-3")
    assert closed.json()["status"] == "written"
    last = closed.json()["events"][-1]["seq"]
    owner.sync_until(last)
    task = owner.values("task", task_id(board, "github", "acme/rocket#42"))
    assert task is not None
    assert task["title"].startswith("Rocket x") and task["title"].endswith("…")
    assert len(task["title"]) == 500
    assert (task["notes"], task["status"], task["labels"]) == (
        "It does not fly.",
        "done",
        ["bug", "p1"],
    )
    assert task["assignee"] == owner.username
    # A redelivery (same X-GitHub-Delivery, same body) is a duplicate: nothing new stored.
    before = module_nats.last_seq()
    again = send_github(http, path, secret, github_body("opened", start), "gh-1")
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert [e["seq"] for e in again.json()["events"]] == [e["seq"] for e in opened.json()["events"]]
    assert module_nats.last_seq() == before
    owner.sync_until(before)
    assert owner.values("task", task_id(board, "github", "acme/rocket#42")) == task


def test_github_refusals_and_ignored_actions(
    gateway_backend: BackendProcess, module_nats: ControlledNats
) -> None:
    owner, board = owner_with_board(gateway_backend)
    source = register(owner, board, "github")
    http, path, secret = owner.http, source["path"], source["secret"]
    body = github_body("opened", int(time.time() * 1000))
    before = module_nats.last_seq()
    bad = send_github(http, path, "whsec_other", body, "gh-bad")
    assert bad.status_code == 401, bad.text
    unsigned = http.post(path, content=body, headers={"X-GitHub-Event": "issues"})
    assert unsigned.status_code == 401
    ignored = send_github(http, path, secret, github_body("milestoned", 1), "gh-m")
    assert ignored.status_code == 202, ignored.text
    assert ignored.json()["status"] == "ignored"
    ping = send_github(http, path, secret, b'{"zen": "hi"}', "gh-p", event="ping")
    assert ping.status_code == 202
    unreadable = send_github(http, path, secret, b'{"action": "opened"}', "gh-u")
    assert unreadable.status_code == 422, unreadable.text
    assert http.post(f"/v1/inbound/jira/{board}", content=body).status_code == 404
    elsewhere = send_github(http, f"/v1/inbound/github/{uuid.uuid4()}", secret, body, "gh-x")
    assert elsewhere.status_code == 404
    assert http.post("/v1/inbound/github/not-a-board", content=body).status_code == 404
    assert module_nats.last_seq() == before  # none of it wrote anything
    # A removed source is refused from then on.
    removed = http.delete(f"/v1/boards/{board}/sources/github", headers=owner.headers)
    assert removed.status_code == 204
    assert send_github(http, path, secret, body, "gh-late").status_code == 404


def test_the_generic_source_creates_and_closes_a_task_by_its_key(
    gateway_backend: BackendProcess,
) -> None:
    owner, board = owner_with_board(gateway_backend)
    source = register(owner, board, "generic")
    http, path, secret = owner.http, source["path"], source["secret"]
    now = int(time.time() * 1000)

    def send(kind: str, data: dict[str, Any], message: str, at: int) -> httpx.Response:
        body = json.dumps({"type": kind, "timestamp": iso(at), "data": data}).encode()
        return http.post(
            path, content=body, headers=standard_headers(secret, message, int(time.time()), body)
        )

    created = send("task.created", {"key": "INC-7", "title": "Disk full", "priority": 4}, "m1", now)
    assert created.status_code == 200, created.text
    closed = send("task.closed", {"key": "INC-7"}, "m2", now + 1)
    owner.sync_until(closed.json()["events"][0]["seq"])
    task = owner.values("task", task_id(board, "generic", "INC-7"))
    assert task is not None
    assert (task["title"], task["priority"], task["status"]) == ("Disk full", 4, "done")
    assert send("task.closed", {"key": "INC-7"}, "m2", now + 1).json()["status"] == "duplicate"
    assert send("invoice.paid", {"key": "INC-7"}, "m3", now).status_code == 202
    forged = json.dumps({"type": "task.closed", "timestamp": iso(now), "data": {"key": "X"}})
    headers = standard_headers("whsec_" + "A" * 44, "m4", int(time.time()), forged.encode())
    assert http.post(path, content=forged, headers=headers).status_code == 401
    stale = standard_headers(secret, "m5", int(time.time()) - 3600, forged.encode())
    assert http.post(path, content=forged, headers=stale).status_code == 401
    # The owner's authority is what decides: on an archived board it is refused, not stored.
    archive = owner.event("BoardUpdated", {"fields": {"archived": True}}, board=board)
    assert owner.push(archive)[0]["status"] == "accepted"
    refused = send("task.created", {"key": "INC-8", "title": "Late"}, "m6", now + 2)
    assert refused.status_code == 200, refused.text
    assert refused.json()["status"] == "rejected"
    assert [e["reason"] for e in refused.json()["events"]] == ["archived"]


def test_only_the_owner_registers_sources_and_logins(gateway_backend: BackendProcess) -> None:
    owner, board = owner_with_board(gateway_backend)
    other = Device(gateway_backend.url, f"other{uuid.uuid4().hex[:8]}").signup()
    for method, path, body in (
        ("PUT", f"/v1/boards/{board}/sources/github", None),
        ("GET", f"/v1/boards/{board}/sources", None),
        ("PUT", f"/v1/boards/{board}/logins/octocat", {"username": other.username}),
        ("GET", f"/v1/boards/{board}/logins", None),
    ):
        reply = other.http.request(method, path, json=body, headers=other.headers)
        assert reply.status_code == 403, (path, reply.text)
    unknown = owner.http.put(f"/v1/boards/{board}/sources/jira", headers=owner.headers)
    assert unknown.status_code == 404
    bad_name = owner.http.put(
        f"/v1/boards/{board}/logins/octocat", json={"username": "No Such"}, headers=owner.headers
    )
    assert bad_name.status_code == 400
    listed = owner.http.get(f"/v1/boards/{board}/sources", headers=owner.headers).json()
    assert listed == []
    register(owner, board, "github")
    [github] = owner.http.get(f"/v1/boards/{board}/sources", headers=owner.headers).json()
    assert (github["source"], github["owner"]) == ("github", owner.username)
    assert "secret" not in github
