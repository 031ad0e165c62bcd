"""The embedded, supervised nats-server and the JetStream streams of Outpost."""

from backend.nats.embedded import EmbeddedNats, find_binary
from backend.nats.errors import (
    EmbeddedNatsError,
    NatsBinaryNotFoundError,
    NatsStartError,
    StoreInUseError,
)
from backend.nats.ownership import RunningServer, find_running, servers_on
from backend.nats.streams import (
    CHANGES_SUBJECT,
    DEFAULT_DUPLICATE_WINDOW_S,
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    FAULTS_STREAM,
    FAULTS_SUBJECT_PREFIX,
    ensure_streams,
    event_subject,
    events_stream_config,
    fault_subject,
    faults_stream_config,
)

__all__ = [
    "CHANGES_SUBJECT",
    "DEFAULT_DUPLICATE_WINDOW_S",
    "EVENTS_STREAM",
    "EVENTS_SUBJECT_PREFIX",
    "FAULTS_STREAM",
    "FAULTS_SUBJECT_PREFIX",
    "EmbeddedNats",
    "EmbeddedNatsError",
    "NatsBinaryNotFoundError",
    "NatsStartError",
    "RunningServer",
    "StoreInUseError",
    "ensure_streams",
    "event_subject",
    "events_stream_config",
    "fault_subject",
    "faults_stream_config",
    "find_binary",
    "find_running",
    "servers_on",
]
