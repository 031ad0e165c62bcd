"""Who "me" is on this device: its user, or "(you)" before the profile has signed in."""

from __future__ import annotations

from typing import Any

from client.device import Device
from client.store.view import OWN_ACTOR

from ._validation import Refused


def me(device: Device) -> str:
    return device.username or OWN_ACTOR


def require_owner(device: Device, board: dict[str, Any] | None, doing: str) -> None:
    """Only a board's owner changes, shares or archives it (the backend would refuse)."""
    if board is not None and board["owner"] != me(device):
        raise Refused(f"Only the board's owner ({board['owner']}) can {doing}")


def require_open(board: dict[str, Any] | None) -> None:
    """An archived board takes no task changes (the backend would refuse them)."""
    if board is not None and board["archived"]:
        raise Refused("This board is archived: unarchive it to change its tasks")
