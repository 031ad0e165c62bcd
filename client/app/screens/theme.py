"""The look, as Kivy properties: ``theme`` holds the colours of the scheme on screen, and
the kv rules bind to them (``color: theme.ink``), so ``theme.apply("dark")`` repaints every
widget at once. The tokens themselves live in ``client/app/look.py`` (no Kivy there).

``theme.kv`` restyles Kivy's own widgets for every screen: no stock button, spinner,
toggle or text-input background image is left; our kv rules draw them with canvas
instructions in the theme's colours. ``Iconic`` gives a widget an icon from the shipped
icon font, drawn beside its text.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

from typing import Any

from kivy.core.text import Label as CoreLabel  # type: ignore[import-untyped]
from kivy.core.text import LabelBase
from kivy.event import EventDispatcher  # type: ignore[import-untyped]
from kivy.lang import global_idmap  # type: ignore[import-untyped]
from kivy.metrics import sp  # type: ignore[import-untyped]
from kivy.properties import (  # type: ignore[import-untyped]
    ColorProperty,
    ObjectProperty,
    OptionProperty,
    StringProperty,
)

from client.app.look import (
    ICON_FONT,
    ICON_FONT_NAME,
    ICONS,
    LIGHT,
    PALETTES,
    Colour,
    Scheme,
    chip_colours,
)

from .base import load_kv

LabelBase.register(name=ICON_FONT_NAME, fn_regular=str(ICON_FONT))


class Theme(EventDispatcher):
    """The colours on screen, one property per role of ``look.LIGHT``."""

    scheme = OptionProperty("light", options=["light", "dark"])
    background = ColorProperty(LIGHT["background"])
    surface = ColorProperty(LIGHT["surface"])
    card = ColorProperty(LIGHT["card"])
    selected = ColorProperty(LIGHT["selected"])
    ink = ColorProperty(LIGHT["ink"])
    muted = ColorProperty(LIGHT["muted"])
    outline = ColorProperty(LIGHT["outline"])
    accent = ColorProperty(LIGHT["accent"])
    accent_ink = ColorProperty(LIGHT["accent_ink"])
    button = ColorProperty(LIGHT["button"])
    button_down = ColorProperty(LIGHT["button_down"])
    danger = ColorProperty(LIGHT["danger"])
    warning = ColorProperty(LIGHT["warning"])
    success = ColorProperty(LIGHT["success"])
    notice = ColorProperty(LIGHT["notice"])
    shadow = ColorProperty(LIGHT["shadow"])
    muted_hex = StringProperty("")
    """``muted`` as markup wants it (``[color=...]``)."""
    menu_down = ObjectProperty(None, allownone=True)
    """A spinner's arrow (made once a window exists: a texture needs one)."""

    def apply(self, scheme: Scheme) -> None:
        for role, colour in PALETTES[scheme].items():
            setattr(self, role, colour)
        self.muted_hex = self.ink_hex("muted")
        if self.menu_down is None:
            self.menu_down = icon_texture("menu-down")
        self.scheme = scheme  # last: whatever binds to it sees the new colours

    def chip(self, label: str) -> tuple[Colour, Colour]:
        """A label chip's background and text colour in the scheme on screen."""
        return chip_colours(label, self.scheme)

    def ink_hex(self, role: str) -> str:
        """A colour as markup wants it (``[color=...]``)."""
        red, green, blue, _ = getattr(self, role)
        return "".join(f"{round(c * 255):02x}" for c in (red, green, blue))


theme = Theme()


def icon_texture(name: str, size_sp: float = 20) -> Any:
    """The glyph ``name`` (an MDI name from ``look.ICONS``) as a white texture; a Color
    before it tints it."""
    if not name:
        return None
    glyph = CoreLabel(text=ICONS[name], font_name=ICON_FONT_NAME, font_size=sp(size_sp))
    glyph.refresh()
    return glyph.texture


class Iconic(EventDispatcher):
    """A widget with an ``icon`` (an MDI name); the kv rule draws ``icon_texture``."""

    icon = StringProperty("")
    icon_texture = ObjectProperty(None, allownone=True)

    def on_icon(self, _widget: Any, name: str) -> None:
        self.icon_texture = icon_texture(name)


global_idmap["theme"] = theme  # for theme.kv, loaded while this module is still importing
load_kv(__file__)
