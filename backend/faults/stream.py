"""The fault records on ``OUTPOST_FAULTS``: list, resubmit and drop them, as ``outpost
faults`` does, over NATS (no database: the stream is where faults live).

A fault's id is its sequence in ``OUTPOST_FAULTS``. Resubmitting publishes the event (or a
corrected body) to ``outpost.resubmit.<component>``, which only that component's runner
consumes, then records a ``Resolution`` on ``outpost.faults.<component>.resolved``; dropping
records only the resolution. Both are deduplicated by ``Nats-Msg-Id``, so running the same
command twice does nothing more. A resubmitted event that fails again becomes a new fault.

Resubmission bypasses the BFF (no authorization check): it is an operator's action.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.client import JetStreamContext

from backend.errors import BackendError
from backend.faults.events import (
    HEADER_FAULT_ID,
    HEADER_ORIGINAL_SEQ,
    HEADER_ORIGINAL_SUBJECT,
    FaultEvent,
    Resolution,
)
from backend.nats.publisher import JetStreamPublisher, Outgoing, Publisher
from backend.nats.streams import (
    FAULTS_STREAM,
    ensure_resubmit_stream,
    resolution_subject,
    resubmit_subject,
)

__all__ = ["Fault", "FaultsError", "drop", "list_faults", "open_nats", "resubmit", "select"]


_CONNECT_TIMEOUT_S = 5.0


class FaultsError(BackendError):
    """Something an operator should read: an unknown id, NATS unreachable..."""


@dataclass(frozen=True)
class Fault:
    id: int
    event: FaultEvent
    resolution: Resolution | None = None

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.event.data)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            **msgspec.to_builtins(self.event),
            "resolution": None if self.resolution is None else self.resolution.action,
        }


_fault_decoder = msgspec.json.Decoder(FaultEvent)
_resolution_decoder = msgspec.json.Decoder(Resolution)


async def list_faults(
    js: JetStreamContext, *, component: str | None = None, include_resolved: bool = False
) -> list[Fault]:
    """Every fault (of one component), oldest first; resolved ones only if asked."""
    try:
        info = await js.stream_info(FAULTS_STREAM)
    except nats.js.errors.NotFoundError:
        return []
    faults: dict[int, FaultEvent] = {}
    resolutions: dict[int, Resolution] = {}
    if info.state.messages:
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                message = await js.get_msg(FAULTS_STREAM, seq)
            except nats.js.errors.NotFoundError:
                continue  # deleted
            data = message.data or b""
            try:
                if (message.subject or "").endswith(".resolved"):
                    resolution = _resolution_decoder.decode(data)
                    resolutions.setdefault(resolution.fault, resolution)
                else:
                    faults[seq] = _fault_decoder.decode(data)
            except msgspec.DecodeError:
                continue  # not ours
    found = []
    for seq, event in faults.items():
        if component is not None and event.component != component:
            continue
        fault = Fault(seq, event, resolutions.get(seq))
        if include_resolved or fault.resolution is None:
            found.append(fault)
    return found


def select(
    faults: Iterable[Fault], ids: Iterable[int] | None, *, component: str | None = None
) -> list[Fault]:
    """The open faults named by ``ids`` (None: all, of ``component`` if given); FaultsError
    for an id that is unknown or already resolved."""
    by_id = {f.id: f for f in faults}
    if ids is None:
        chosen = [f for f in by_id.values() if component is None or f.event.component == component]
    else:
        chosen = []
        for fault_id in ids:
            fault = by_id.get(fault_id)
            if fault is None:
                raise FaultsError(
                    f"no fault {fault_id}: see `outpost faults list --all` for the ids"
                )
            chosen.append(fault)
    resolved = [f for f in chosen if f.resolution is not None]
    if resolved and ids is not None:
        first = resolved[0]
        assert first.resolution is not None
        raise FaultsError(f"fault {first.id} was already {first.resolution.action}")
    return [f for f in chosen if f.resolution is None]


async def resubmit(
    js: JetStreamContext,
    faults: Iterable[Fault],
    *,
    data: bytes | None = None,
    publisher: Publisher | None = None,
) -> list[Resolution]:
    """Send each fault's event (or ``data`` instead) back to its own component only,
    through ``publisher`` (by default one over ``js``)."""
    await ensure_resubmit_stream(js)
    publisher = publisher or JetStreamPublisher.for_stream(js)
    done = []
    for fault in faults:
        event = fault.event
        headers = {
            HEADER_FAULT_ID: str(fault.id),
            HEADER_ORIGINAL_SEQ: str(event.seq),
            HEADER_ORIGINAL_SUBJECT: event.subject,
        }
        ack = await publisher.publish(
            Outgoing(
                resubmit_subject(event.component),
                fault.data if data is None else data,
                f"resubmit:{fault.id}",
                headers,
            )
        )
        done.append(await _resolve(publisher, fault, "resubmitted", ack.seq))
    return done


async def drop(
    js: JetStreamContext, faults: Iterable[Fault], *, publisher: Publisher | None = None
) -> list[Resolution]:
    """Mark faults as dealt with, without sending anything to any component."""
    publisher = publisher or JetStreamPublisher.for_stream(js)
    return [await _resolve(publisher, fault, "dropped", None) for fault in faults]


async def _resolve(
    publisher: Publisher, fault: Fault, action: str, resubmit_seq: int | None
) -> Resolution:
    resolution = Resolution(
        fault=fault.id,
        component=fault.event.component,
        action=action,
        at=int(time.time() * 1000),
        resubmit_seq=resubmit_seq,
    )
    await publisher.publish(
        Outgoing(
            resolution_subject(fault.event.component),
            msgspec.json.encode(resolution),
            f"resolve:{fault.id}",
        )
    )
    return resolution


# -- reaching NATS ----------------------------------------------------------------------------


@asynccontextmanager
async def open_nats(data_dir: Path, url: str | None) -> AsyncIterator[NatsClient]:
    """A connection to the backend's NATS: ``url``; else the nats-server running on the
    store of ``data_dir`` (the backend's); else one started on it for the time of the
    command. Never a second server on a store in use."""
    from backend.nats.access import use_store
    from backend.nats.errors import EmbeddedNatsError

    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            store = data_dir / "nats"
            if not store.is_dir():
                raise FaultsError(
                    f"no backend data in {data_dir}: pass --data-dir, or --nats-url "
                    "for a backend that uses its own NATS"
                )
            try:
                access = await stack.enter_async_context(
                    use_store(store, share=True, supervise=False)
                )
            except EmbeddedNatsError as exc:
                raise FaultsError(f"cannot reach the embedded nats-server: {exc}") from exc
            url = access.url
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    url,
                    connect_timeout=3,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    error_cb=_quiet,
                ),
                _CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise FaultsError(f"NATS is unreachable at {url}: {exc or type(exc).__name__}") from exc
        try:
            yield nc
        finally:
            await nc.close()


async def _quiet(exc: Exception) -> None:
    pass
