"""The desktop bundle (``make bundle``, ``dist/outpost-app/``), as a user gets it: issue 16.

Run by ``make bundle-test`` (``pytest --bundle tests/packaging``), which builds the bundle
first when needed; ``make test`` never collects this file (``tests/conftest.py``).

- What is inside: the app's modules and every data file of the client and protocol packages,
  and nothing of the backend (``outpost/bundle_check.py``, which ``make bundle`` runs too).
- What it draws: the bundle starts on a virtual display in a network namespace of its own
  (``unshare``: no network at all, so no server either) and must draw what the same app from
  source (with the test control) draws in the same case: over a profile seeded here with a
  board, that board; started with no arguments and no profile, as a user first opens it,
  the sign-in screen with "Continue offline" (and the profile is then in the platform's data
  folder). The picture is read from the X server (``tests/support/xwindow.py``: the bundle
  has no test control) and checked against the source app's layout: every region drawn,
  with letters where there is text, the gaps between regions empty
  (``tests/support/screenshots.py``), and the source app's pixels in every region named.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.device import Device
from outpost import bundle_check
from tests.client.app.test_app_e2e import board_layout
from tests.support.screenshots import (
    Expected,
    Picture,
    assert_screenshot,
    picture_problems,
    real_render_problems,
    rect_of,
)
from tests.support.xvfb import Xvfb, running_xvfb
from tests.support.xwindow import capture

# both start processes: PyInstaller's archive reader runs ldd when imported; the other, apps
pytestmark = pytest.mark.integration
REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLE = REPOSITORY / "dist" / bundle_check.NAME
ARTIFACTS = REPOSITORY / "tests" / "artifacts"
WINDOW = (1100, 720)  # the app's default window size (client.app.settings)
STARTUP_S = 90
SAME_PIXELS = 0.98
"""The share of pixels in each region named that must be the source app's exactly (the two
pictures come from the same Kivy on the same display: they are equal but for a blinking
cursor or a clock's text)."""

BOARD = "Packing list"
COLUMNS = {"todo": ["Tent", "Stove"], "doing": ["Map"], "done": ["Boots"]}


@pytest.fixture(scope="module")
def bundle() -> Path:
    if not (BUNDLE / bundle_check.NAME).is_file():
        pytest.fail(f"{BUNDLE} is not built: run `make bundle-test`, which builds it first")
    return BUNDLE


def test_the_bundle_holds_the_app_and_its_data_and_no_backend(bundle: Path) -> None:
    modules, files = bundle_check.bundle_modules(bundle), bundle_check.bundle_files(bundle)
    assert (
        bundle_check.problems(
            modules, files, bundle_check.source_modules(), bundle_check.source_data()
        )
        == []
    )
    assert not any(bundle_check.within(name, "backend") for name in modules)
    assert not any(path.split("/")[0] == "backend" for path in files)
    kv_files = {path for path in bundle_check.source_data() if path.endswith(".kv")}
    assert kv_files and kv_files <= files  # the screens' kv files, found by rule


# the bundle on a display


def seed_profile(folder: Path) -> None:
    """A device's profile with one board and its cards, never signed in, "Continue offline"
    chosen: the app opens on the board."""
    device = Device(folder)
    try:
        board = device.create_board(BOARD)
        for status, titles in COLUMNS.items():
            for title in titles:
                task = device.add_task(board, title)
                if status != "todo":
                    device.move_task(task, status)
    finally:
        device.close()
    settings = {"last_board": board, "offline_chosen": True}
    (folder / "app.json").write_text(json.dumps(settings), encoding="utf-8")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seeded") / "profile"
    seed_profile(folder)
    return folder


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvfb]:
    with running_xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log") as server:
        yield server


def copy_profile(seeded: Path, into: Path) -> Path:
    folder = into / "profile"
    shutil.copytree(seeded, folder)
    return folder


def app_env(display: Xvfb, home: Path) -> dict[str, str]:
    return {**os.environ, **display.env, "KIVY_HOME": str(home / "kivy"), "KIVY_NO_ARGS": "1"}


def log_tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(lines[-40:])


def end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def reference_shot(
    display: Xvfb, home: Path, args: list[str], env: dict[str, str], expected: Expected, name: str
) -> dict[str, Any]:
    """The app from source with the test control, on the same profile as the bundle: its
    screenshot and layout, checked as the end-to-end tests check a screen (tests/client/app)."""
    control_dir = Path(tempfile.mkdtemp(prefix="outpost-ref-"))  # short: a socket path
    control = control_dir / "control.sock"
    log = home / "source-app.log"
    command = [sys.executable, "-m", "tests.support.app_under_test", "--control", str(control)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command + args,
            stdout=output,
            stderr=output,
            env={**app_env(display, home), **env},
            cwd=REPOSITORY,
        )
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _listening(control):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app from source did not start:\n{log_tail(log)}")
            time.sleep(0.2)
        path = ARTIFACTS / f"bundle-reference-{name}.png"
        path.unlink(missing_ok=True)
        shot: dict[str, Any] = _command(control, {"op": "screenshot", "path": str(path)})
        _command(control, {"op": "quit"}, closing=True)
        process.wait(30)
    finally:
        end(process)
        shutil.rmtree(control_dir, ignore_errors=True)
    assert_screenshot(shot, expected, WINDOW)
    return shot


def _listening(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return False
    return True


def _command(path: Path, command: dict[str, Any], closing: bool = False) -> Any:
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(90)
        connection.connect(str(path))
        stream = connection.makefile("rwb")
        stream.write(json.dumps(command).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    if not line and closing:
        return None
    answer = json.loads(line)
    assert answer["ok"], f"{command}: {answer['error']}"
    return answer["result"]


def same_share(picture: Picture, other: Picture, rect: tuple[int, int, int, int]) -> float:
    mine, theirs = picture.pixels(rect), other.pixels(rect)
    return sum(a == b for a, b in zip(mine, theirs, strict=True)) / max(1, len(mine))


def offline_command(bundle: Path, args: list[str]) -> list[str]:
    """The bundle in a network namespace of its own: no interface but a loopback that is
    down, so no server can be reached (the X display is a Unix socket file: it still is)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is missing: the bundle must be started with no network")
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"cannot make a network namespace here (unshare -rn): {probe.stderr.strip()}")
    return [unshare, "-rn", str(bundle / bundle_check.NAME), *args]


def assert_bundle_draws(
    bundle: Path,
    display: Xvfb,
    home: Path,
    args: list[str],
    env: dict[str, str],
    reference: dict[str, Any],
    expected: Expected,
    name: str,
) -> None:
    """Start the bundle offline, read its window until it shows what the source app showed
    (``reference``): the layout checks on its picture, and the same pixels in every region
    ``expected`` names; then stop it as the system would (SIGTERM: it saves and exits 0)."""
    layout, original = reference["layout"], Picture(Path(reference["path"]))
    log = home / "bundle.log"
    path = ARTIFACTS / f"bundle-{name}.png"
    path.unlink(missing_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            offline_command(bundle, args),
            stdout=output,
            stderr=output,
            env={**app_env(display, home), **env},
        )
    try:
        problems = ["no window titled 'Outpost' yet"]
        deadline = time.monotonic() + STARTUP_S
        while problems:  # the window shows, then draws: read it until it shows the screen
            if process.poll() is not None:
                pytest.fail(f"the bundle exited with {process.returncode}:\n{log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the bundle did not draw the {expected.screen} screen in {STARTUP_S}s "
                    f"({path}): " + "; ".join(problems) + f"\n--- its log ---\n{log_tail(log)}"
                )
            time.sleep(0.5)
            if capture(display.display, "Outpost", path) is None:
                continue
            picture = Picture(path)
            problems = real_render_problems(picture) + picture_problems(
                picture, layout, expected, WINDOW
            )
            for region in expected.texts:
                share = same_share(picture, original, rect_of(layout, region))
                if share < SAME_PIXELS:
                    problems.append(f"{region}: {share:.0%} the source app's pixels")
        assert process.poll() is None, f"the bundle ended while drawing the {expected.screen}"
    finally:
        end(process)
    assert process.returncode == 0, f"the bundle ended with {process.returncode} on SIGTERM"
    assert "Traceback" not in _app_errors(log), log_tail(log)


def test_the_bundle_draws_the_board_with_no_network_and_no_server(
    bundle: Path, seeded: Path, display: Xvfb, tmp_path: Path
) -> None:
    expected = board_layout(BOARD, COLUMNS)
    source = tmp_path / "source"
    args = ["--data-dir", str(copy_profile(seeded, source))]
    reference = reference_shot(display, source, args, {}, expected, "board")
    home = tmp_path / "bundle"
    home.mkdir()
    args = ["--data-dir", str(copy_profile(seeded, home))]
    assert_bundle_draws(bundle, display, home, args, {}, reference, expected, "board")


SIGN_IN = Expected(
    "signin",
    {
        "username_input": None,
        "password_input": None,
        "sign_in_button": None,
        "offline_button": "Continue offline",
    },
    apart=(("username_input", "password_input", "sign_in_button", "offline_button"),),
    above=(("username_input", "password_input"), ("sign_in_button", "offline_button")),
)


def test_the_bundle_started_with_nothing_offers_sign_in_or_offline_and_keeps_its_profile(
    bundle: Path, display: Xvfb, tmp_path: Path
) -> None:
    """As a user first opens it: no arguments, no profile yet, no network."""
    source, home = tmp_path / "source", tmp_path / "bundle"
    source.mkdir()
    home.mkdir()
    data = {"XDG_DATA_HOME": str(source / "data")}  # where platformdirs puts the profile
    reference = reference_shot(display, source, [], data, SIGN_IN, "signin")
    data = {"XDG_DATA_HOME": str(home / "data")}
    assert_bundle_draws(bundle, display, home, [], data, reference, SIGN_IN, "signin")
    profile = home / "data" / "outpost" / "default"
    assert (profile / "app.json").is_file(), sorted(str(p) for p in home.rglob("*"))
    assert len(list(profile.iterdir())) > 1  # the store beside the settings


def _app_errors(log: Path) -> str:
    """The bundle's log without what Kivy reports of optional parts this machine lacks
    (multitouch devices' libmtdev, xclip and xsel for the clipboard)."""
    text = log.read_text(errors="replace")
    optional = ("libmtdev", "MTDev", "xclip", "xsel")
    blocks = text.split("Traceback")
    kept = [blocks[0]] + [
        "Traceback" + block for block in blocks[1:] if not any(o in block for o in optional)
    ]
    return "".join(kept)
