"""A scripted device for backend tests: signs up, stamps events, pushes and pulls over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx

from protocol import HybridLogicalClock, new_device_id, new_id

PASSWORD = "correct horse"


class Device:
    def __init__(self, url: str, username: str, *, device_id: str | None = None) -> None:
        self.url = url
        self.username = username
        self.device_id = device_id or new_device_id()
        self.clock = HybridLogicalClock(self.device_id)
        self.http = httpx.Client(base_url=url, timeout=30)
        self.token: str | None = None
        self.refresh_token: str | None = None
        self.cursor: str | None = None
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.watermark = 0

    # accounts

    def signup(self) -> Device:
        self._session(self.http.post("/v1/auth/signup", json=self._credentials()), 201)
        return self

    def login(self) -> Device:
        self._session(self.http.post("/v1/auth/token", json=self._credentials()), 200)
        return self

    def _credentials(self) -> dict[str, str]:
        return {"username": self.username, "password": PASSWORD}

    def _session(self, response: httpx.Response, expected: int) -> None:
        assert response.status_code == expected, response.text
        body = response.json()
        self.token, self.refresh_token = body["token"], body["refresh_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    # events

    def event(
        self, type_: str, payload: dict[str, Any], *, board: str, entity: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": new_id(),
            "type": type_,
            "schema": 1,
            "board": board,
            "entity": entity or board,
            "hlc": self.clock.now(),
            "device": self.device_id,
            "payload": payload,
        }

    def new_board(self, name: str = "Launch", **payload: Any) -> tuple[str, dict[str, Any]]:
        board = new_id()
        return board, self.event("BoardCreated", {"name": name, **payload}, board=board)

    def new_task(
        self, board: str, title: str = "Task", **payload: Any
    ) -> tuple[str, dict[str, Any]]:
        task = new_id()
        body = {"title": title, "position": "a0", **payload}
        return task, self.event("TaskCreated", body, board=board, entity=task)

    # sync

    def push_raw(self, events: list[Any], **body: Any) -> httpx.Response:
        payload = {"device": self.device_id, "protocol": 1, "events": events, **body}
        return self.http.post("/v1/sync/push", json=payload, headers=self.headers)

    def push(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.push_raw(list(events))
        assert response.status_code == 200, response.text
        body = response.json()
        self.clock.receive_time(body["server_time"])
        return list(body["results"])

    def pull_page(self, cursor: str | None = None, limit: int = 500) -> httpx.Response:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self.http.get("/v1/sync/pull", params=params, headers=self.headers)

    def pull(self, limit: int = 500) -> list[dict[str, Any]]:
        """Pull until ``has_more`` is false; apply the changes to ``state``; return them."""
        changes: list[dict[str, Any]] = []
        while True:
            response = self.pull_page(self.cursor, limit)
            assert response.status_code == 200, response.text
            body = response.json()
            if body["reset"]:
                self.state.clear()
            for change in body["changes"]:
                changes.append(change)
                if change.get("removed"):
                    self.state = {k: v for k, v in self.state.items() if v["board"] != change["id"]}
                else:
                    self.state[(change["kind"], change["id"])] = change
            self.cursor, self.watermark = body["cursor"], body["watermark"]
            if not body["has_more"]:
                return changes

    def sync_until(self, seq: int, timeout: float = 15) -> None:
        """Pull until the views reflect every event up to ``seq``."""
        deadline = time.monotonic() + timeout
        while True:
            self.pull()
            if self.watermark >= seq:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"watermark {self.watermark} never reached {seq}")
            time.sleep(0.05)

    def values(self, kind: str, entity: str) -> dict[str, Any] | None:
        change = self.state.get((kind, entity))
        return None if change is None else change["values"]

    def boards(self) -> set[str]:
        return {entity for kind, entity in self.state if kind == "board"}
