"""schemathesis against the real backend over HTTP, from the OpenAPI document it serves.

It fails on any server error, any answer the document does not describe (status, content
type, headers, body), any schema-violating request that is not refused (push excepted:
an invalid event is that event's ``invalid``), and unless every operation got at least
one 2xx, a push with an accepted event among them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.backend import BackendProcess, ControlledNats

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent / "fuzz"
RAISED = {
    "OUTPOST_SIGNIN_FAILURES_PER_ADDRESS": "1000000",
    "OUTPOST_SIGNIN_FAILURES_PER_USERNAME": "1000000",
}
"""On top of the test backend's raised limits: the fuzzer signs in from one address."""


def test_schemathesis_finds_nothing(tmp_path: Path, controlled_nats: ControlledNats) -> None:
    backend = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=RAISED).start()
    log = tmp_path / "answers.log"
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                f"{backend.url}/schema/openapi.json",
                "--workers",
                "2",
                "--no-color",
            ],
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "tests.backend.bff.fuzz.hooks",
                "OUTPOST_FUZZ_URL": backend.url,
                "OUTPOST_FUZZ_LOG": str(log),
                "PYTHONPATH": str(Path(__file__).parents[3]),
            },
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # its crash cache (.schemathesis/) stays out of the checkout
        )
    finally:
        backend.stop()
    report = run.stdout[-6000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    statuses: dict[str, set[int]] = defaultdict(set)
    accepted = False
    for line in log.read_text().splitlines():
        method, path, status, *rest = line.split()
        statuses[f"{method} {path}"].add(int(status))
        accepted = accepted or rest == ["accepted"]
    operations = {
        "POST /v1/auth/signup",
        "POST /v1/auth/token",
        "POST /v1/auth/refresh",
        "POST /v1/auth/password",
        "POST /v1/auth/logout",
        "GET /v1/sync/info",
        "POST /v1/sync/push",
        "GET /v1/sync/pull",
        "GET /v1/users/{username}",
        "GET /v1/health",
        "GET /v1/asyncapi.json",
        "GET /metrics",
    }
    assert set(statuses) == operations, (sorted(statuses), report)
    without_2xx = [op for op, codes in statuses.items() if not any(200 <= c < 300 for c in codes)]
    assert without_2xx == [], (dict(statuses), report)
    assert accepted, "no push had an event accepted"
    assert not any(c >= 500 for codes in statuses.values() for c in codes if c != 503), statuses
