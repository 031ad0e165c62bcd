"""The scenario: every step of a run, generated from the seed before anything runs.

The same seed (and the same ``clients``, ``users``, ``ops``, ``faults``) gives the same step
list, byte for byte. Steps name what they act on by symbol (``@B1`` a board, ``@T7`` a task,
``@C3`` a comment, ``@U0`` a user): ids are made by the devices when the scenario runs, and
an action on a symbol that no returned action has bound yet is skipped.

Three boards per scenario: ``B0`` a shared hot board, ``B1`` a shared board with a WIP limit
of 2 whose tasks are assigned to the scenario's users (moves to Doing collide there), and
``B2`` that its owner shares and unshares. Actions prefer a few hot tasks per board, so
devices that are offline together edit the same fields, delete what others edit and add and
remove the same labels.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from outpost.conflicts.adversary import HOSTILE_KINDS

DAY_MS = 86_400_000
WIP_LIMIT = 1
WIP_RACES = 2
"""Planned races per scenario: two offline devices moving tasks to Doing for one user."""
LABELS = ("bug", "ui", "urgent", "every:week")
"""``every:week`` makes a task recurring: finished, it spawns its next occurrence once."""
FAULT_KINDS = (
    "device_kill_action",
    "device_kill_sync",
    "backend_restart",
    "nats_restart",
    "clock_ahead",
    "clock_behind",
    "duplicate_batch",
    "resent_batch",
)
"""Every fault the tool injects, by the name the summary counts it under."""
CLUSTER_FAULT_KINDS = (
    "device_kill_action",
    "device_kill_sync",
    "stream_leader_kill",
    "bff_kill",
    "consumer_kill",
    "postgres_restart",
    "clock_ahead",
    "clock_behind",
    "duplicate_batch",
    "resent_batch",
)
"""The faults of ``--cluster`` (``outpost cluster``): instead of restarting the one backend
and its nats-server, the node that leads the event stream is killed mid-push, a BFF process
is killed mid-push (its devices' next connections go to another), the process that holds a
consumer's lease is killed while its standby waits, and PostgreSQL is killed and restarted."""
CLUSTER_STEP_KINDS = ("stream_leader_kill", "bff_kill", "consumer_kill", "postgres_restart")


def fault_kinds(
    cluster: bool, cluster_faults: tuple[str, ...] = CLUSTER_STEP_KINDS
) -> tuple[str, ...]:
    """The fault kinds a run injects (and its report must show fired)."""
    if not cluster:
        return FAULT_KINDS
    return tuple(
        k for k in CLUSTER_FAULT_KINDS if k not in CLUSTER_STEP_KINDS or k in cluster_faults
    )


SETUP_TASKS_PER_BOARD = 3


@dataclass
class Step:
    index: int
    kind: str
    """signup | login | act | sync | net | live | dup | kill_act | kill_sync |
    backend_restart | nats_restart | hostile"""
    device: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    setup: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        who = f"device {self.device} " if self.device is not None else ""
        if self.kind in ("act", "kill_act"):
            args = {k: v for k, v in self.args.items() if k not in ("name", "delay_ms")}
            text = f"{self.args['name']} {args}"
            return f"#{self.index} {who}{'KILLED DURING ' if self.kind == 'kill_act' else ''}{text}"
        extra = f" {self.args}" if self.args else ""
        return f"#{self.index} {who}{self.kind}{extra}"


@dataclass
class Scenario:
    seed: int
    clients: int
    users: int
    ops: int
    faults: bool
    clock_errors_ms: list[int]
    steps: list[Step]
    adversary: bool = False
    """Whether user 1's first device also sends hostile events (``adversary``)."""
    cluster: bool = False
    """Whether the faults are a cluster's (``CLUSTER_STEP_KINDS``) instead of restarts of
    the one backend and its nats-server."""
    cluster_faults: tuple[str, ...] = CLUSTER_STEP_KINDS
    """Which of the cluster's faults it injects (``--cluster-faults``)."""

    def user_of(self, device: int) -> int:
        return device % self.users

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "clients": self.clients,
            "users": self.users,
            "ops": self.ops,
            "faults": self.faults,
            "clock_errors_ms": self.clock_errors_ms,
            "adversary": self.adversary,
            "cluster": self.cluster,
            "cluster_faults": list(self.cluster_faults),
            "steps": [s.to_json() for s in self.steps],
        }

    def with_steps(self, steps: list[Step]) -> Scenario:
        return Scenario(
            self.seed,
            self.clients,
            self.users,
            self.ops,
            self.faults,
            self.clock_errors_ms,
            steps,
            self.adversary,
            self.cluster,
            self.cluster_faults,
        )


class _Generator:
    def __init__(
        self,
        seed: int,
        clients: int,
        users: int,
        ops: int,
        faults: bool,
        adversary: bool,
        cluster: bool = False,
        cluster_faults: tuple[str, ...] = CLUSTER_STEP_KINDS,
    ) -> None:
        self.rng = random.Random(seed)
        self.clients, self.users, self.ops, self.faults = clients, users, ops, faults
        self.adversary = adversary
        self.cluster = cluster
        self.cluster_faults = cluster_faults
        self.steps: list[Step] = []
        self.tasks: dict[str, list[str]] = {"B0": [], "B1": [], "B2": []}
        self.races = 0
        self.comments: list[tuple[str, int]] = []  # (symbol, author user)
        self.counter = 0
        self.owner = {"B0": 0, "B1": 1 % users, "B2": 0}
        self.b2_members = set(range(users))
        self.online = [True] * clients
        self.live = [False] * clients

    def add(self, kind: str, device: int | None = None, setup: bool = False, **args: Any) -> Step:
        step = Step(len(self.steps), kind, device, args, setup)
        self.steps.append(step)
        return step

    def first_device(self, user: int) -> int:
        return user  # device i belongs to user i % users, so device u is user u's first

    def symbol(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # setup

    def setup(self) -> None:
        for device in range(self.clients):
            user = device % self.users
            kind = "signup" if device == self.first_device(user) else "login"
            self.add(kind, device, setup=True, user=f"@U{user}")
        for board in ("B0", "B1", "B2"):
            limit = WIP_LIMIT if board == "B1" else None
            device = self.first_device(self.owner[board])
            self.add(
                "act",
                device,
                setup=True,
                name="create_board",
                board_name=f"board {board}",
                wip_limit=limit,
                bind=board,
            )
            for user in range(self.users):
                if user != self.owner[board]:
                    self.add(
                        "act",
                        device,
                        setup=True,
                        name="share",
                        board=f"@{board}",
                        username=f"@U{user}",
                    )
            for _ in range(SETUP_TASKS_PER_BOARD):
                self.add("act", device, setup=True, **self.add_task_args(board))
        for device in range(self.users, self.clients):
            # work before the first sync: with a clock a day off, the first push shows it
            self.add(
                "act",
                device,
                setup=True,
                name="create_board",
                board_name=f"private {device}",
                wip_limit=None,
                bind=f"P{device}",
            )
        for device in range(self.clients):
            if device < self.users:
                self.add("sync", device, setup=True)
        for device in range(self.clients):
            self.add("sync", device, setup=True)

    def add_task_args(self, board: str) -> dict[str, Any]:
        symbol = self.symbol("T")
        self.tasks[board].append(symbol)
        fields: dict[str, Any] = {}
        if board == "B1":
            # most on one user: moves to Doing on different devices collide at the limit
            user = 0 if self.rng.random() < 0.7 else self.rng.randrange(self.users)
            fields["assignee"] = f"@U{user}"
            number = int(symbol[1:])
            if number % 2:  # a due date (no draw: the seeds' scenarios stay as they were)
                fields["due"] = f"2026-{number * 5 % 12 + 1:02d}-{number % 28 + 1:02d}"
        if self.rng.random() < 0.3:
            fields["labels"] = [self.rng.choice(LABELS)]
        return {
            "name": "add_task",
            "board": f"@{board}",
            "title": f"task {symbol}",
            "fields": fields,
            "bind": symbol,
        }

    # the body

    def body(self) -> None:
        plan: dict[int, list[str]] = {}
        if self.clients >= 2:
            for _ in range(WIP_RACES):
                plan.setdefault(self.rng.randrange(10, max(11, self.ops - 10)), []).append(
                    "wip_race"
                )
        # a recurring task finished (the orchestrator must spawn its next one, once)
        plan.setdefault(self.rng.randrange(5, max(6, self.ops - 10)), []).append("recurrence")
        if self.faults:
            kinds = ["kill_act", "kill_act", "kill_sync", "kill_sync"]
            if self.cluster:
                kinds += [k for k in CLUSTER_STEP_KINDS if k in self.cluster_faults]
            else:
                kinds += ["backend_restart", "nats_restart"]
            kinds += ["dup_twice", "dup_resend"]
            for kind in kinds:
                plan.setdefault(self.rng.randrange(10, max(11, self.ops - 10)), []).append(kind)
        if self.adversary:
            for kind in HOSTILE_KINDS:
                plan.setdefault(self.rng.randrange(10, max(11, self.ops - 10)), []).append(
                    f"hostile:{kind}"
                )
        acts = 0
        while acts < self.ops:
            for due in sorted(k for k in plan if k <= acts):
                for kind in plan.pop(due):
                    acts += self.fault(kind)
            r = self.rng.random()
            if r < 0.14:
                device = self.rng.randrange(self.clients)
                if self.online[device]:
                    self.add("sync", device)
            elif r < 0.21:
                device = self.rng.randrange(self.clients)
                self.online[device] = not self.online[device]
                self.add("net", device, online=self.online[device])
            elif r < 0.24:
                device = self.rng.randrange(self.clients)
                self.live[device] = not self.live[device]
                self.add("live", device, on=self.live[device])
            else:
                device = self.rng.randrange(self.clients)
                self.add("act", device, **self.action(device))
                acts += 1
        # Last, a task on the members-only board whose reminder is due at once and that
        # nothing changes afterwards: every run has one reminder it must see fire once.
        self.add(
            "act",
            0,
            name="add_task",
            board="@B1",
            title="reminder due",
            fields={"assignee": "@U0", "due": "2026-01-02"},
            bind=self.symbol("T"),
        )

    def fault(self, kind: str) -> int:
        if kind == "recurrence":
            return self.recurrence()
        if kind == "wip_race":
            return self.wip_race()
        if kind.startswith("hostile:"):
            return self.hostile(kind.partition(":")[2])
        device = self.rng.randrange(self.clients)
        if kind == "kill_act":
            self.add(
                "kill_act", device, delay_ms=round(self.rng.uniform(0, 2), 2), **self.action(device)
            )
            return 1
        if kind == "kill_sync":
            self.add("kill_sync", device, delay_ms=self.rng.randrange(0, 40))
        elif kind in ("backend_restart", "nats_restart", *CLUSTER_STEP_KINDS):
            for other in range(self.clients):  # pushes to be in flight when it goes
                self.add("act", other, **self.action(other))
            self.add(kind, None, delay_ms=self.rng.randrange(0, 8))
            return self.clients
        else:
            mode = "twice" if kind == "dup_twice" else "resend"
            if not self.online[device]:
                self.online[device] = True
                self.add("net", device, online=True)
            self.add("dup", device, mode=mode)
            for _ in range(3):
                self.add("act", device, **self.action(device))
                self.add("sync", device)
            self.add("dup", device, mode="off")
            return 3
        return 0

    def hostile(self, kind: str) -> int:
        """One push of hostile events by the adversary (``outpost.conflicts.adversary``),
        online so that it reaches the backend."""
        device = 1
        if not self.online[device]:
            self.online[device] = True
            self.add("net", device, online=True)
        # Setup tasks only: synced before the body, so every one is bound to its board.
        task = self.rng.choice(self.tasks["B0"][:SETUP_TASKS_PER_BOARD])
        wip_tasks = [f"@{t}" for t in self.tasks["B1"][:2]]
        # A private board of another user's (made at setup by devices users..clients-1).
        private = [d for d in range(self.users, self.clients) if d % self.users != 1]
        self.add(
            "hostile",
            device,
            hostile=kind,
            board="@B0",
            task=f"@{task}",
            other_board="@B1",
            wip_board="@B1",
            wip_tasks=wip_tasks,
            outsider_board=f"@P{private[0]}" if private else None,
        )
        return 0

    def recurrence(self) -> int:
        """A device makes one of the shared board's tasks recurring and finishes it."""
        device = self.rng.randrange(self.clients)
        task = f"@{self.rng.choice(self.tasks['B0'][:SETUP_TASKS_PER_BOARD])}"
        self.add("act", device, name="label", task=task, label="every:week")
        self.add("act", device, name="move", task=task, status="done", index=0)
        return 2

    def wip_race(self) -> int:
        """Two devices, offline, each move a different task of the WIP board to Doing for
        the same assignee: together over the limit, so the saga must undo one."""
        first, second = self.rng.sample(range(self.clients), 2)
        tasks = self.rng.sample(self.tasks["B1"][:SETUP_TASKS_PER_BOARD], 2)
        for device in (first, second):
            if self.online[device]:
                self.online[device] = False
                self.add("net", device, online=False)
        # An assignee of its own (any name will do; nobody else gives it work), so the
        # first move fits the limit and the second, concurrent one is the cause.
        self.races += 1
        fields = {"assignee": f"racer{self.races}", "status": "doing"}
        for device, task in ((first, tasks[0]), (second, tasks[1])):
            self.add("act", device, name="set", task=f"@{task}", fields=dict(fields))
        for device in (first, second):
            self.online[device] = True
            self.add("net", device, online=True)
            self.add("sync", device)
        return 2

    def pick_task(self, board: str) -> str | None:
        tasks = self.tasks[board]
        if not tasks:
            return None
        if self.rng.random() < 0.65:
            return self.rng.choice(tasks[:3])
        return self.rng.choice(tasks)

    def action(self, device: int) -> dict[str, Any]:
        rng = self.rng
        user = device % self.users
        board = rng.choices(("B0", "B1", "B2"), weights=(40, 42, 18))[0]
        if board == "B2" and user not in self.b2_members:
            board = "B0"
        task = self.pick_task(board)
        kind = rng.choices(
            (
                "set",
                "move",
                "label",
                "unlabel",
                "delete",
                "restore",
                "add_task",
                "comment",
                "uncomment",
                "assign",
                "share",
                "rename_board",
            ),
            weights=(22, 18, 10, 8, 5, 4, 7, 6, 2, 5, 3, 2),
        )[0]
        if task is None:
            kind = "add_task"
        if kind == "add_task":
            return self.add_task_args(board)
        if kind == "set":
            name = rng.choice(("title", "notes", "priority", "due"))
            value: Any = {
                "title": f"title {rng.randrange(1000)}",
                "notes": f"notes {rng.randrange(1000)}",
                "priority": rng.randrange(5),
                "due": rng.choice(
                    (None, f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}")
                ),
            }[name]
            return {"name": "set", "task": f"@{task}", "fields": {name: value}}
        if kind == "assign":
            return {
                "name": "set",
                "task": f"@{task}",
                "fields": {"assignee": f"@U{rng.randrange(self.users)}"},
            }
        if kind == "move":
            doing = 0.6 if board == "B1" else 0.3
            status = "doing" if rng.random() < doing else rng.choice(("todo", "done"))
            return {"name": "move", "task": f"@{task}", "status": status, "index": rng.randrange(4)}
        if kind in ("label", "unlabel"):
            return {"name": kind, "task": f"@{task}", "label": rng.choice(LABELS)}
        if kind in ("delete", "restore"):
            return {"name": kind, "task": f"@{task}"}
        if kind == "comment":
            symbol = self.symbol("C")
            self.comments.append((symbol, user))
            return {
                "name": "comment",
                "task": f"@{task}",
                "body": f"comment {symbol}",
                "bind": symbol,
            }
        if kind == "uncomment":
            own = [c for c, author in self.comments if author == user]
            if own:
                return {"name": "uncomment", "comment": f"@{rng.choice(own)}"}
            return {"name": "label", "task": f"@{task}", "label": rng.choice(LABELS)}
        if kind == "share" and user == self.owner["B2"] and self.users > 1:
            other = rng.choice([u for u in range(self.users) if u != user])
            if other in self.b2_members:
                self.b2_members.discard(other)
                return {"name": "unshare", "board": "@B2", "username": f"@U{other}"}
            self.b2_members.add(other)
            return {"name": "share", "board": "@B2", "username": f"@U{other}"}
        if kind == "rename_board" and user == self.owner[board]:
            return {
                "name": "rename_board",
                "board": f"@{board}",
                "board_name": f"{board} {rng.randrange(100)}",
            }
        return {
            "name": "set",
            "task": f"@{task}",
            "fields": {"title": f"title {rng.randrange(1000)}"},
        }


def generate(
    seed: int,
    clients: int,
    users: int,
    ops: int,
    faults: bool,
    adversary: bool | None = None,
    cluster: bool = False,
    cluster_faults: tuple[str, ...] = CLUSTER_STEP_KINDS,
) -> Scenario:
    """The whole scenario of ``seed``: the same arguments give the same steps. The
    adversary comes with the faults unless told otherwise; it needs two users. With
    ``cluster`` the restarts are a cluster's faults (``CLUSTER_STEP_KINDS``)."""
    adversary = (faults if adversary is None else adversary) and users >= 2
    generator = _Generator(seed, clients, users, ops, faults, adversary, cluster, cluster_faults)
    generator.setup()
    generator.body()
    clock = [0] * clients
    if faults and clients >= 2:
        clock[1] = DAY_MS  # a day ahead
    if faults and clients >= 3:
        clock[2] = -DAY_MS  # a day behind
    return Scenario(seed, clients, users, ops, faults, clock, generator.steps, adversary, cluster)
