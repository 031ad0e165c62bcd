"""Keyboard shortcuts: which key does what (no Kivy here; Kivy's key codes are plain ints).

With Ctrl: N new task (or board), F search, R sync now, S save, Q quit. F5 syncs too and
Escape goes back. While no text field has the focus, the arrow keys move the selected card,
Enter opens it and Delete deletes it (it can be restored).
"""

from __future__ import annotations

ESCAPE, ENTER, NUMPAD_ENTER, DELETE, F5 = 27, 13, 271, 127, 286
ARROWS = {276: "left", 275: "right", 273: "up", 274: "down"}
HELD = frozenset({"ctrl", "alt", "meta", "shift"})
WITH_CTRL = {"n": "new", "f": "search", "r": "sync", "s": "save", "q": "quit"}


def shortcut(key: int, modifiers: list[str], text_focused: bool) -> str | None:
    """The action a key press asks for, or None (the key is for whatever has the focus)."""
    ctrl = "ctrl" in modifiers or "meta" in modifiers
    if ctrl and 0 < key < 0x110000 and chr(key).lower() in WITH_CTRL:
        return WITH_CTRL[chr(key).lower()]
    if key == F5:
        return "sync"
    if key == ESCAPE:
        return "back"
    if text_focused or HELD & set(modifiers):  # numlock and capslock are not held keys
        return None
    if key in ARROWS:
        return ARROWS[key]
    if key in (ENTER, NUMPAD_ENTER):
        return "open"
    if key == DELETE:
        return "delete"
    return None
