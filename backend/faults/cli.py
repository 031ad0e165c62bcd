"""``outpost faults``: (being built)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    """Add ``outpost faults`` to the top-level subcommands (imports stay lazy)."""
    parser = commands.add_parser("faults", help="(being built)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return 2
