"""The latency budget's arithmetic: an action's hops add up to its whole time, a stamp never
seen is reported as unattributed, and the backend's hop trace is read as it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import hops
from outpost.bench.budget import HOPS, Action, ClientStamps, measure, read_trace

MS = 1_000_000
EVENT = "0190f000-0000-7000-8000-000000000001"


def _trace(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _backend_lines(seq: int = 7) -> list[str]:
    return [
        f"push.received\t{3 * MS}\t{EVENT}",
        f"push.decided\t{5 * MS}\t{EVENT}",
        f"push.stored\t{6 * MS}\t{EVENT}@{seq}",
        f"projector.received\t{9 * MS}\tother,{EVENT}",
        f"projector.committed\t{12 * MS}\t{EVENT}",
        f"bff.notice\t{10 * MS}\t{seq}",  # an earlier commit's notice: before ours
        f"bff.notice\t{13 * MS}\t{seq}",
        f"bff.poke\t{14 * MS}\t{seq}",
    ]


def test_every_hop_is_timed_and_they_add_up_to_the_whole(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "hops.tsv", _backend_lines())
    client = ClientStamps(
        pushes_sent={EVENT: 2 * MS},
        pokes=[1 * MS, 15 * MS],
        pulls_sent=[16 * MS],
        pulls_answered=[18 * MS],
    )

    budget = measure([Action(EVENT, 0, 1 * MS, 20 * MS)], client, trace)

    [sample] = budget.samples
    assert len(sample) == len(HOPS)
    assert sample == pytest.approx([1, 1, 1, 2, 1, 3, 3, 1, 1, 1, 1, 2, 2])
    assert sum(sample) == pytest.approx(20)
    assert budget.unattributed_ms == 0
    doc = budget.to_json()
    assert doc["traced"] == doc["actions"] == 1
    assert doc["total"]["p50"] == pytest.approx(20)


def test_a_stamp_never_seen_is_unattributed_not_lost(tmp_path: Path) -> None:
    # The push request's departure went unseen: its time joins the next hop and is said
    # to be unattributed, and the hops still add up to the whole.
    trace = _trace(tmp_path / "hops.tsv", _backend_lines())
    client = ClientStamps(pokes=[15 * MS], pulls_sent=[16 * MS], pulls_answered=[18 * MS])

    budget = measure([Action(EVENT, 0, 1 * MS, 20 * MS)], client, trace)

    [sample] = budget.samples
    assert sum(sample) == pytest.approx(20)
    assert sample[1] == 0 and sample[2] == pytest.approx(2)  # wake-up unseen: in the request
    assert budget.unattributed_ms == pytest.approx(2)
    assert budget.to_json()["unattributed_share"] == pytest.approx(2 / 20)


def test_an_event_the_backend_never_stored_has_no_chain(tmp_path: Path) -> None:
    trace = _trace(tmp_path / "hops.tsv", [f"push.received\t{3 * MS}\t{EVENT}"])

    budget = measure([Action(EVENT, 0, MS, 5 * MS)], ClientStamps(), trace)

    assert budget.samples == [] and budget.to_json()["traced"] == 0


def test_the_trace_reads_what_the_backend_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hops.tsv"
    with path.open("a", buffering=1, encoding="utf-8") as sink:
        monkeypatch.setattr(hops, "_sink", sink)
        assert hops.enabled()
        hops.mark("push.stored", [f"{EVENT}@3"], at=42)
        hops.mark("bff.notice", [3], at=43)
    path.write_text(path.read_text() + "push.decided\tcut-by-a-crash")

    trace = read_trace(path)
    assert trace.by_id[EVENT] == {"push.stored": 42} and trace.seqs[EVENT] == 3
    assert trace.by_watermark["bff.notice"] == [(43, 3)]


def test_marks_cost_nothing_when_the_trace_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hops, "_sink", None)

    assert not hops.enabled()
    hops.mark("push.received", iter(()))  # no file, no error
