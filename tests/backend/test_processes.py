"""``lower_priority``: how much a process of ours steps back for the BFF, and whose
scheduling group it may touch. Each case runs in a child of its own, since the priority
of a process can only be lowered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path("/proc/self/autogroup").exists(), reason="Linux with session groups (autogroup)"
    ),
]

_REPORT = """
import os, sys
from backend.processes import lower_priority
lower_priority(int(sys.argv[1]), idle=sys.argv[2] == "idle")
group = open("/proc/self/autogroup").read().split()[-1]
print(os.sched_getscheduler(0) == os.SCHED_IDLE, os.getpriority(os.PRIO_PROCESS, 0), group)
"""


_IN_A_SESSION = """
import subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True)
print(done.stdout.strip(), open("/proc/self/autogroup").read().split()[-1])
"""
"""Runs the report in a session led by this process, not the test runner's: a process
that renices the group of a session it does not lead changes that session for good."""


def _run(nice: int, idle: bool, *, leader: bool) -> tuple[bool, int, str, str]:
    """(idle, nice, its group's nice) of a process that lowered its priority, and its
    session leader's group's nice after."""
    report = [sys.executable, "-c", textwrap.dedent(_REPORT), str(nice), "idle" if idle else "-"]
    command = report if leader else [sys.executable, "-c", textwrap.dedent(_IN_A_SESSION), *report]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
        cwd=Path(__file__).parents[2],
    )
    fields = done.stdout.split()
    if leader:
        fields.append(fields[-1])  # the leader is the process itself
    is_idle, priority, group, leaders_group = fields
    return is_idle == "True", int(priority), group, leaders_group


def test_a_session_leader_lowers_its_own_group_too() -> None:
    assert _run(10, False, leader=True) == (False, max(10, os.nice(0)), "10", "10")


def test_a_process_in_a_shared_session_leaves_the_group_alone() -> None:
    """Run from a shell (``outpost backend consume``), or as ``outpost backend``'s idle
    child, the group is the whole session's: a terminal's, or the BFF's."""
    assert _run(10, True, leader=False) == (True, max(10, os.nice(0)), "0", "0")


def test_nothing_asked_changes_nothing() -> None:
    assert _run(0, False, leader=True) == (False, os.nice(0), "0", "0")
