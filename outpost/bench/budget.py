"""The latency budget: where one action's time goes, hop by hop, from A's tap to B's view.

Each propagated action gets a chain of timestamps, all on ``time.monotonic_ns()`` (one clock
for every process of the machine): the bench takes A's side and B's side itself (the write,
the push request leaving A through an httpx hook, the poke reaching B, B's pull leaving and
answered, B's view showing the edit), and the backend marks its own stages in the hop trace
(``backend/hops.py``: push received, decided, stored, the projector's fetch and commit, the
change notice, the poke written). A hop is the time between two consecutive stamps, so the
hops of an action add up to its whole latency exactly. A stamp that was never seen (B pulled
the edit on an earlier poke, say) takes its predecessor's time, and the time it hides goes
to the next hop: that share is reported as unattributed.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOPS: tuple[tuple[str, str], ...] = (
    ("device write", "A's action until its event is in A's outbox (fsynced)"),
    ("A's wake-up", "the outbox until A's push request leaves"),
    ("push request", "the request until the push service has it decoded"),
    ("decision commit", "validation, authority, the id records' transaction"),
    ("stream acknowledgement", "publish until JetStream's acknowledgement"),
    ("projector's wait", "the acknowledgement until the projector's fetch returns it"),
    ("projector commit", "apply, views and position in one transaction"),
    ("change notice", "the commit until the BFF hears the notice"),
    ("poke written", "the notice until the BFF writes the poke or the page of changes"),
    ("poke delivered", "the poke or page written until B reads it"),
    ("B's wake-up", "the poke until B's pull request leaves (none for a page)"),
    ("pull", "B's pull request until its answer's headers arrive (none for a page)"),
    ("apply on B", "the answer read, merged and committed, until B's view shows it"),
)

_BACKEND_BY_ID = ("push.received", "push.decided")


@dataclass
class ClientStamps:
    """What the bench's devices saw, on ``time.monotonic_ns()``."""

    pushes_sent: dict[str, int] = field(default_factory=dict)
    """event id -> when the first push request carrying it left A."""
    pokes: list[int] = field(default_factory=list)
    pulls_sent: list[int] = field(default_factory=list)
    pulls_answered: list[int] = field(default_factory=list)

    def arrived(self, event: str, stamp: int) -> None:
        """A live message reached B: a poke, or a page of changes (which is the pull, so
        B's wake-up and pull take no time)."""
        self.pokes.append(stamp)
        if event == "changes":
            self.pulls_sent.append(stamp)
            self.pulls_answered.append(stamp)


@dataclass
class Action:
    event_id: str
    made: int
    written: int
    shown: int


@dataclass
class _Trace:
    by_id: dict[str, dict[str, int]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    by_watermark: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def read_trace(path: Path) -> _Trace:
    trace = _Trace()
    if not path.exists():
        return trace
    for line in path.read_text(encoding="utf-8").splitlines():
        hop, _, rest = line.partition("\t")
        stamp_text, _, keys = rest.partition("\t")
        try:
            stamp = int(stamp_text)
        except ValueError:
            continue  # a line cut by a process that died mid-write
        if hop in ("bff.notice", "bff.poke"):
            trace.by_watermark.setdefault(hop, []).append((stamp, int(keys or 0)))
            continue
        for key in keys.split(","):
            if not key:
                continue
            event_id, _, seq = key.partition("@")
            trace.by_id.setdefault(event_id, {}).setdefault(hop, stamp)
            if seq:
                trace.seqs.setdefault(event_id, int(seq))
    for marks in trace.by_watermark.values():
        marks.sort()
    return trace


@dataclass
class Budget:
    """Hop durations (ms) of every action that has a chain, and what could not be named."""

    samples: list[list[float]] = field(default_factory=list)
    unattributed_ms: float = 0.0
    actions: int = 0
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    """CPU time per action of each process on the path (``backend``, ``nats-server``, the
    ``devices``' bench process), one value per run: a figure the machine's load leaves
    nearly untouched, where latencies on a busy machine are mostly waiting."""

    def extend(self, other: Budget) -> None:
        self.samples += other.samples
        self.unattributed_ms += other.unattributed_ms
        self.actions += other.actions
        for process, values in other.cpu_ms.items():
            self.cpu_ms.setdefault(process, []).extend(values)

    def to_json(self) -> dict[str, Any]:
        totals = [sum(sample) for sample in self.samples]
        whole = sum(totals)
        hops = []
        for index, (name, what) in enumerate(HOPS):
            values = [sample[index] for sample in self.samples]
            hops.append(
                {
                    "name": name,
                    "what": what,
                    "p50": _percentile(values, 50),
                    "p99": _percentile(values, 99),
                    "mean": statistics.fmean(values) if values else None,
                    "share": sum(values) / whole if whole else None,
                }
            )
        return {
            "actions": self.actions,
            "traced": len(self.samples),
            "hops": hops,
            "total": {
                "p50": _percentile(totals, 50),
                "p99": _percentile(totals, 99),
                "mean": statistics.fmean(totals) if totals else None,
            },
            "unattributed_share": self.unattributed_ms / whole if whole else None,
            "cpu_ms_per_action": {
                process: statistics.median(values) for process, values in self.cpu_ms.items()
            },
        }


def measure(actions: Sequence[Action], client: ClientStamps, trace_path: Path) -> Budget:
    trace = read_trace(trace_path)
    budget = Budget(actions=len(actions))
    for action in actions:
        chain = _chain(action, client, trace)
        if chain is None:
            continue
        stamps, missing = chain
        hops_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(stamps)]
        budget.samples.append(hops_ms)
        budget.unattributed_ms += sum(hops_ms[i + 1] for i in missing if i + 1 < len(hops_ms))
    return budget


def _chain(
    action: Action, client: ClientStamps, trace: _Trace
) -> tuple[list[int], list[int]] | None:
    """The action's stamps (one more than ``HOPS``) and the hops whose end went unseen."""
    marks = trace.by_id.get(action.event_id, {})
    seq = trace.seqs.get(action.event_id)
    if seq is None:
        return None  # not stored by this backend (the trace was off): no chain at all
    raw: list[int | None] = [
        action.made,
        action.written,
        client.pushes_sent.get(action.event_id),
        *(marks.get(hop) for hop in _BACKEND_BY_ID),
        marks.get("push.stored"),
        marks.get("projector.received"),
        marks.get("projector.committed"),
    ]
    after = raw[-1] or action.written
    notice = _first_watermark(trace.by_watermark.get("bff.notice", []), seq, after)
    poke = _first_watermark(trace.by_watermark.get("bff.poke", []), seq, notice or after)
    poke_read = _first_after(client.pokes, poke or notice or after, action.shown)
    answered = _last_before(client.pulls_answered, action.shown)
    pull_sent = _last_before(client.pulls_sent, answered) if answered is not None else None
    raw += [notice, poke, poke_read, pull_sent, answered, action.shown]
    stamps: list[int] = []
    missing: list[int] = []
    for index, stamp in enumerate(raw):
        previous = stamps[-1] if stamps else stamp
        if stamp is None:
            missing.append(index - 1)
            stamps.append(previous if previous is not None else action.made)
            continue
        stamps.append(min(max(stamp, previous if previous is not None else stamp), action.shown))
    return stamps, missing


def _first_watermark(marks: list[tuple[int, int]], seq: int, after: int) -> int | None:
    start = bisect.bisect_left(marks, (after, -1))
    for stamp, watermark in marks[start:]:
        if watermark >= seq:
            return stamp
    return None


def _first_after(stamps: list[int], after: int, before: int) -> int | None:
    index = bisect.bisect_left(stamps, after)
    if index < len(stamps) and stamps[index] <= before:
        return stamps[index]
    return None


def _last_before(stamps: list[int], before: int) -> int | None:
    index = bisect.bisect_right(stamps, before)
    return stamps[index - 1] if index else None


def _percentile(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def markdown(title: str, budget: dict[str, Any]) -> list[str]:
    """The budget as a table under the results: p50, p99, mean and share of each hop."""
    total = budget["total"]
    lines = [
        "",
        f"{title}: latency budget, {budget['traced']} of {budget['actions']} actions traced "
        "(hops of one action add up to its whole time; p50/p99 of each hop are its own)",
        "",
        "| hop | what | p50 ms | p99 ms | mean ms | share |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for hop in budget["hops"]:
        lines.append(
            f"| {hop['name']} | {hop['what']} | {_ms(hop['p50'])} | {_ms(hop['p99'])} | "
            f"{_ms(hop['mean'])} | {_share(hop['share'])} |"
        )
    lines.append(
        f"| **total** | A's action to B's view | {_ms(total['p50'])} | {_ms(total['p99'])} | "
        f"{_ms(total['mean'])} | 100% |"
    )
    lines.append("")
    lines.append(
        f"unattributed (a stamp not seen, its time in the next hop): "
        f"{_share(budget['unattributed_share'])} of the total"
    )
    cpu = budget.get("cpu_ms_per_action") or {}
    if cpu:
        lines.append(
            "CPU time per action (ms, user + system; waiting is not counted): "
            + ", ".join(f"{process} {value:.2f}" for process, value in cpu.items())
        )
    return lines


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"
