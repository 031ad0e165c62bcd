"""The merge rules of SPEC section 5, used verbatim by the client and the backend.

The state of an entity is a fold of its events; ``apply`` adds one event, ``fold`` many,
``merge``/``merge_all`` join two states, and ``values``/``meta``/``from_change`` convert to
and from the change shape the pull contract carries; ``is_active_member`` says whether a
member is on its board. Per kind: ``board``, ``member``, ``task``, ``comment``.
"""

from protocol.merge.fold import (
    ChangeMeta,
    Meta,
    PulledChange,
    Stamp,
    Values,
    apply,
    as_change_meta,
    fold,
    from_change,
    keys_of,
    merge_all,
    meta,
    new_state,
    values,
)
from protocol.merge.member import is_active as is_active_member
from protocol.merge.member import member_id
from protocol.merge.state import EntityKey, EntityState, Register, merge

__all__ = [
    "ChangeMeta",
    "EntityKey",
    "EntityState",
    "Meta",
    "PulledChange",
    "Register",
    "Stamp",
    "Values",
    "apply",
    "as_change_meta",
    "fold",
    "from_change",
    "is_active_member",
    "keys_of",
    "member_id",
    "merge",
    "merge_all",
    "meta",
    "new_state",
    "values",
]
