"""A quiet terminal: what the app prints, set up before Kivy is imported (no Kivy here).

Kivy logs through Python's ``logging`` (``KIVY_LOG_MODE=PYTHON``) to one handler on
stderr: warnings and errors only, unless ``--verbose`` (then everything, Kivy's and httpx's
debug lines included). Kivy's probes for optional Linux extras that this app does not use
fail loudly at every start (multitouch through libmtdev and friends, a middle-click cut
buffer through xclip or xsel): those records, and the one-time note that Kivy upgraded its
own config file, are dropped unless ``--verbose``. Anything else, tracebacks included, is
shown.
"""

from __future__ import annotations

import logging
import os
import sys

HARMLESS = (
    "Input: MTDev is not supported",
    "Input: ProbeSysfs is not supported",
    "Input: HIDInput is not supported",
    "Input: LinuxWacom is not supported",
    "Cutbuffer: Unable to find any valuable Cutbuffer provider",
    "Config: Older configuration version detected",
    "Config: Upgrading configuration in progress",
)
"""The starts of the records Kivy writes about optional extras the app does not need."""

CHATTY = ("kivy", "httpx", "httpcore")


class HarmlessNoise(logging.Filter):
    """Drops Kivy's records about optional extras (``HARMLESS``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(message.startswith(start) for start in HARMLESS)


def prepare_terminal(verbose: bool = False) -> None:
    """Call before the first Kivy import: Kivy's arguments are ours, its logs go through
    ``logging``, one stderr handler shows warnings and up (everything if ``verbose``)."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")  # the command line is ours, not Kivy's
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    level = logging.DEBUG if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(HarmlessNoise())
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "outpost_terminal", False)]
    handler.outpost_terminal = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(level)


def after_kivy_import(verbose: bool = False) -> None:
    """Kivy sets its logger's level from its config when imported: put ours back."""
    logging.getLogger("kivy").setLevel(logging.DEBUG if verbose else logging.WARNING)
