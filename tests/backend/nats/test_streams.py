"""The Outpost streams: their setup is idempotent, updatable, and deduplicates by event id."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType

from backend.nats import (
    EVENTS_STREAM,
    FAULTS_STREAM,
    ensure_streams,
    event_subject,
    fault_subject,
)
from tests.support.nats import connected, run, running_nats


def test_subjects_name_the_board_and_the_component() -> None:
    assert event_subject("0190c0de-0000-7000-8000-000000000001") == (
        "outpost.events.0190c0de-0000-7000-8000-000000000001"
    )
    assert fault_subject("projector") == "outpost.faults.projector"


@pytest.mark.parametrize("token", ["", "a.b", "*", ">", "a b"])
def test_a_subject_token_with_wildcards_or_dots_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        event_subject(token)
    with pytest.raises(ValueError, match="subject token"):
        fault_subject(token)


@pytest.mark.integration
def test_ensure_streams_creates_both_file_streams(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            events = (await js.stream_info(EVENTS_STREAM)).config
            faults = (await js.stream_info(FAULTS_STREAM)).config
        assert events.subjects == ["outpost.events.>"]
        assert events.storage == StorageType.FILE
        assert events.duplicate_window == 24 * 3600
        assert events.discard == DiscardPolicy.OLD
        assert events.retention == RetentionPolicy.LIMITS
        assert (events.max_age, events.max_msgs, events.max_bytes) == (0, -1, -1)
        assert events.num_replicas == 1
        assert faults.subjects == ["outpost.faults.>"]
        assert faults.storage == StorageType.FILE

    run(body())


@pytest.mark.integration
def test_subjects_land_in_their_streams(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            event_ack = await js.publish(event_subject("b1"), b"event")
            fault_ack = await js.publish(fault_subject("projector"), b"fault")
        assert (event_ack.stream, fault_ack.stream) == (EVENTS_STREAM, FAULTS_STREAM)

    run(body())


@pytest.mark.integration
def test_ensure_streams_again_changes_nothing(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            await js.publish(event_subject("b1"), b"kept")
            before = await js.stream_info(EVENTS_STREAM)
            await ensure_streams(js)
            after = await js.stream_info(EVENTS_STREAM)
        assert after.config == before.config
        assert after.created == before.created
        assert after.state.messages == 1

    run(body())


@pytest.mark.integration
def test_ensure_streams_updates_a_changed_setting(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            await js.publish(event_subject("b1"), b"kept")
            await ensure_streams(js, duplicate_window_s=60)
            info = await js.stream_info(EVENTS_STREAM)
        assert info.config.duplicate_window == 60
        assert info.state.messages == 1

    run(body())


@pytest.mark.integration
def test_a_resent_msg_id_is_stored_once_and_acked_as_duplicate(nats_store: Path) -> None:
    async def body() -> None:
        async with running_nats(nats_store) as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            await js.publish(event_subject("b1"), b"another event")
            headers = {"Nats-Msg-Id": str(uuid.uuid4())}
            first = await js.publish(event_subject("b1"), b"event", headers=dict(headers))
            second = await js.publish(event_subject("b1"), b"event", headers=dict(headers))
            info = await js.stream_info(EVENTS_STREAM)
        assert not first.duplicate
        assert second.duplicate is True
        assert second.seq == first.seq == 2
        assert info.state.messages == 2

    run(body())
