"""The outbox has one home: ``client/store/outbox.py`` holds every statement on its table."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import client
from client.store.database import Store
from client.store.outbox import KEEP_SENT_MS, Outbox

CLIENT = Path(client.__file__).parent
HOME = {CLIENT / "store" / "outbox.py", CLIENT / "store" / "migrations.py"}
"""The outbox's statements, and the schema that creates its table."""
_TOUCHES_OUTBOX = re.compile(r"\b(FROM|INTO|UPDATE|JOIN|TABLE)\s+outbox\b", re.IGNORECASE)


def statements_on_outbox(source: str) -> list[str]:
    """SQL on the outbox in the string literals of ``source`` (comments do not count)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    strings = [t.string for t in tokens if t.type == tokenize.STRING]
    return [m.group(0) for text in strings for m in _TOUCHES_OUTBOX.finditer(text)]


def test_the_detector_finds_sql_on_the_outbox() -> None:
    assert statements_on_outbox('conn.execute("SELECT body FROM outbox ORDER BY position")')
    assert statements_on_outbox("'UPDATE outbox SET seq = NULL'")
    assert statements_on_outbox('"DELETE FROM  outbox WHERE id = ?"')
    assert statements_on_outbox('f"SELECT body FROM outbox WHERE board IN ({marks})"')
    assert not statements_on_outbox("Outbox(conn).count()  # read from outbox.py")


def test_no_sql_on_the_outbox_outside_its_module() -> None:
    found = {
        str(path.relative_to(CLIENT)): hits
        for path in sorted(CLIENT.rglob("*.py"))
        if path not in HOME and (hits := statements_on_outbox(path.read_text()))
    }
    assert found == {}


def test_an_event_goes_from_unsent_to_sent_to_reflected(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.write() as conn:
        outbox = Outbox(conn)
        outbox.append("e1", "b1", b'{"n":1}')
        outbox.append("e2", "b2", b'{"n":2}')
        outbox.mark_sent("e1", 7)
    with store.read() as conn:
        outbox = Outbox(conn)
        assert outbox.unsent() == [("e2", b'{"n":2}')]
        assert outbox.reflected(6) == []
        assert outbox.reflected(7) == [("e1", b'{"n":1}')]
        assert (outbox.count(), outbox.boards()) == (2, {"b1", "b2"})
    with store.write() as conn:
        outbox = Outbox(conn)
        assert outbox.take("e2") == ("b2", b'{"n":2}')
        assert outbox.take("e2") is None
        outbox.resend_all()
        assert outbox.unsent() == [("e1", b'{"n":1}')]
    store.close()


def test_a_reflected_event_is_kept_a_while_and_comes_back_first_after_a_reset(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    day = 24 * 3600 * 1000
    with store.write() as conn:
        outbox = Outbox(conn)
        for n in range(1, 5):
            outbox.append(f"e{n}", "b1", b'{"n":%d}' % n)
        outbox.mark_sent("e1", 1)
        outbox.mark_sent("e2", 2)
        outbox.mark_sent("e3", 3)
        outbox.settle(1, now_ms=1 * day)
        outbox.settle(2, now_ms=2 * day)
        assert (outbox.count(), outbox.kept_count()) == (2, 2)
        # e1 is older than the time kept when e3 settles: it goes
        outbox.settle(3, now_ms=1 * day + KEEP_SENT_MS + 1)
        assert (outbox.count(), outbox.kept_count()) == (1, 2)
        outbox.resend_all()
        # what was reflected first, in the order made, then what is pending; nothing has a seq
        assert outbox.unsent() == [
            ("e2", b'{"n":2}'),
            ("e3", b'{"n":3}'),
            ("e4", b'{"n":4}'),
        ]
        outbox.resend_all()  # twice changes nothing
        assert [event_id for event_id, _ in outbox.unsent()] == ["e2", "e3", "e4"]
        outbox.drop_board("b1")
        assert (outbox.count(), outbox.kept_count()) == (0, 0)


def test_a_rejected_event_is_not_kept_for_a_reset(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.write() as conn:
        outbox = Outbox(conn)
        outbox.append("e1", "b1", b"{}")
        outbox.mark_sent("e1", 1)
        assert outbox.take("e1") == ("b1", b"{}")
        outbox.settle(1)  # not in the outbox any more: nothing to keep
        assert (outbox.count(), outbox.kept_count()) == (0, 0)
        outbox.resend_all()
        assert outbox.unsent() == []


def test_a_watermark_settles_every_event_it_covers_at_once_in_the_order_made(
    tmp_path: Path,
) -> None:
    """Stored out of order (two pushes, or a resend): what the watermark covers leaves,
    whatever its place; an unsent event never does."""
    store = Store(tmp_path)
    with store.write() as conn:
        outbox = Outbox(conn)
        for n in range(1, 6):
            outbox.append(f"e{n}", "b1", b'{"n":%d}' % n)
        for event_id, seq in (("e1", 9), ("e2", 4), ("e3", 6), ("e5", 5)):
            outbox.mark_sent(event_id, seq)
        outbox.settle(6)
        assert [event_id for event_id, _ in outbox.reflected(100)] == ["e1"]
        assert outbox.unsent() == [("e4", b'{"n":4}')]
        outbox.settle(100)
        assert (outbox.count(), outbox.kept_count()) == (1, 4)
        outbox.resend_all()
        # the first settle's in the order made, then the second's; then what is pending
        assert [event_id for event_id, _ in outbox.unsent()] == ["e2", "e3", "e5", "e1", "e4"]
    store.close()
