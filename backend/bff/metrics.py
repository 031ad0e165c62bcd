"""Prometheus metrics of one BFF process, served at ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from backend.bff.sync.schemas import PushResult


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.push_events = Counter(
            "outpost_push_events", "Pushed events by result", ["status"], registry=self.registry
        )
        self.push_seconds = Histogram(
            "outpost_push_seconds", "Push request latency", registry=self.registry
        )
        self.pull_changes = Counter(
            "outpost_pull_changes", "Changes served by pulls", registry=self.registry
        )
        self.pull_seconds = Histogram(
            "outpost_pull_seconds", "Pull request latency", registry=self.registry
        )
        self.projector_lag = Gauge(
            "outpost_projector_lag_events",
            "Events in the stream the projector has not passed yet",
            registry=self.registry,
        )

    def observe_push(self, results: Iterable[PushResult], seconds: float) -> None:
        for result in results:
            self.push_events.labels(result.reason or result.status).inc()
        self.push_seconds.observe(seconds)

    def observe_pull(self, changes: int, seconds: float) -> None:
        self.pull_changes.inc(changes)
        self.pull_seconds.observe(seconds)
