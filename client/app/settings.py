"""Where the app keeps a profile, and what it remembers between runs (no Kivy here).

A profile is one folder: the device store that ``outpost client --data-dir`` opens too, and
``app.json`` beside it with the window size, the last board open, whether the user chose
to work offline, and the colour scheme they switched to. The store keeps the data; this
file keeps only how the app looked, so a lost or broken ``app.json`` costs nothing but the
window size.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from .look import THEME_CHOICES

log = logging.getLogger(__name__)

SETTINGS_FILE = "app.json"
DEFAULT_PROFILE = "default"
DEMO_PROFILE = "demo"
DEFAULT_WINDOW = (1100, 720)
MIN_WINDOW = (360, 480)


def default_profile_dir(profile: str = DEFAULT_PROFILE) -> Path:
    """``<the platform's user data folder>/outpost/<profile>``."""
    return Path(platformdirs.user_data_dir("outpost", appauthor=False)) / profile


@dataclass
class AppSettings:
    window_width: int = DEFAULT_WINDOW[0]
    window_height: int = DEFAULT_WINDOW[1]
    last_board: str | None = None
    offline_chosen: bool = False
    """The user chose "continue offline": open the boards, not the sign-in, next time."""
    theme: str = "system"
    """``system`` (the desktop's colour scheme), or the ``light``/``dark`` the user switched to."""
    active_profile: str | None = None
    """In the home profile: the folder (beside it) of the account switched to last, opened
    at the next start; None: the home profile itself."""

    def profile_folder(self, home: Path) -> Path:
        """The profile to open: the account used last, if its folder is still there."""
        name = self.active_profile
        if name and "/" not in name and "\\" not in name and (home.parent / name).is_dir():
            return home.parent / name
        return home

    @classmethod
    def load(cls, folder: Path) -> AppSettings:
        path = folder / SETTINGS_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s (%s): the defaults will do", path, exc)
            return cls()
        settings = cls()
        width, height = raw.get("window_width"), raw.get("window_height")
        if isinstance(width, int) and isinstance(height, int):
            settings.window_width = max(MIN_WINDOW[0], width)
            settings.window_height = max(MIN_WINDOW[1], height)
        if isinstance(raw.get("last_board"), str):
            settings.last_board = raw["last_board"]
        settings.offline_chosen = raw.get("offline_chosen") is True
        if raw.get("theme") in THEME_CHOICES:
            settings.theme = raw["theme"]
        if isinstance(raw.get("active_profile"), str):
            settings.active_profile = raw["active_profile"]
        return settings

    def save(self, folder: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SETTINGS_FILE
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("could not save %s: %s", path, exc)
