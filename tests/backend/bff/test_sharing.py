"""Two users: nobody reads or writes a board that is not shared with them, nor takes over
its ids; sharing backfills the whole board; removal takes it away again."""

from __future__ import annotations

import uuid

import pytest

from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


def user(backend: BackendProcess, name: str) -> Device:
    return Device(backend.url, f"{name}{uuid.uuid4().hex[:8]}").signup()


def statuses(results: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["status"], r.get("reason")) for r in results]


FORBIDDEN = ("rejected", "forbidden")


class Scene:
    """Alice's board with a task and a comment; Bob with a board of his own."""

    def __init__(self, backend: BackendProcess) -> None:
        self.alice = user(backend, "alice")
        self.bob = user(backend, "bob")
        self.board, created = self.alice.new_board("Alice's")
        self.task, task = self.alice.new_task(self.board, title="Secret plan")
        self.comment = str(uuid.uuid4())
        comment = self.alice.event(
            "CommentAdded",
            {"task": self.task, "body": "mine"},
            board=self.board,
            entity=self.comment,
        )
        assert statuses(self.alice.push(created, task, comment)) == [("accepted", None)] * 3
        self.bob_board, bob_created = self.bob.new_board("Bob's")
        self.bob_task, bob_task = self.bob.new_task(self.bob_board)
        results = self.bob.push(bob_created, bob_task)
        self.bob.sync_until(results[-1]["seq"])  # type: ignore[arg-type]

    def share(self, limit: int = 500) -> None:
        add = self.alice.event("MemberAdded", {"username": self.bob.username}, board=self.board)
        [result] = self.alice.push(add)
        assert result["status"] == "accepted"
        deadline_seq = result["seq"]
        self.bob.pull(limit=limit)
        while self.bob.watermark < deadline_seq:
            self.bob.pull(limit=limit)


@pytest.fixture
def scene(module_backend: BackendProcess) -> Scene:
    return Scene(module_backend)


def test_a_board_not_shared_is_neither_pulled_nor_written(
    scene: Scene, module_nats: ControlledNats
) -> None:
    assert scene.board not in scene.bob.boards()
    bob = scene.bob
    attempts = [
        bob.event(
            "TaskUpdated", {"fields": {"title": "mine now"}}, board=scene.board, entity=scene.task
        ),
        bob.new_task(scene.board)[1],
        bob.event("BoardUpdated", {"fields": {"name": "x"}}, board=scene.board),
        bob.event("MemberAdded", {"username": bob.username}, board=scene.board),
    ]
    stream = len(module_nats.events())
    assert statuses(bob.push(*attempts)) == [FORBIDDEN] * 4
    assert len(module_nats.events()) == stream
    bob.pull()
    assert scene.board not in bob.boards() and ("task", scene.task) not in bob.state


def test_ids_of_someone_elses_entities_cannot_be_taken_over(
    scene: Scene, module_nats: ControlledNats
) -> None:
    bob = scene.bob
    attempts = [
        bob.event("BoardCreated", {"name": "takeover"}, board=scene.board),
        bob.event(
            "TaskUpdated", {"fields": {"title": "x"}}, board=scene.bob_board, entity=scene.task
        ),
        bob.event(
            "TaskCreated",
            {"title": "x", "position": "a0"},
            board=scene.bob_board,
            entity=scene.task,
        ),
        bob.event(
            "CommentAdded",
            {"task": scene.bob_task, "body": "x"},
            board=scene.bob_board,
            entity=scene.comment,
        ),
        bob.event(
            "CommentAdded",
            {"task": scene.task, "body": "x"},
            board=scene.bob_board,
            entity=str(uuid.uuid4()),
        ),
        bob.event(
            "TaskCreated",
            {"title": "x", "position": "a0"},
            board=scene.bob_board,
            entity=scene.board,
        ),
    ]
    stream = len(module_nats.events())
    results = bob.push(*attempts)
    assert statuses(results) == [FORBIDDEN] * len(attempts), results
    assert len(module_nats.events()) == stream
    scene.alice.pull()
    assert scene.alice.values("task", scene.task)["title"] == "Secret plan"  # type: ignore[index]


def test_a_device_belongs_to_the_first_user_who_pushes_it(
    scene: Scene, module_backend: BackendProcess
) -> None:
    thief = Device(module_backend.url, scene.bob.username, device_id=scene.alice.device_id)
    thief.token = scene.bob.token
    _, own_task = thief.new_task(scene.bob_board)
    [result] = thief.push(own_task)
    assert (result["status"], result["reason"]) == FORBIDDEN
    assert "belongs to another user" in result["detail"]
    # Bob's own device with an hlc whose node is Alice's device is refused too.
    _, task = scene.bob.new_task(scene.bob_board)
    task["hlc"] = scene.alice.clock.now()
    assert statuses(scene.bob.push(task)) == [FORBIDDEN]


def test_sharing_backfills_the_whole_board_page_by_page(scene: Scene) -> None:
    more = [scene.alice.new_task(scene.board, title=f"t{i}")[1] for i in range(7)]
    scene.alice.push(*more)
    scene.share(limit=3)
    bob = scene.bob
    assert bob.values("board", scene.board)["name"] == "Alice's"  # type: ignore[index]
    assert bob.values("task", scene.task)["title"] == "Secret plan"  # type: ignore[index]
    assert bob.values("comment", scene.comment)["author"] == scene.alice.username  # type: ignore[index]
    tasks = {k for k in bob.state if k[0] == "task" and bob.state[k]["board"] == scene.board}
    assert len(tasks) == 8
    members = {bob.values(*k)["username"] for k in bob.state if k[0] == "member"}  # type: ignore[index]
    assert {scene.alice.username, bob.username} <= members
    alice_view = scene.alice
    alice_view.pull()
    for key, change in alice_view.state.items():
        if change["board"] == scene.board:
            assert bob.state[key]["values"] == change["values"]


def test_a_member_writes_but_only_the_owner_manages_members(
    scene: Scene, module_backend: BackendProcess
) -> None:
    scene.share()
    bob = scene.bob
    edit = bob.event(
        "TaskUpdated", {"fields": {"status": "doing"}}, board=scene.board, entity=scene.task
    )
    carol = user(module_backend, "carol")
    invite = bob.event("MemberAdded", {"username": carol.username}, board=scene.board)
    remove_owner = scene.alice.event(
        "MemberRemoved", {"username": scene.alice.username}, board=scene.board
    )
    nobody = scene.alice.event("MemberAdded", {"username": "nobody-at-all"}, board=scene.board)
    delete_comment = bob.event("CommentDeleted", {}, board=scene.board, entity=scene.comment)
    assert statuses(bob.push(edit, invite, delete_comment)) == [
        ("accepted", None),
        FORBIDDEN,
        FORBIDDEN,
    ]
    results = scene.alice.push(remove_owner, nobody)
    assert statuses(results) == [FORBIDDEN, ("rejected", "invalid")]
    assert "no user named 'nobody-at-all'" in results[1]["detail"]  # type: ignore[operator]


def test_a_removed_member_gets_the_removal_and_can_no_longer_write(scene: Scene) -> None:
    scene.share()
    bob = scene.bob
    assert scene.board in bob.boards()
    remove = scene.alice.event("MemberRemoved", {"username": bob.username}, board=scene.board)
    [result] = scene.alice.push(remove)
    changes = []
    while bob.watermark < result["seq"]:  # type: ignore[operator]
        changes += bob.pull()
    removal = [c for c in changes if c.get("removed")]
    assert removal == [
        {
            "kind": "board",
            "id": scene.board,
            "board": scene.board,
            "version": removal[0]["version"],
            "removed": True,
            "values": None,
        }
    ]
    assert scene.board not in bob.boards() and ("task", scene.task) not in bob.state
    edit = bob.event(
        "TaskUpdated", {"fields": {"title": "late"}}, board=scene.board, entity=scene.task
    )
    assert statuses(bob.push(edit)) == [FORBIDDEN]
    bob.pull()
    assert scene.board not in bob.boards()


def test_a_late_member_added_with_an_older_hlc_does_not_undo_a_newer_removal(
    scene: Scene,
) -> None:
    old_stamp = scene.alice.clock.now()
    scene.share()
    remove = scene.alice.event("MemberRemoved", {"username": scene.bob.username}, board=scene.board)
    scene.alice.push(remove)
    late = scene.alice.event("MemberAdded", {"username": scene.bob.username}, board=scene.board)
    late["hlc"] = old_stamp
    assert scene.alice.push(late)[0]["status"] == "accepted"
    edit = scene.bob.event(
        "TaskUpdated", {"fields": {"title": "x"}}, board=scene.board, entity=scene.task
    )
    assert statuses(scene.bob.push(edit)) == [FORBIDDEN]
