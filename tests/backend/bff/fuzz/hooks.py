"""schemathesis hooks for the fuzz run (``SCHEMATHESIS_HOOKS=tests.backend.bff.fuzz.hooks``).

- the auth provider signs a user up on the backend under test, once, and sends its token;
- sign-in and refresh get real credentials in every other positive case (random ones
  never work); so do password change and log-out, each for a throwaway user of its own
  (with its own token and password), so the fuzzing user's session never ends;
- every well-formed push also carries one valid event (a new board of the pushing device),
  so pushes get ``accepted`` results and not only ``invalid`` ones;
- every answer is recorded (``OUTPOST_FUZZ_LOG``): which operation got which status, and
  whether a push had an event accepted.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
import uuid
from typing import Any

import httpx
import schemathesis

from protocol import new_id
from protocol.ids import DEVICE_ID_RE

PASSWORD = "fuzz-password-1"
THROWAWAY_PASSWORD = "fuzz-throwaway-1"
"""Not the fuzzing user's: a throwaway's change sent with the fuzzing user's token is 401."""
_lock = threading.Lock()
_account: dict[str, str] = {}
_turns = itertools.count()
_throwaway_tokens: dict[int, tuple[Any, str]] = {}
"""The cases map_case gave a throwaway user, by id: their token, whenever auth is set."""


def _url() -> str:
    return os.environ["OUTPOST_FUZZ_URL"]


def account() -> dict[str, str]:
    """The fuzzing user, signed up on first use."""
    with _lock:
        if not _account:
            username = f"fuzz{uuid.uuid4().hex[:10]}"
            reply = httpx.post(
                f"{_url()}/v1/auth/signup", json={"username": username, "password": PASSWORD}
            )
            reply.raise_for_status()
            _account.update(username=username, token=reply.json()["token"])
        return _account


@schemathesis.auth()
class SignedUp:
    def get(self, case: Any, context: Any) -> str:
        return account()["token"]

    def set(self, case: Any, data: str, context: Any) -> None:
        throwaway = _throwaway_tokens.get(id(case))
        if throwaway is not None and throwaway[0] is case:  # map_case made it a throwaway's
            data = throwaway[1]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _path(context: Any) -> str:
    return str(context.operation.path) if context.operation is not None else ""


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    path = _path(context)
    if path == "/v1/sync/push":
        case.body = _with_a_valid_event(case.body)
    elif path in ("/v1/auth/token", "/v1/auth/refresh") and _positive(case) and next(_turns) % 2:
        case.body = _real_credentials(path)
    elif path in ("/v1/auth/password", "/v1/auth/logout") and _positive(case) and next(_turns) % 2:
        session = _throwaway()
        _throwaway_tokens[id(case)] = (case, session["token"])  # the case kept: its id too
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {session['token']}"}
        if path == "/v1/auth/password":
            case.body = {"password": THROWAWAY_PASSWORD, "new_password": "fuzz-changed-1"}
        else:
            case.body = {"refresh_token": session["refresh_token"]}
    return case


def _throwaway() -> dict[str, str]:
    """A new user's session, for a request that ends it."""
    username = f"fuzz{uuid.uuid4().hex[:10]}"
    reply = httpx.post(
        f"{_url()}/v1/auth/signup", json={"username": username, "password": THROWAWAY_PASSWORD}
    )
    reply.raise_for_status()
    body: dict[str, str] = reply.json()
    return body


def _positive(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and str(meta.generation.mode.value) == "positive"


def _real_credentials(path: str) -> dict[str, str]:
    credentials = {"username": account()["username"], "password": PASSWORD}
    if path == "/v1/auth/token":
        return credentials
    return {"refresh_token": _sign_in(credentials)["refresh_token"]}


def _sign_in(credentials: dict[str, str]) -> dict[str, str]:
    """The shared account's new session. Two workers may sign it in at the same moment,
    and a (username, address) with a check in flight is told 429 to wait: wait, then ask
    again; any other answer is a failure of the hook, said as such."""
    for _ in range(50):
        reply = httpx.post(f"{_url()}/v1/auth/token", json=credentials)
        if reply.status_code == 200:
            body: dict[str, str] = reply.json()
            return body
        if reply.status_code != 429:
            break
        time.sleep(min(float(reply.headers.get("Retry-After", "1")), 1.0) / 4)
    raise AssertionError(f"the fuzz account could not sign in: {reply.status_code} {reply.text}")


def _with_a_valid_event(body: Any) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return body
    device = body.get("device")
    if not isinstance(device, str) or not re.fullmatch(DEVICE_ID_RE, device):
        return body
    if not 0 < len(body["events"]) < 500:
        return body
    board = new_id()
    millis = int(time.time() * 1000)
    event = {
        "id": new_id(),
        "type": "BoardCreated",
        "schema": 1,
        "board": board,
        "entity": board,
        "hlc": f"{millis:013d}:00000:{device}",
        "device": device,
        "payload": {"name": "fuzzed"},
    }
    return {**body, "events": [*body["events"], event]}


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    line = f"{case.operation.method.upper()} {case.operation.path} {response.status_code}"
    if case.operation.path == "/v1/sync/push" and response.status_code == 200:
        results = response.json().get("results", [])
        if any(r.get("status") == "accepted" for r in results):
            line += " accepted"
    with _lock, open(os.environ["OUTPOST_FUZZ_LOG"], "a") as log:
        log.write(line + "\n")
