"""Scenario 7, sign-in guessers (FAULTS 23): 40 concurrent password guessers on one account,
from 40 client addresses (127.0.0.2 to 127.0.0.41), while another user pulls; how fast that
user's pulls stay, beside the same pulls with nobody guessing, and whether the owner still
signs in with the real password from 127.0.0.1 during the attack.

It runs on a backend of its own with ``make run``'s defaults (argon2 at its real cost, every
abuse limit at its default), not on the bench's shared backend, whose limits are raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable

import httpx

from backend.config import Settings
from backend.launcher import BackendLauncher
from outpost.bench.harness import BenchError, Workspace, percentile, progress
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult

NAME = "guessers"
TITLE = "7. sign-in guessers"
GUESSERS = 40
PASSWORD = "the owner's real password"


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE, params={"guessers": GUESSERS, "pulls": plan.guess_pulls})
    backend = BackendLauncher(ws.folder("guessers-backend"))  # make run's defaults
    await asyncio.to_thread(backend.start)
    try:
        async with httpx.AsyncClient(base_url=backend.url, timeout=60) as http:
            owner, reader = "owner", "reader"
            for name in (owner, reader):
                reply = await http.post(
                    "/v1/auth/signup", json={"username": name, "password": PASSWORD}
                )
                if reply.status_code != 201:
                    raise BenchError(f"sign-up of {name}: HTTP {reply.status_code} {reply.text}")
            token = reply.json()["token"]
            quiet = await _pulls(http, token, plan.guess_pulls)
            alone_s, _ = await _sign_in(http, owner)
            progress(f"guessers: {GUESSERS} guessers on {owner!r} while {reader!r} pulls")
            stop = asyncio.Event()
            answers: Counter[int] = Counter()
            guessers = [
                asyncio.create_task(_guess(backend.url, f"127.0.0.{2 + n}", owner, answers, stop))
                for n in range(GUESSERS)
            ]
            try:
                # From the first guess on: the hashing phase, before the throttle bites, is
                # the worst time for everyone else.
                await _until(lambda: sum(answers.values()) > 0, seconds=60)
                busy = await _pulls(http, token, plan.guess_pulls)
                attacked_s, owner_in = await _sign_in(http, owner)
            finally:
                stop.set()
                for guesser in guessers:  # a guess waiting in the hash queue is dropped
                    guesser.cancel()
                await asyncio.gather(*guessers, return_exceptions=True)
            metrics = (await http.get("/metrics")).text
    finally:
        await asyncio.to_thread(backend.stop)
    if owner_in.status_code != 200:
        raise BenchError(f"the owner could not sign in during the attack: {owner_in.text}")
    peak = re.search(r"outpost_password_hashes_in_flight_max\S* (\d+(?:\.\d+)?)", metrics)
    label = "the same pulls with nobody guessing"
    for pct in (50, 99):
        result.add(
            Figure(
                f"another user's pull p{pct} under {GUESSERS} guessers",
                "ms",
                percentile(busy, pct),
                baseline=percentile(quiet, pct),
                baseline_label=label,
            )
        )
    result.add(
        Figure(
            "the owner's sign-in under the guessers",
            "ms",
            attacked_s * 1000,
            baseline=alone_s * 1000,
            baseline_label="the owner's sign-in with nobody guessing",
        )
    )
    # What the throttle did, beside the figures: the answers the guessers got (429: refused
    # before any hash; 401: a password was checked), the peak of hashes at once, the owner.
    result.params["guess_answers"] = {str(k): v for k, v in sorted(answers.items())}
    result.params["password_hashes_at_once_peak"] = float(peak.group(1)) if peak else None
    result.params["owner_sign_in_during_attack"] = owner_in.status_code
    progress(f"guessers: answers {dict(answers)}, owner signed in: HTTP {owner_in.status_code}")
    return result


async def _sign_in(http: httpx.AsyncClient, username: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    reply = await http.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
    return time.perf_counter() - started, reply


PULLS_PER_S = 0.8 * Settings.rate_limit_per_s
"""The reader pulls at a steady rate under ``make run``'s per-user request limit (as a device
does), so that every pull is answered: back to back, the limit refused them after its burst."""


async def _pulls(http: httpx.AsyncClient, token: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    took = []
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for _ in range(count):
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at += 1 / PULLS_PER_S
        started = time.perf_counter()
        reply = await http.get("/v1/sync/pull", headers=headers)
        took.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise BenchError(f"pull: HTTP {reply.status_code} {reply.text}")
    return took


async def _guess(
    url: str, address: str, username: str, answers: Counter[int], stop: asyncio.Event
) -> None:
    """A guesser that never waits for Retry-After: it only stops when told."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=60) as http:
        n = 0
        while not stop.is_set():
            n += 1
            with contextlib.suppress(httpx.HTTPError):
                reply = await http.post(
                    "/v1/auth/token", json={"username": username, "password": f"guess {n}"}
                )
                answers[reply.status_code] += 1


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"no guess was answered in {seconds:.0f} s")
        await asyncio.sleep(0.05)
