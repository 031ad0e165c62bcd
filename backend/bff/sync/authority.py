"""Who may write what: authorization of pushed events against everything accepted before.

``Authority`` holds, for the boards and entities of one batch, the state folded from every
accepted event (with the same merge rules as everywhere, so a late MemberAdded with an
older hlc does not undo a newer MemberRemoved). ``decide`` says whether an event may be
accepted; ``accept`` folds it in, so later events of the same batch see it. No I/O: the
push service loads the state under the boards' locks and stores what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol import CATALOG, Event, Reason, merge, parse_hlc
from protocol.catalog import (
    BoardCreated,
    BoardUpdated,
    CommentAdded,
    CommentDeleted,
    MemberAdded,
    MemberRemoved,
)
from protocol.merge import EntityState

OWNER_ONLY = (BoardUpdated, MemberAdded, MemberRemoved)


@dataclass(frozen=True)
class Binding:
    board: str
    kind: str
    author: str | None = None


@dataclass(frozen=True)
class Denial:
    reason: Reason
    detail: str


@dataclass
class Authority:
    """The authorization state of the boards, entities and devices one batch touches."""

    boards: dict[str, EntityState] = field(default_factory=dict)
    members: dict[tuple[str, str], EntityState] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    """device id -> username, for the devices named in the batch that are bound."""
    known_users: set[str] = field(default_factory=set)
    changed_boards: set[str] = field(default_factory=set)
    changed_members: set[tuple[str, str]] = field(default_factory=set)
    new_bindings: set[str] = field(default_factory=set)
    new_devices: set[str] = field(default_factory=set)

    def check_device(self, device: str, username: str) -> Denial | None:
        owner = self.devices.get(device)
        if owner is not None and owner != username:
            return Denial(Reason.FORBIDDEN, f"device {device!r} belongs to another user")
        return None

    def claim_device(self, device: str, username: str) -> None:
        """A device id belongs to the first user who pushes it."""
        if device not in self.devices:
            self.devices[device] = username
            self.new_devices.add(device)

    def decide(self, event: Event, username: str, *, by_device: bool = True) -> Denial | None:
        """Why ``username`` may not write ``event`` now, or None if it may. The backend
        writing on a user's behalf (``by_device`` False) uses no device of theirs."""
        for device in _devices_of(event) if by_device else ():
            denial = self.check_device(device, username)
            if denial:
                return denial
        denial = self._check_entity(event)
        if denial:
            return denial
        board = self.boards.get(event.board)
        if isinstance(event.payload, BoardCreated):
            if board is not None or event.board in self.bindings:
                return Denial(Reason.FORBIDDEN, f"board {event.board} already exists")
            return None
        if board is None or not merge.is_active_member(self.members.get((event.board, username))):
            return Denial(Reason.FORBIDDEN, f"board {event.board} is not shared with you")
        owner = board.value("owner")
        if isinstance(event.payload, OWNER_ONLY) and username != owner:
            return Denial(Reason.FORBIDDEN, f"only the board's owner may send {event.type}")
        if board.value("archived") and not isinstance(event.payload, BoardUpdated):
            return Denial(Reason.ARCHIVED, "the board is archived: only its owner may change it")
        return self._check_payload(event, username, owner)

    def accept(self, event: Event, username: str, *, by_device: bool = True) -> None:
        """Fold an accepted event into the state later events are decided against (and
        claim its devices, unless the backend wrote it: ``by_device`` False)."""
        for device in _devices_of(event) if by_device else ():
            self.claim_device(device, username)
        for key in merge.keys_of(event):
            if key.kind == "board":
                current = self.boards.get(key.id) or merge.new_state(key, event.board)
                self.boards[key.id] = merge.apply(current, event)
                self.changed_boards.add(key.id)
            elif key.kind == "member":
                member = (event.board, key.id.partition("/")[2])
                current = self.members.get(member) or merge.new_state(key, event.board)
                self.members[member] = merge.apply(current, event)
                self.changed_members.add(member)
        if event.entity not in self.bindings:
            author = username if isinstance(event.payload, CommentAdded) else None
            self.bindings[event.entity] = Binding(event.board, _kind_of(event), author)
            self.new_bindings.add(event.entity)

    def _check_entity(self, event: Event) -> Denial | None:
        binding = self.bindings.get(event.entity)
        if binding is None:
            return None
        if binding.board != event.board or binding.kind != _kind_of(event):
            return Denial(Reason.FORBIDDEN, f"entity {event.entity} belongs to another board")
        return None

    def _check_payload(self, event: Event, username: str, owner: str | None) -> Denial | None:
        payload = event.payload
        if isinstance(payload, MemberRemoved) and payload.username == owner:
            return Denial(Reason.FORBIDDEN, "the board's owner cannot be removed")
        if isinstance(payload, MemberAdded) and payload.username not in self.known_users:
            return Denial(Reason.INVALID, f"payload.username: no user named {payload.username!r}")
        if isinstance(payload, CommentAdded):
            task = self.bindings.get(payload.task)
            if task is None or task.board != event.board or task.kind != "task":
                return Denial(Reason.FORBIDDEN, f"task {payload.task} is not on this board")
        if isinstance(payload, CommentDeleted):
            comment = self.bindings.get(event.entity)
            if comment is None:
                return Denial(Reason.FORBIDDEN, f"comment {event.entity} does not exist")
            if username not in (comment.author, owner):
                return Denial(
                    Reason.FORBIDDEN, "only the comment's author or the board's owner may delete it"
                )
        return None


def _kind_of(event: Event) -> str:
    return CATALOG[event.type].entity


def _devices_of(event: Event) -> set[str]:
    return {event.device, parse_hlc(event.hlc).node}
