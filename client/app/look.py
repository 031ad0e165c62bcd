"""The app's look as data (no Kivy here): two palettes, one type scale, a 4/8 dp spacing
grid, the icons by name, the colour of a label's chip, and which scheme the system asks for.

``client/app/screens/theme.py`` turns these into Kivy properties the kv rules bind to, so a
switch of scheme repaints every screen at once.

Why a theme of our own rather than KivyMD 2.0: see the README's "The app". In short, the
board needs few widgets (buttons, fields, pickers, cards, chips, tabs), KivyMD would bring
four more packages (one compiled: ``materialyoucolor``) into the desktop bundle and the
Android build, its buttons are 40 dp high (we want 48), and our screens, the drag layer and
the end-to-end control are built on plain Kivy widgets with kv ids. We take its icon font:
Material Design Icons (SIL Open Font License 1.1), shipped as a subset of the glyphs we use
in ``client/app/fonts/``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Scheme = Literal["light", "dark"]
THEME_CHOICES = ("system", "light", "dark")
"""What a profile keeps: follow the system (until the switch is used), or one scheme."""

FONTS = Path(__file__).resolve().parent / "fonts"
ICON_FONT = FONTS / "materialdesignicons-subset.ttf"
ICON_FONT_NAME = "OutpostIcons"

Colour = tuple[float, float, float, float]


def hex_colour(code: str, alpha: float = 1.0) -> Colour:
    code = code.lstrip("#")
    red, green, blue = (int(code[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return (round(red, 4), round(green, 4), round(blue, 4), alpha)


# the palettes: one role per name, the same names in both

LIGHT: dict[str, Colour] = {
    "background": hex_colour("f4f5f7"),  # the window
    "surface": hex_colour("e9ebef"),  # columns, bars, panels
    "card": hex_colour("ffffff"),  # cards, fields, raised things
    "selected": hex_colour("dbe8fd"),  # a selected card or row
    "ink": hex_colour("172b4d"),  # text
    "muted": hex_colour("5b6778"),  # secondary text, hints
    "outline": hex_colour("c3c9d3"),  # field borders, dividers
    "accent": hex_colour("1f62d6"),  # primary buttons, focus, the chosen tab
    "accent_ink": hex_colour("ffffff"),
    "button": hex_colour("e1e5eb"),  # secondary buttons
    "button_down": hex_colour("c8d0db"),
    "danger": hex_colour("c4372c"),
    "warning": hex_colour("9a5200"),
    "success": hex_colour("1f7a4f"),
    "notice": hex_colour("fff3d6"),  # the notices panel
    "shadow": (0.05, 0.1, 0.2, 0.16),
}

DARK: dict[str, Colour] = {
    "background": hex_colour("16191d"),
    "surface": hex_colour("1f2328"),
    "card": hex_colour("2b3138"),
    "selected": hex_colour("23395c"),
    "ink": hex_colour("e3e7ec"),
    "muted": hex_colour("9aa6b4"),
    "outline": hex_colour("46505b"),
    "accent": hex_colour("5b9cff"),
    "accent_ink": hex_colour("0f1a2b"),
    "button": hex_colour("323a43"),
    "button_down": hex_colour("424c57"),
    "danger": hex_colour("f1776d"),
    "warning": hex_colour("f0b35a"),
    "success": hex_colour("5fce93"),
    "notice": hex_colour("3a3020"),
    "shadow": (0.0, 0.0, 0.0, 0.45),
}

PALETTES: dict[Scheme, dict[str, Colour]] = {"light": LIGHT, "dark": DARK}

# a label's chip: a hue picked from its name, so a label keeps its colour on every card
# and every device; (background, text) per scheme
CHIP_HUES: dict[Scheme, list[tuple[str, str]]] = {
    "light": [
        ("dbeafe", "1e3a8a"),  # blue
        ("dcfce7", "14532d"),  # green
        ("fef3c7", "78350f"),  # amber
        ("fce7f3", "831843"),  # pink
        ("ede9fe", "4c1d95"),  # violet
        ("ccfbf1", "134e4a"),  # teal
        ("ffedd5", "7c2d12"),  # orange
        ("e0e7ff", "312e81"),  # indigo
    ],
    "dark": [
        ("1e3a8a", "dbeafe"),
        ("14532d", "dcfce7"),
        ("713f12", "fef3c7"),
        ("831843", "fce7f3"),
        ("4c1d95", "ede9fe"),
        ("134e4a", "ccfbf1"),
        ("7c2d12", "ffedd5"),
        ("312e81", "e0e7ff"),
    ],
}


def chip_colours(label: str, scheme: Scheme) -> tuple[Colour, Colour]:
    """The chip's background and text colour for ``label`` (stable across runs: not
    Python's salted ``hash``)."""
    hues = CHIP_HUES[scheme]
    index = hashlib.blake2s(label.encode(), digest_size=2).digest()[0] % len(hues)
    background, text = hues[index]
    return hex_colour(background), hex_colour(text)


# one type scale (sp) and the spacing grid (dp): every size in the kv rules comes from here

TYPE_SCALE = {
    "title": 20,  # a screen's heading
    "heading": 16,  # a column's or a panel's title
    "body": 15,  # card titles, fields, buttons
    "label": 13,  # secondary lines, chips, the status bar
}
GRID = 4
"""Spacing is a multiple of 4 dp (mostly of 8)."""
TOUCH = 48
"""The least height and width of anything one taps (dp)."""
RADIUS = 8
ELEVATION = 2
"""A card's shadow: how far (dp) it falls below the card."""

ICONS = {
    "account": "\U000f0004",
    "account-plus": "\U000f0014",
    "account-switch": "\U000f0019",
    "alert-circle-outline": "\U000f05d6",
    "arrow-down": "\U000f0045",
    "arrow-left": "\U000f004d",
    "arrow-up": "\U000f005d",
    "calendar": "\U000f00ed",
    "calendar-today": "\U000f00f6",
    "check": "\U000f012c",
    "chevron-down": "\U000f0140",
    "chevron-left": "\U000f0141",
    "chevron-right": "\U000f0142",
    "chevron-up": "\U000f0143",
    "close": "\U000f0156",
    "cloud-check-outline": "\U000f1bec",
    "cloud-off-outline": "\U000f0164",
    "cloud-upload-outline": "\U000f0b7e",
    "comment-outline": "\U000f0182",
    "delete": "\U000f01b4",
    "delete-restore": "\U000f0819",
    "dots-vertical": "\U000f01d9",
    "eye-off": "\U000f0209",
    "filter-variant": "\U000f0236",
    "flag": "\U000f023b",
    "format-list-bulleted": "\U000f0279",
    "information-outline": "\U000f02fd",
    "login": "\U000f0342",
    "logout": "\U000f0343",
    "magnify": "\U000f0349",
    "menu": "\U000f035c",
    "menu-down": "\U000f035d",
    "note-text-outline": "\U000f11d7",
    "pencil": "\U000f03eb",
    "plus": "\U000f0415",
    "restore": "\U000f099b",
    "sync": "\U000f04e6",
    "tag": "\U000f04f9",
    "tag-multiple": "\U000f04fb",
    "theme-light-dark": "\U000f050e",
    "trash-can-outline": "\U000f0a7a",
    "undo": "\U000f054c",
    "view-column": "\U000f056d",
    "weather-night": "\U000f0594",
    "white-balance-sunny": "\U000f05a8",
}
"""The Material Design Icons glyphs in the shipped subset, by their MDI names."""


# the system's choice

PORTAL = (
    "gdbus",
    "call",
    "--session",
    "--timeout",
    "2",
    "--dest",
    "org.freedesktop.portal.Desktop",
    "--object-path",
    "/org/freedesktop/portal/desktop",
    "--method",
    "org.freedesktop.portal.Settings.Read",
    "org.freedesktop.appearance",
    "color-scheme",
)


def parse_portal_answer(answer: str) -> Scheme | None:
    """The portal answers ``(<<uint32 1>>,)``: 1 prefers dark, 2 prefers light, 0 has no
    preference (None: the caller's default)."""
    digits = [part for part in answer.replace(">", " ").replace(",", " ").split() if part.isdigit()]
    if not digits:
        return None
    return {"1": "dark", "2": "light"}.get(digits[-1])  # type: ignore[return-value]


def system_scheme() -> Scheme:
    """The scheme the desktop asks for: on Linux the freedesktop portal's colour scheme
    (through ``gdbus``, when there is one and it answers), else light."""
    gdbus = shutil.which("gdbus")
    if gdbus is None:
        return "light"
    try:
        done = subprocess.run(
            [gdbus, *PORTAL[1:]], capture_output=True, text=True, timeout=3, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("no colour scheme from the desktop portal (%s): light", exc)
        return "light"
    if done.returncode != 0:
        return "light"
    return parse_portal_answer(done.stdout) or "light"


def resolve_scheme(choice: str, system: Scheme | None = None) -> Scheme:
    """What to paint for the user's choice (``system``, ``light`` or ``dark``)."""
    if choice in ("light", "dark"):
        return choice  # type: ignore[return-value]
    return system if system is not None else system_scheme()


def toggled(painted: Scheme) -> Scheme:
    """The in-app switch: the other scheme than the one on screen (kept from then on)."""
    return "light" if painted == "dark" else "dark"
