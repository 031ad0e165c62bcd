"""Prometheus metrics of one BFF process, served at ``/metrics``."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from backend.bff.auth.hashing import PasswordHashing
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
        self.consumer_lag_seconds = Gauge(
            "outpost_consumer_lag_seconds",
            "Age of the oldest event a consumer has not processed (iterator age)",
            ["component"],
            registry=self.registry,
        )
        self.consumer_lag_events = Gauge(
            "outpost_consumer_lag_events",
            "Events in the stream a consumer has not passed yet",
            ["component"],
            registry=self.registry,
        )
        self.consumer_breaker_open = Gauge(
            "outpost_consumer_breaker_open",
            "1 while a consumer's circuit breaker is open (its database or NATS is away), or "
            "its process (the consumers apart) does not answer",
            ["component"],
            registry=self.registry,
        )
        self.consumer_faults = Counter(
            "outpost_consumer_faults",
            "Messages a consumer sent to the fault stream",
            ["component"],
            registry=self.registry,
        )
        self.password_hashes = Gauge(
            "outpost_password_hashes_in_flight",
            "Password hashes running now in this process",
            registry=self.registry,
        )
        self.password_hashes_peak = Gauge(
            "outpost_password_hashes_in_flight_max",
            "The most password hashes that ran at once in this process (the cap holds them)",
            registry=self.registry,
        )
        self.webhook_deliveries = Gauge(
            "outpost_webhook_deliveries",
            "Outbound webhook deliveries in the gateway's queue, by status "
            "(pending, delivered, failed: its schedule exhausted)",
            ["status"],
            registry=self.registry,
        )
        self._faults_seen: dict[str, int] = {}

    def observe_hashing(self, hashing: PasswordHashing) -> None:
        self.password_hashes.set(hashing.in_flight)
        self.password_hashes_peak.set(hashing.peak)

    def observe_push(self, results: Iterable[PushResult], seconds: float) -> None:
        for label, count in collections.Counter(r.reason or r.status for r in results).items():
            self.push_events.labels(label).inc(count)
        self.push_seconds.observe(seconds)

    def observe_pull(self, changes: int, seconds: float) -> None:
        self.pull_changes.inc(changes)
        self.pull_seconds.observe(seconds)

    def observe_health(self, report: Mapping[str, Any]) -> None:
        """Set the gauges from a ``HealthProbe.report()``."""
        self.projector_lag.set(report["projector_lag"])
        consumers: Mapping[str, Mapping[str, Any]] = report.get("consumers", {})
        for name, status in consumers.items():
            if status.get("lag_ms") is not None:
                self.consumer_lag_seconds.labels(name).set(status["lag_ms"] / 1000)
            if status.get("lag_events") is not None:
                self.consumer_lag_events.labels(name).set(status["lag_events"])
            # ``unknown``: its process (the consumers apart) does not answer: not running.
            stopped = status["breaker"] in ("open", "unknown")
            self.consumer_breaker_open.labels(name).set(1 if stopped else 0)
            if status.get("faults") is None:
                continue  # not known now: nothing to add
            faults = int(status["faults"])
            seen = self._faults_seen.get(name, 0)
            if faults < seen:
                seen = 0  # counted by a process started since (the consumers' was restarted)
            if faults > seen:
                self.consumer_faults.labels(name).inc(faults - seen)
            self._faults_seen[name] = faults
        for status, count in (report.get("webhooks") or {}).items():
            self.webhook_deliveries.labels(status).set(count)
