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


def _run(nice: int, idle: bool, *, new_session: bool) -> tuple[bool, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_REPORT), str(nice), "idle" if idle else "-"],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=new_session,
        cwd=Path(__file__).parents[2],
    )
    is_idle, priority, group = done.stdout.split()
    return is_idle == "True", int(priority), group


def _our_group() -> str:
    return Path("/proc/self/autogroup").read_text().split()[-1]


def test_a_session_leader_lowers_its_own_group_too() -> None:
    assert _run(10, False, new_session=True) == (False, max(10, os.nice(0)), "10")


def test_a_process_in_a_shared_session_leaves_the_group_alone() -> None:
    """Run from a shell (``outpost backend consume``), or as ``outpost backend``'s idle
    child, the group is the whole session's: a terminal's, or the BFF's."""
    before = _our_group()
    is_idle, priority, group = _run(10, True, new_session=False)
    assert is_idle
    assert priority == max(10, os.nice(0))
    assert group == before == _our_group()


def test_nothing_asked_changes_nothing() -> None:
    assert _run(0, False, new_session=True) == (False, os.nice(0), "0")
