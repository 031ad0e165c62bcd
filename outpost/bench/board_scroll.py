"""Scenario 8, a board of 1,000 cards in the app: the real app (``OutpostApp``) on a virtual
display (Xvfb) opens a board of ``plan.scroll_cards`` cards, scrolls its longest column top
to bottom and back a frame at a time, and filters it by text; beside the same steps on plain
Kivy, measured in the same process: a RecycleView of the same titles as plain Labels (the
baseline: the board recycles its cards' widgets too), and a ScrollView of them (every label a
widget, as the board was before it recycled).

Frame time is the time between two frames shown (``Window.on_flip``) with Kivy's frame cap
off (``maxfps 0``): what one frame of scrolling costs. A filter's time runs from the text
typed to the first frame that shows the filtered board. The app runs in a child process
(``board_scroll_child.py``): Kivy owns its process's main loop.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from client.app.settings import AppSettings
from client.device import Device
from outpost.bench.harness import BenchError, Workspace, percentile, progress
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target

NAME = "board_scroll"
TITLE = "8. board of 1,000 cards"
TARGET_FRAME_P99_MS = 1000 / 60
"""Scrolling at 60 frames a second."""
WINDOW = (1280, 800)
CHILD_TIMEOUT_S = 900
LABELS = ("ui", "api", "docs", "ops", "bug", "idea")
SHARE = {"todo": 0.6, "doing": 0.3, "done": 0.1}
"""How the cards spread over the columns: the longest (To do) is scrolled."""


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    result = ScenarioResult(
        NAME,
        TITLE,
        params={
            "cards": plan.scroll_cards,
            "scroll_frames": plan.scroll_frames,
            "filters": plan.scroll_filters,
            "window": list(WINDOW),
        },
    )
    profile = ws.folder("board_scroll/profile")
    _seed(profile, plan.scroll_cards)
    progress(f"board scroll: a board of {plan.scroll_cards} cards ready")
    out = ws.folder("board_scroll") / "figures.json"
    with _Xvfb(ws.folder("board_scroll") / "xvfb.log") as display:
        command = [sys.executable, "-m", "outpost.bench.board_scroll_child"]
        command += ["--data-dir", str(profile), "--out", str(out)]
        command += ["--frames", str(plan.scroll_frames), "--filters", str(plan.scroll_filters)]
        env = {
            **os.environ,
            "DISPLAY": display,
            "KIVY_NO_ARGS": "1",
            "KIVY_HOME": str(ws.folder("board_scroll/kivy")),
        }
        log = ws.folder("board_scroll") / "app.log"
        with log.open("wb") as sink:
            done = subprocess.run(
                command, env=env, stdout=sink, stderr=sink, timeout=CHILD_TIMEOUT_S, check=False
            )
    if done.returncode != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BenchError(f"the app exited with {done.returncode}:\n{tail}")
    measured = json.loads(out.read_text())
    progress(f"board scroll: the board opened in {measured['open_s']:.1f} s")
    result.params["open_s"] = round(measured["open_s"], 2)
    # the most card widgets a column had after its scroll: the ones in sight (it recycles)
    result.params["card_widgets"] = measured["card_widgets"]
    for label, key, target in (
        ("idle frame", "idle", None),
        ("scroll frame", "scroll", Target("<=", TARGET_FRAME_P99_MS)),
        ("filter to frame", "filter", None),
    ):
        for pct in (50,) if key == "idle" else (50, 99):
            result.add(
                Figure(
                    f"{label} p{pct}",
                    "ms",
                    percentile(measured[key], pct),
                    baseline=percentile(measured[f"{key}_plain"], pct),
                    baseline_label="plain Kivy RecycleView of Labels, same steps",
                    target=target if pct == 99 else None,
                )
            )
    for label, key in (("scroll frame", "scroll"), ("filter to frame", "filter")):
        result.add(
            Figure(
                f"{label} p50, vs a ScrollView",
                "ms",
                percentile(measured[key], 50),
                baseline=percentile(measured[f"{key}_scrollview"], 50),
                baseline_label="plain Kivy ScrollView of Labels (every one a widget)",
            )
        )
    return result


def _seed(profile: Path, cards: int) -> None:
    """A board with ``cards`` tasks (labels, assignees, due dates on some), opened last."""
    device = Device(profile)
    try:
        board = device.create_board("A thousand cards")
        columns = [status for status, share in SHARE.items() for _ in range(round(cards * share))]
        for i, status in enumerate(columns[:cards]):
            long = "a longer title, as some are, that wraps onto a second line"
            fields: dict[str, object] = {"status": status, "priority": i % 5}
            if i % 3:
                fields["labels"] = [LABELS[i % len(LABELS)]]
            if i % 7 == 0:
                fields["due"] = "2030-01-01"
            device.add_task(board, f"Task {i}: {long if i % 5 == 0 else 'short'}", **fields)
    finally:
        device.close()
    settings = AppSettings(WINDOW[0], WINDOW[1], last_board=board, offline_chosen=True)
    settings.theme = "light"
    settings.save(profile)


class _Xvfb:
    """A virtual display on a number Xvfb picks (``-displayfd``)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise BenchError(
                "Xvfb is not installed (apt-get install xvfb): the app needs a display"
            )
        ready, announce = os.pipe()
        command = [binary, "-displayfd", str(announce), "-nolisten", "tcp"]
        command += ["-screen", "0", f"{WINDOW[0]}x{WINDOW[1]}x24"]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, pass_fds=(announce,), stdout=sink, stderr=sink, start_new_session=True
            )
        os.close(announce)
        try:
            number = b""
            deadline = time.monotonic() + 20
            while not number.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([ready], [], [], left)[0]:
                    raise BenchError("Xvfb did not start within 20 s")
                chunk = os.read(ready, 16)
                if not chunk:
                    raise BenchError(f"Xvfb exited at start (see {self.log})")
                number += chunk
        finally:
            os.close(ready)
        return f":{number.decode().strip()}"

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
