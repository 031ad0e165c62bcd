"""Backend settings: flags first, then ``OUTPOST_*`` environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("outpost-data")
    host: str = "127.0.0.1"
    port: int = 8000
    nats_url: str | None = None
    """None: start an embedded nats-server with its store under ``data_dir``; or one URL, or
    a cluster's URLs comma-separated."""
    db_url: str | None = None
    """None: SQLite files under ``data_dir``; or a ``postgresql+asyncpg://`` URL."""
    secret: str | None = None
    """Token signing secret; None: generated once into ``data_dir/secret.key``."""
    token_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    rate_limit_per_s: float = 50.0
    """Requests a signed-in user may make per second, over every BFF process together."""
    rate_limit_burst: int = 200
    """Requests a user may make at once before ``rate_limit_per_s`` applies."""
    rate_limit_lease: int = 10
    """Requests a BFF process takes from a user's shared bucket at once and then serves
    without asking the database again (within a second; at most a twentieth of the burst).
    The limit is never exceeded; a user may get up to ``processes x (lease - 1)`` fewer."""
    signup_limit: int = 5
    """Sign-ups from one client address at once; then one per ``signup_window_s / signup_limit``."""
    signup_window_s: float = 3600.0
    user_check_limit: int = 30
    """Member checks (``GET /v1/users/{username}``) a user may make at once; then one per
    ``user_check_window_s / user_check_limit``: enough to share boards, too few to list the
    usernames."""
    user_check_window_s: float = 3600.0
    signin_failures_per_address: int = 5
    """Failed sign-ins of one username from one client address before that pair is blocked."""
    signin_failures_per_username: int = 50
    """Failed sign-ins of one username from anywhere before every address that fails on it
    is blocked at once; an address that has not failed is never refused, so the owner can
    still sign in while guessers elsewhere are blocked."""
    signin_block_s: float = 1.0
    """The first block of a (username, address); each further failure doubles it."""
    signin_block_max_s: float = 900.0
    signin_window_s: float = 900.0
    """Failed sign-ins are forgotten this long after the last one (or after a block ends)."""
    password_hash_concurrency: int = 1
    """Password hashes (sign-up, sign-in) computed at once in a process; the rest wait.
    Each hash takes one core for tens of milliseconds: keep it below the process's cores,
    so that guessers never take every core from the other users' requests."""
    password_hash_queue: int = 64
    """Sign-ups and sign-ins that may wait for a hash; beyond that 429 with Retry-After."""
    trusted_proxies: str = ""
    """Comma-separated addresses or networks (CIDR) of proxies whose ``X-Forwarded-For`` is
    believed: behind them the client is the right-most hop that is not one of them."""
    admin_token: str | None = None
    """Bearer token that opens ``/metrics`` and the detailed health from a non-loopback
    address; None: only loopback clients see them."""
    revocation_refresh_s: float = 1.0
    """How often a BFF process reloads the revoked sessions that other processes ended: an
    ended session's access tokens stop working everywhere within this time."""
    max_clock_skew_ms: int = 5 * 60 * 1000
    publish_timeout_s: float = 5.0
    """How long a push waits for JetStream's acknowledgements before answering 503."""
    max_batch_events: int = 500
    max_batch_bytes: int = 1024 * 1024
    duplicate_window_s: float = 24 * 3600.0
    stream_replicas: int = 1
    """Copies JetStream keeps of each stream (3 on a three-node cluster). A start creates
    missing streams with this many and raises existing ones to it, but never lowers them."""
    """How long JetStream recognizes a re-sent event id on its own (``Nats-Msg-Id``)."""
    header_timeout_s: float = 10.0
    """A request's line and headers must all arrive within this long of its first byte
    (of the connection, for its first request), or it gets 408 and the connection closes."""
    body_timeout_s: float = 30.0
    """A request's body must all arrive within this long of its headers, plus a second for
    every ``body_min_rate`` bytes received by then, or 408 and close. Responses are never
    timed."""
    body_min_rate: float = 4096.0
    """Bytes per second a slow client's body must keep up to earn more time: a 1 MiB push
    at this rate takes about 4 minutes and is read whole."""
    consumer_linger_s: float = 0.1
    """A caught-up consumer that no pull reads (workload, lake, gateway, orchestrator) waits
    this long after an event before taking it with whatever came meanwhile: those
    components then commit a few events at a time, after the projector, instead of each
    event at the same moment as the projector, whose commit a device waits for."""
    consumer_shared_fetch: bool = True
    """Where one process runs several consumers that no pull reads (the ones set apart), one
    fetch of the stream feeds all that are at its place, instead of a durable consumer each
    (``backend/consumers/feed.py``): nats-server sends each event once to the process, not
    once per consumer. The projector always has its own. False: a durable consumer each."""
    live_keepalive_s: float = 15.0
    live_poke_interval_s: float = 0.02
    """After a poke, changes of the next moment wait this long and join the next poke."""
    live_page_limit: int = 200
    """Changes in one ``event: changes`` page; more than that, and the device pulls."""
    live_page_max_bytes: int = 256 * 1024
    """A bigger page goes as a ``poke`` instead: a slow connection never holds more."""
    live_max_per_user: int = 20
    """Live connections one user may hold, across every BFF process: a new one beyond
    this closes that user's oldest."""
    consumers_nice: int = 10
    """How much lower the CPU priority of ``outpost backend consume`` (the consumers set
    apart) is than the BFF's, as a nice value (0: the same). Their work never holds a
    device up, so on a busy machine the push, the projector and the pull go first and they
    catch up after (their lag is in ``/v1/health``); an idle core is theirs as before."""
    stop_deadline_s: float = 30.0
    """How long ``outpost backend consume`` may take to stop (its consumers commit their
    batches) before it exits anyway: more than the backend waits before it kills the
    process it started, and the bound for one whose backend is gone. Nothing is lost: what
    a consumer had not committed, it consumes again."""
    consumers_idle: bool = True
    """Run ``outpost backend consume`` in Linux's idle scheduling class (``SCHED_IDLE``)
    when it runs no component a pull reads (never the projector): it takes only CPU time
    that nothing else wants, and gives the CPU up the moment the BFF or the projector wakes,
    where at nice 10 the scheduler let it finish its slice first. The child that ``outpost
    backend`` starts then stays in its session, which Linux schedules as one group (its own
    session would be a group of its own, on a par with the BFF's). The price: while every
    core is busy for a long time, these consumers wait: their lag grows (``/v1/health``),
    reminders and webhooks go late, the child may miss ``/v1/health``'s 1.5 s to answer
    (``degraded``, 503, until the load eases), and a backend write of the orchestrator's
    holds the BFF's write lock for as long as the child waits for a CPU. For a machine
    that is meant to run flat out, set it false: nice ``consumers_nice`` only, the child in
    a session of its own."""
    reminder_lead_s: float = 24 * 3600.0
    """How long before a task's due date (its 00:00 UTC) the orchestrator reminds its
    assignee (``OUTPOST_REMINDER_LEAD_S``)."""
    password_time_cost: int = 3
    """argon2 passes: lower it only for tests and tools that sign up many users."""
    webhook_allow: str = ""
    """Where outbound webhooks may go: comma-separated host names (``*.example.com`` for
    subdomains) and IP addresses or networks. Empty: nowhere. A name never opens a private,
    loopback or link-local address; only an address or network entry does
    (``backend/gateway/allow.py``)."""
    webhook_retry_s: str = "5,300,1800,7200,18000,36000,36000"
    """Seconds before each retry of a failed webhook delivery (the first try is at once):
    Standard Webhooks' schedule. Past the last, the delivery is faulted."""
    webhook_timeout_s: float = 10.0
    """How long one webhook try may take before it counts as failed."""
    components: str = "projector,workload,lake,gateway,orchestrator"
    """The stream consumers this process runs (comma-separated; empty: none)."""
    consumers_apart: str = "workload,lake,gateway,orchestrator"
    """Which of ``components`` ``outpost backend`` runs in a child process of its own
    (``outpost backend consume``, started, restarted and stopped with it), so that they work
    on another core than the BFF (comma-separated; empty: all in this process). The
    projector stays beside the BFF: its commits are what every device waits for."""
    health_subject: str = ""
    """Where ``outpost backend consume`` answers with its consumers' health (a NATS subject;
    empty: nowhere). ``outpost backend`` sets it for its child, so ``/v1/health`` lists them."""
    db_urls: str | None = None
    """Per-component database URLs over ``db_url``: ``projector=postgresql+asyncpg://...,lake=...``."""

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.components.split(",") if name.strip())

    @property
    def apart_names(self) -> tuple[str, ...]:
        """The consumers ``outpost backend`` runs in its child process."""
        apart = {name.strip() for name in self.consumers_apart.split(",")}
        return tuple(name for name in self.component_names if name in apart)

    @property
    def beside_names(self) -> tuple[str, ...]:
        """The consumers ``outpost backend`` runs in its own process, beside the BFF."""
        return tuple(name for name in self.component_names if name not in self.apart_names)

    def to_env(self) -> dict[str, str]:
        """These settings as ``OUTPOST_<NAME>`` variables (``from_env`` reads them back):
        how ``outpost backend`` hands its own to its child process."""
        env = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is not None:
                env[f"OUTPOST_{spec.name.upper()}"] = str(value)
        return env

    def db_url_for(self, component: str) -> str | None:
        """The database URL of one component: its own in ``db_urls``, else ``db_url``."""
        for entry in (self.db_urls or "").split(","):
            name, _, url = entry.partition("=")
            if name.strip() == component and url.strip():
                return url.strip()
        return self.db_url

    @property
    def webhook_retries(self) -> tuple[float, ...]:
        """``webhook_retry_s`` as numbers: the wait before each retry."""
        try:
            waits = tuple(float(x) for x in self.webhook_retry_s.split(",") if x.strip())
        except ValueError:
            raise ValueError(
                f"OUTPOST_WEBHOOK_RETRY_S={self.webhook_retry_s!r}: expected seconds, "
                "comma-separated (5,300,1800)"
            ) from None
        if any(w < 0 for w in waits):
            raise ValueError(f"OUTPOST_WEBHOOK_RETRY_S={self.webhook_retry_s!r}: negative wait")
        return waits

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``OUTPOST_<NAME>`` variables, with non-None ``overrides`` on top."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(f"OUTPOST_{spec.name.upper()}")
            if raw is not None:
                values[spec.name] = _parse(spec.type, raw, spec.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)


def _parse(kind: Any, raw: str, name: str) -> Any:
    text = str(kind)
    try:
        if text.startswith("int"):
            return int(raw)
        if text.startswith("float"):
            return float(raw)
        if text.startswith("bool"):
            return raw.lower() in {"1", "true", "yes", "on"}
    except ValueError as exc:
        raise ValueError(f"OUTPOST_{name.upper()}={raw!r} is not a valid {text}") from exc
    return raw
