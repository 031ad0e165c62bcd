"""``outpost lake``: the data lake's status, replay and export.

- ``outpost lake status [--json]``: files, messages, size, stream epochs, position.
- ``outpost lake replay [--component C] [--from DATE]``: with the backend stopped, rebuild a
  component's database into a new generation from the lake (devices then get ``reset``).
- ``outpost lake export [--board ID] [--since DATE] [--out FILE]``: JSON lines for analysis.

Imports stay inside the handlers, so ``outpost app`` never loads the backend.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

_DESCRIPTION = (
    "The data lake archives every message of OUTPOST_EVENTS raw, exactly once, in gzip JSON "
    "lines under <data>/lake/date=YYYY-MM-DD/hour=HH/ (UTC stream time), indexed by event id "
    "and board in its own database. It runs as the `lake` stream consumer "
    "(`outpost backend consume --components lake`)."
)


def _date(text: str) -> str:
    from backend.lake.tools import parse_date

    try:
        return parse_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(parser: argparse.ArgumentParser, *, nats: bool = False) -> None:
    parser.add_argument("--data-dir", help="data folder (default: outpost-data)")
    parser.add_argument("--db-url", help="postgresql+asyncpg://... instead of SQLite files")
    if nats:
        parser.add_argument(
            "--nats-url", help="the backend's NATS (default: the embedded one of the data folder)"
        )


def add_parser(commands: Any) -> None:
    """Add ``outpost lake`` to the top-level subcommands (imports stay lazy)."""
    parser = commands.add_parser(
        "lake", help="the data lake: status, replay, export", description=_DESCRIPTION
    )
    actions = parser.add_subparsers(dest="lake_action", required=True, metavar="ACTION")

    status = actions.add_parser("status", help="files, messages, size and stream epochs")
    _common(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    replay = actions.add_parser(
        "replay",
        help="rebuild a component's database from the lake (backend stopped)",
        description="With the backend stopped: empty the component's database into a new "
        "generation, feed it every archived event in stream order, and set its position so "
        "that it continues from the live stream. Devices get `reset` on their next pull. "
        "While a process runs the component, it refuses before touching anything and names "
        "that process; it never starts a second nats-server on the data folder's store.",
    )
    _common(replay, nats=True)
    replay.add_argument(
        "--component", default="projector", help="the component to rebuild (default: projector)"
    )
    replay.add_argument(
        "--from",
        dest="since",
        type=_date,
        metavar="YYYY-MM-DD",
        help="replay only the partitions from this UTC date on; events before it are then "
        "missing from the rebuilt views",
    )
    replay.set_defaults(handler=_replay)

    export = actions.add_parser(
        "export",
        help="write the archive as JSON lines",
        description="One JSON object a line, in stream order: epoch, seq, subject, board, "
        "time_ms, and `event` (the message as stored, when JSON) or `data_b64`.",
    )
    _common(export)
    export.add_argument("--board", metavar="ID", help="only this board's events")
    export.add_argument(
        "--since", type=_date, metavar="YYYY-MM-DD", help="only partitions from this UTC date on"
    )
    export.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    export.set_defaults(handler=_export)


def _settings(args: argparse.Namespace) -> Any:
    from backend.config import Settings

    return Settings.from_env(
        data_dir=args.data_dir, db_url=args.db_url, nats_url=getattr(args, "nats_url", None)
    )


def _fail(message: str) -> int:
    print(f"outpost lake: {message}", file=sys.stderr)
    return 1


def _status(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from backend.lake import tools
    from backend.lake.errors import LakeError

    try:
        report = asyncio.run(tools.status(_settings(args)))
    except LakeError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(tools.status_dict(report), indent=2))
        return 0
    print(f"lake {report.folder}")
    print(
        f"  {report.messages} messages ({report.unreadable} unreadable) in {report.files} "
        f"files, {report.bytes / 1e6:.1f} MB compressed"
    )
    if report.first_date:
        print(f"  dates {report.first_date} .. {report.last_date}; position {report.position}")
    for epoch in report.epochs:
        seqs = f"seq {epoch.first_seq}..{epoch.last_seq}" if epoch.messages else "empty"
        created = f", stream made {epoch.stream_created}" if epoch.stream_created else ""
        print(f"  epoch {epoch.epoch}: {epoch.messages} messages, {seqs}{created}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from backend.lake import tools
    from backend.lake.errors import LakeError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        report = asyncio.run(
            tools.replay(_settings(args), args.component, since=args.since, progress=progress)
        )
    except LakeError as exc:
        return _fail(str(exc))
    print(
        f"{report.component}: {report.events} events replayed from the lake in "
        f"{report.seconds:.1f}s ({report.refused} refused, {report.unreadable} unreadable); "
        f"it continues from stream seq {report.position + 1} when the backend starts"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    import asyncio

    from backend.lake import tools
    from backend.lake.errors import LakeError

    settings = _settings(args)
    try:
        if args.out:
            with open(args.out, "wb") as out:
                count = asyncio.run(tools.export(settings, out, board=args.board, since=args.since))
        else:
            count = asyncio.run(
                tools.export(settings, sys.stdout.buffer, board=args.board, since=args.since)
            )
            sys.stdout.flush()
    except LakeError as exc:
        return _fail(str(exc))
    print(f"{count} messages exported", file=sys.stderr)
    return 0
