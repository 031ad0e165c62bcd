"""``outpost faults`` end to end: a malformed message published straight to the stream is
faulted, later events are still projected, and it can be resubmitted fixed, or dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backend.nats.streams import event_subject
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


def outpost(nats: ControlledNats, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "outpost", "faults", *args, "--nats-url", nats.url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def open_faults(nats: ControlledNats, *extra: str) -> list[dict[str, Any]]:
    result = outpost(nats, "list", "--json", "--component", "projector", *extra)
    assert result.returncode == 0, result.stderr
    faults: list[dict[str, Any]] = json.loads(result.stdout)
    return faults


def wait_for_fault(nats: ControlledNats, seq: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [f for f in open_faults(nats) if f["seq"] == seq]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no fault for seq {seq}"
        time.sleep(0.2)


def test_a_malformed_message_is_listed_then_resubmitted_fixed_or_dropped(
    backend: BackendProcess, controlled_nats: ControlledNats, tmp_path: Path
) -> None:
    alice = Device(backend.url, f"faults{uuid.uuid4().hex[:6]}").signup()
    board, created = alice.new_board()
    alice.push(created)
    # A task event published past the BFF, with a broken payload: it can never be applied.
    task, good = alice.new_task(board, title="fixed by hand")
    broken = {**good, "actor": alice.username, "payload": {"title": 42}}
    bad_seq = controlled_nats.publish(event_subject(board), msgspec.json.encode(broken))
    junk_seq = controlled_nats.publish(event_subject(board), b"\xff not even json")
    _, after = alice.new_task(board, title="after the poison")
    [result] = alice.push(after)
    alice.sync_until(result["seq"])
    assert alice.values("task", after["entity"])["title"] == "after the poison"  # type: ignore[index]

    fault = wait_for_fault(controlled_nats, bad_seq)
    junk = wait_for_fault(controlled_nats, junk_seq)
    assert fault["component"] == "projector"
    assert fault["event_id"] == good["id"]
    assert "payload.title" in fault["error"] and fault["deliveries"] >= 1
    table = outpost(controlled_nats, "list")
    assert table.returncode == 0 and str(fault["id"]) in table.stdout, table.stdout

    # Resubmit a corrected body to the projector only: it is applied with its original seq.
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(msgspec.json.encode({**good, "actor": alice.username}))
    done = outpost(controlled_nats, "resubmit", str(fault["id"]), "--data", str(fixed))
    assert done.returncode == 0, done.stderr
    assert f"fault {fault['id']} resubmitted to projector" in done.stdout
    deadline = time.monotonic() + 15
    while alice.values("task", task) is None:
        assert time.monotonic() < deadline, "the resubmitted event was never projected"
        time.sleep(0.2)
        alice.pull()
    assert alice.values("task", task)["title"] == "fixed by hand"  # type: ignore[index]

    # Drop the junk; nothing is left open, and --all shows what was done.
    dropped = outpost(controlled_nats, "drop", str(junk["id"]))
    assert dropped.returncode == 0, dropped.stderr
    assert open_faults(controlled_nats) == []
    assert outpost(controlled_nats, "list", "--component", "projector").stdout.strip() == (
        "no faults"
    )
    history = {f["id"]: f["resolution"] for f in open_faults(controlled_nats, "--all")}
    assert history == {fault["id"]: "resubmitted", junk["id"]: "dropped"}
    projector_faults = [f for f in controlled_nats.faults() if f["component"] == "projector"]
    assert [f["seq"] for f in projector_faults] == [bad_seq, junk_seq]  # none after the fix

    # Friendly errors.
    unknown = outpost(controlled_nats, "drop", "9999")
    assert unknown.returncode == 1 and "no fault 9999" in unknown.stderr
    again = outpost(controlled_nats, "resubmit", str(junk["id"]))
    assert again.returncode == 1 and "already dropped" in again.stderr
    nothing = outpost(controlled_nats, "resubmit", "--all", "--component", "projector")
    assert nothing.returncode == 0 and "no open faults" in nothing.stdout
