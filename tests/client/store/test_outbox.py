"""The outbox has one home: ``client/store/outbox.py`` holds every statement on its table."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import client
from client.store.database import Store
from client.store.outbox import Outbox

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
