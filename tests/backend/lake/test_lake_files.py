"""The lake component on its own: files, index, epochs and crash leftovers, no NATS."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backend.config import Settings
from backend.lake import files as lakefiles
from backend.lake import tools
from protocol import new_id
from tests.backend.lake.harness import HOUR_MS, T0, Harness, poison, raw_file_lines, record, run


@pytest.fixture
def harness(tmp_path: Path) -> Any:
    h = Harness(tmp_path)
    yield h
    h.close()


def test_messages_go_to_utc_hour_partitions_and_come_back_in_order(harness: Harness) -> None:
    board = new_id()
    records = [record(seq, board, T0 + HOUR_MS - 2 + seq) for seq in range(1, 6)]
    harness.batch(records[:3])
    harness.batch(records[3:])
    root = harness.data / "lake"
    paths = list(lakefiles.lake_files(root))
    assert paths == [
        "date=2025-11-26/hour=06/e0001-000000000001.jsonl.gz",
        "date=2025-11-26/hour=07/e0001-000000000002.jsonl.gz",
    ]
    entries = harness.run(tools.load_files(harness.db))
    lines = list(tools.ordered_lines(root, entries))
    assert [line.seq for line in lines] == [1, 2, 3, 4, 5]
    assert [line.data for line in lines] == [r.data for r in records]
    rows = harness.index()
    assert [r.event_id for r in rows] == [r.event.id for r in records if r.event]
    for row in rows:  # the index points straight at the line
        line = lakefiles.read_member_line(root / row.path, row.offset, row.line)
        assert line.seq == row.seq and row.board == board


def test_unreadable_bytes_are_kept_exactly(harness: Harness) -> None:
    harness.batch([poison(1, T0), record(2, new_id(), T0)])
    [line, _] = raw_file_lines(harness.data / "lake")
    assert line.data == b"\xff\x00 not\njson"
    assert harness.index()[0].event_id is None


def test_a_batch_that_did_not_commit_leaves_nothing_behind(harness: Harness) -> None:
    board = new_id()
    first = [record(seq, board, T0 + seq) for seq in range(1, 4)]
    harness.batch(first)
    lost = [record(seq, board, T0 + seq) for seq in range(4, 8)]
    harness.batch(lost, crash=True)  # its bytes are in the file, not in the database
    harness.batch([record(8, board, T0 + HOUR_MS)], crash=True)  # a file of its own
    root = harness.data / "lake"
    assert len(raw_file_lines(root)) == 3 + 4 + 1
    entries = harness.run(tools.load_files(harness.db))
    assert [line.seq for line in tools.ordered_lines(root, entries)] == [1, 2, 3]
    harness.restart()  # prepare cuts the tail and removes the stray file
    assert [line.seq for line in raw_file_lines(root)] == [1, 2, 3]
    harness.batch(lost)  # the redelivery
    seqs = [line.seq for line in raw_file_lines(root)]
    assert seqs == [1, 2, 3, 4, 5, 6, 7]
    assert [r.seq for r in harness.index()] == seqs


def test_a_crash_then_a_write_without_restart_cuts_the_tail_first(harness: Harness) -> None:
    board = new_id()
    harness.batch([record(1, board, T0)])
    again = [record(2, board, T0)]
    harness.batch(again, crash=True)
    harness.batch(again)
    assert [line.seq for line in raw_file_lines(harness.data / "lake")] == [1, 2]


def test_a_new_epoch_keeps_the_archive_and_skips_ids_it_has(harness: Harness) -> None:
    board = new_id()
    old = [record(seq, board, T0 + seq) for seq in range(1, 4)]
    harness.batch(old)
    harness.start_over()
    again = record(1, board, T0 + 10, event_id=old[0].event.id if old[0].event else None)
    harness.batch([again, record(2, board, T0 + 11)])
    rows = harness.index()
    assert [(r.epoch, r.seq) for r in rows] == [(1, 1), (1, 2), (1, 3), (2, 2)]
    root = harness.data / "lake"
    assert len(list(lakefiles.lake_files(root))) == 2  # files are per epoch
    lines = list(tools.ordered_lines(root, harness.run(tools.load_files(harness.db))))
    assert [(line.epoch, line.seq) for line in lines] == [(1, 1), (1, 2), (1, 3), (2, 2)]


def test_files_roll_over_at_their_size_limit(tmp_path: Path) -> None:
    harness = Harness(tmp_path, max_file_bytes=1)
    try:
        board = new_id()
        for seq in range(1, 4):
            harness.batch([record(seq, board, T0 + seq)])
        assert len(list(lakefiles.lake_files(tmp_path / "lake"))) == 3
    finally:
        harness.close()


def test_export_filters_by_board_and_date(harness: Harness) -> None:
    a, b = new_id(), new_id()
    harness.batch([record(1, a, T0), record(2, b, T0), poison(3, T0)])
    harness.batch([record(4, a, T0 + 24 * HOUR_MS)])  # the next day
    settings = Settings(data_dir=harness.data)

    def export(**filters: Any) -> list[dict[str, Any]]:
        out = io.BytesIO()
        run(tools.export(settings, out, **filters))
        return [msgspec.json.decode(line) for line in out.getvalue().splitlines()]

    every = export()
    assert [row["seq"] for row in every] == [1, 2, 3, 4]
    assert every[0]["event"]["board"] == a and every[0]["epoch"] == 1
    assert "event" not in every[2] and every[2]["data_b64"]
    assert [row["seq"] for row in export(board=a)] == [1, 4]
    assert [row["seq"] for row in export(since="2025-11-27")] == [4]
    assert export(since="2025-11-28") == []
    report = run(tools.status(settings))
    assert (report.messages, report.unreadable, report.files, report.position) == (4, 1, 2, 4)


@pytest.mark.parametrize("text", ["2025-13-01", "yesterday", "20251126", ""])
def test_bad_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="use YYYY-MM-DD"):
        tools.parse_date(text)
