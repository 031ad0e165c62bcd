"""The JetStream streams and subjects of Outpost, and their idempotent setup.

OUTPOST_EVENTS   outpost.events.<board id>    every accepted event, kept for ever
OUTPOST_FAULTS   outpost.faults.<component>   events a consumer could not process
                 outpost.faults.<component>.resolved   what an operator did with one
OUTPOST_RESUBMIT outpost.resubmit.<component> faulted events sent back to one component only
OUTPOST_SCHEDULES outpost.schedules.plan.<task id>  the orchestrator's message schedules
                 outpost.schedules.due.<task id>   what they fire, for the orchestrator alone
outpost.changes  (core NATS, no stream)       change notices that BFF processes turn into pokes
outpost.live     (core NATS, no stream)       each BFF process's open live connections, per user
"""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.manager import JetStreamManager

EVENTS_STREAM = "OUTPOST_EVENTS"
EVENTS_SUBJECT_PREFIX = "outpost.events"
FAULTS_STREAM = "OUTPOST_FAULTS"
FAULTS_SUBJECT_PREFIX = "outpost.faults"
RESUBMIT_STREAM = "OUTPOST_RESUBMIT"
RESUBMIT_SUBJECT_PREFIX = "outpost.resubmit"
SCHEDULES_STREAM = "OUTPOST_SCHEDULES"
SCHEDULES_PLAN_PREFIX = "outpost.schedules.plan"
SCHEDULES_DUE_PREFIX = "outpost.schedules.due"
CHANGES_SUBJECT = "outpost.changes"
LIVE_SUBJECT = "outpost.live"

DEFAULT_DUPLICATE_WINDOW_S = 24 * 3600.0

# JetStream API error code: "stream name already in use with a different configuration".
_STREAM_NAME_IN_USE = 10058
_FORBIDDEN_IN_TOKEN = frozenset(".*> \t\r\n")


def event_subject(board_id: str) -> str:
    """The subject of one board's events: `outpost.events.<board id>`."""
    return f"{EVENTS_SUBJECT_PREFIX}.{_token(board_id, 'board id')}"


def fault_subject(component: str) -> str:
    """The subject of one component's fault events: `outpost.faults.<component>`."""
    return f"{FAULTS_SUBJECT_PREFIX}.{_token(component, 'component')}"


def resolution_subject(component: str) -> str:
    """Where ``outpost faults`` records that a fault was resubmitted or dropped."""
    return f"{fault_subject(component)}.resolved"


def resubmit_subject(component: str) -> str:
    """Faulted events sent back to one component (and to no other consumer)."""
    return f"{RESUBMIT_SUBJECT_PREFIX}.{_token(component, 'component')}"


def schedule_plan_subject(task_id: str) -> str:
    """Where a task's reminder schedule is defined (one schedule per subject)."""
    return f"{SCHEDULES_PLAN_PREFIX}.{_token(task_id, 'task id')}"


def schedule_due_subject(task_id: str) -> str:
    """Where a task's reminder schedule fires."""
    return f"{SCHEDULES_DUE_PREFIX}.{_token(task_id, 'task id')}"


def schedules_stream_config(*, replicas: int = 1) -> StreamConfig:
    """The orchestrator's timers: message schedules (nats-server 2.12+), never on
    OUTPOST_EVENTS. No age limit: a schedule for a date months away must stay."""
    return StreamConfig(
        name=SCHEDULES_STREAM,
        description="Outpost orchestrator timers: message schedules and what they fire",
        subjects=["outpost.schedules.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        allow_rollup_hdrs=True,  # a schedule replaces the one before on its subject
        allow_msg_schedules=True,
    )


def events_stream_config(
    *, duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S, replicas: int = 1
) -> StreamConfig:
    """The event log: file storage, never trimmed, deduplicated by `Nats-Msg-Id` (the event id)."""
    return StreamConfig(
        name=EVENTS_STREAM,
        description="Outpost events, one subject per board",
        subjects=[f"{EVENTS_SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs=-1,
        max_bytes=-1,
        max_age=0,
        max_msgs_per_subject=-1,
        duplicate_window=duplicate_window_s,
        num_replicas=replicas,
        allow_atomic=True,  # the BFF stores a push's new events as one atomic batch
    )


def faults_stream_config(*, replicas: int = 1) -> StreamConfig:
    """Fault events, kept so that a fault can be inspected, retried and resubmitted."""
    return StreamConfig(
        name=FAULTS_STREAM,
        description="Outpost fault events, one subject per component",
        subjects=[f"{FAULTS_SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
    )


def resubmit_stream_config(*, replicas: int = 1) -> StreamConfig:
    """Resubmitted events, one subject per component: each component's runner consumes its
    own subject with its own durable consumer and position, so a resubmission reaches only
    the component that faulted it. Deduplicated by ``Nats-Msg-Id`` (``resubmit:<fault id>``)."""
    return StreamConfig(
        name=RESUBMIT_STREAM,
        description="Outpost events resubmitted to one component after a fault",
        subjects=[f"{RESUBMIT_SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
    )


async def ensure_resubmit_stream(js: JetStreamManager, *, replicas: int = 1) -> None:
    """Create or update OUTPOST_RESUBMIT alone (idempotent)."""
    await _create_or_update(js, resubmit_stream_config(replicas=replicas))


async def ensure_streams(
    js: JetStreamManager,
    *,
    duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    replicas: int = 1,
) -> None:
    """Create OUTPOST_EVENTS, OUTPOST_FAULTS, OUTPOST_RESUBMIT and OUTPOST_SCHEDULES, or
    update them to these settings. Idempotent."""
    await _create_or_update(
        js, events_stream_config(duplicate_window_s=duplicate_window_s, replicas=replicas)
    )
    await _create_or_update(js, faults_stream_config(replicas=replicas))
    await ensure_resubmit_stream(js, replicas=replicas)
    await _create_or_update(js, schedules_stream_config(replicas=replicas))


async def _create_or_update(js: JetStreamManager, config: StreamConfig) -> None:
    """Create the stream, or update it to ``config``, never lowering its replicas: a stream
    that an operator (or an earlier start) raised to N copies keeps N when a process starts
    that asks for fewer, so a restart with the default never drops a cluster's copies."""
    wanted = config.num_replicas or 1
    assert config.name is not None
    try:
        current = await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError as exc:
            # Another process created it between the look and the add: update theirs.
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
            current = await js.stream_info(config.name)
    config.num_replicas = max(wanted, current.config.num_replicas or 1)
    # Creating a stream that exists with the same config succeeds; with another config the
    # server refuses with 10058, and the update applies the change.
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)


def _token(value: str, what: str) -> str:
    if not value or not _FORBIDDEN_IN_TOKEN.isdisjoint(value):
        raise ValueError(
            f"{what} {value!r} cannot be a NATS subject token: it must be non-empty, "
            "without '.', '*', '>' or whitespace"
        )
    return value
