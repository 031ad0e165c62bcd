"""The lake's own database: its position, its stream epochs, its files and its index.

``epochs``  one row per life of ``OUTPOST_EVENTS``: a stream deleted and made again starts
            its seqs at 1 again, so every archived message is named by (epoch, seq).
``files``   every lake file, with ``bytes``: the length of its committed prefix. Bytes past
            it were written by a batch that never committed; they are cut off before the
            file is written again and never read.
``archive`` the index: one row per archived message, from event id (unique; null for a
            message that is not a readable event) and board to the file, the offset of the
            gzip member that holds it and its line in the file.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table

from backend.consumers.component import positions_table
from backend.db import Key

metadata = MetaData()

positions = positions_table(metadata)

epochs = Table(
    "epochs",
    metadata,
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("started_at", BigInteger, nullable=False),
    # the stream's ``created`` time, when the lake could ask for it
    Column("stream_created", String(64), nullable=True),
)

files = Table(
    "files",
    metadata,
    # relative to the lake folder: date=YYYY-MM-DD/hour=HH/e0001-000000000001.jsonl.gz
    Column("path", Key(200), primary_key=True),
    Column("epoch", Integer, nullable=False),
    Column("date", String(10), nullable=False),
    Column("hour", Integer, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("lines", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),  # the committed length: valid up to here
)

archive = Table(
    "archive",
    metadata,
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Key(), nullable=True, unique=True),
    Column("board", Key(200), nullable=True),
    Column("path", Key(200), nullable=False),
    # where the gzip member holding the line starts (a reader seeks straight to it), and
    # the line's number in the whole file (0-based)
    Column("offset", BigInteger, nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("time_ms", BigInteger, nullable=False),
)

Index("ix_archive_board", archive.c.board, archive.c.epoch, archive.c.seq)
Index("ix_files_epoch", files.c.epoch, files.c.first_seq)
