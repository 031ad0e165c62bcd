"""``outpost faults``: the messages stream consumers could not process, and what to do.

    outpost faults list [--component C] [--json] [--all]
    outpost faults resubmit <id>... | --all [--component C] [--data FILE]
    outpost faults drop <id>... | --all [--component C]

``resubmit`` sends the event (or the corrected body in FILE) back to the one component
that faulted it; ``drop`` gives up on it. Both hide the fault from ``list`` (``--all`` shows
it again, with what was done). NATS is reached like ``outpost backend`` does: ``--nats-url``,
else the nats-server running on the store under ``--data-dir`` (the backend's), else one
started there for the time of the command; never a second server on a store in use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.faults.stream import Fault


def add_parser(commands: Any) -> None:
    """Add ``outpost faults`` to the top-level subcommands (imports stay lazy)."""
    parser = commands.add_parser(
        "faults",
        help="list, resubmit or drop events the stream consumers could not process",
        description="The messages the stream consumers could not process: list them, send "
        "them back to their component (resubmit), or give up on them (drop).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", help="the backend's data folder (default: outpost-data)")
        sub.add_argument("--nats-url", help="the backend's NATS, when it is not embedded")
        sub.add_argument("--component", help="only this component's faults")

    listing = actions.add_parser("list", help="the open faults (all with --all)")
    common(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--all", action="store_true", help="resolved faults too")

    for name, summary in (
        ("resubmit", "send faulted events back to their component"),
        ("drop", "give up on faulted events"),
    ):
        sub = actions.add_parser(name, help=summary)
        common(sub)
        sub.add_argument("ids", nargs="*", type=int, metavar="ID", help="fault ids")
        sub.add_argument("--all", action="store_true", help="every open fault")
        if name == "resubmit":
            sub.add_argument(
                "--data", type=Path, metavar="FILE", help="a corrected message body to send"
            )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from backend.faults.stream import FaultsError

    if args.action in ("resubmit", "drop"):
        if bool(args.ids) == bool(args.all):
            print(f"outpost faults {args.action}: name fault ids, or --all", file=sys.stderr)
            return 2
        if getattr(args, "data", None) is not None and (args.all or len(args.ids) != 1):
            print("outpost faults resubmit: --data goes with exactly one fault id", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_main(args))
    except FaultsError as exc:
        print(f"outpost faults: {exc}", file=sys.stderr)
        return 1


async def _main(args: argparse.Namespace) -> int:
    from backend.config import Settings
    from backend.faults import stream
    from backend.nats.publisher import JetStreamPublisher

    settings = Settings.from_env(data_dir=args.data_dir, nats_url=args.nats_url)
    data: bytes | None = None
    if getattr(args, "data", None) is not None:
        try:
            data = args.data.read_bytes()
        except OSError as exc:
            raise stream.FaultsError(f"cannot read {args.data}: {exc.strerror or exc}") from exc
    async with stream.open_nats(settings.data_dir, settings.nats_url) as nc:
        js = nc.jetstream()
        publisher = JetStreamPublisher(nc)
        include_resolved = args.action == "list" and args.all
        faults = await stream.list_faults(
            js,
            component=args.component if args.action == "list" else None,
            include_resolved=include_resolved or args.action != "list",
        )
        if args.action == "list":
            _print_list(faults, as_json=args.json)
            return 0
        chosen = stream.select(faults, None if args.all else args.ids, component=args.component)
        if not chosen:
            which = f" of {args.component}" if args.component else ""
            print(f"no open faults{which}: nothing to {args.action}")
            return 0
        if args.action == "resubmit":
            done = await stream.resubmit(js, chosen, data=data, publisher=publisher)
            for fault, resolution in zip(chosen, done, strict=True):
                print(
                    f"fault {fault.id} resubmitted to {fault.event.component} "
                    f"(seq {fault.event.seq}, resubmission {resolution.resubmit_seq})"
                )
        else:
            await stream.drop(js, chosen, publisher=publisher)
            for fault in chosen:
                print(f"fault {fault.id} dropped ({fault.event.component}, seq {fault.event.seq})")
    return 0


def _print_list(faults: list[Fault], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([f.as_json() for f in faults], indent=2))
        return
    if not faults:
        print("no faults")
        return
    rows = [
        (
            str(f.id),
            f.event.component,
            str(f.event.seq),
            f.event.event_id or "-",
            str(f.event.deliveries),
            datetime.fromtimestamp(f.event.at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            f.resolution.action if f.resolution else "open",
            f.event.error,
        )
        for f in faults
    ]
    header = ("ID", "COMPONENT", "SEQ", "EVENT", "TRIES", "TIME (UTC)", "STATE", "ERROR")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
