"""Who owns a board, as the BFF's board authority says (folded from every accepted event).

The gateway and the orchestrator let only a board's owner configure them for it; they read
this one table of the BFF's database and write nothing there.
"""

from __future__ import annotations

import msgspec
from sqlalchemy import select

from backend.bff.models import BoardAuthority
from backend.db import Database
from protocol import is_uuid
from protocol.merge import EntityState

__all__ = ["board_owner"]

_state_decoder = msgspec.json.Decoder(EntityState)


async def board_owner(bff_db: Database, board: str) -> str | None:
    """The owner's username; None for a board the BFF does not know (or not a board id)."""
    if not is_uuid(board):
        return None
    async with bff_db.read() as conn:
        state = (
            await conn.execute(select(BoardAuthority.state).where(BoardAuthority.id == board))
        ).scalar()
    if state is None:
        return None
    owner = _state_decoder.decode(state).value("owner")
    return owner if isinstance(owner, str) else None
