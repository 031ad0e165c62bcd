"""``make run``: the backend on the embedded defaults, and the app signed in to a demo
account on it, so a newcomer sees a working board within a minute.

Starts ``outpost backend`` in the background (data in ``outpost-data/``, its log there
too) unless one already answers on http://127.0.0.1:8000, waits for ``/v1/sync/info``, runs
``outpost app --demo`` in the foreground, and stops the backend it started when the app
closes (or on Ctrl-C). If the backend it started dies while the app runs, it says so at
once, with the exit code, the last lines of the backend's log and the log's path; the app
goes on offline.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from backend.launcher import BackendLauncher, LaunchError, answers

PORT = 8000
SERVER = f"http://127.0.0.1:{PORT}"
DATA_DIR = Path("outpost-data")
START_TIMEOUT_S = 60


def start_backend() -> BackendLauncher:
    launcher = BackendLauncher(DATA_DIR, port=PORT)
    print(f"outpost: starting the backend (log: {launcher.log})", flush=True)
    try:
        launcher.start(START_TIMEOUT_S)
    except LaunchError as exc:
        raise SystemExit(f"outpost: {exc}") from exc
    return launcher


def backend_died(backend: BackendLauncher) -> str | None:
    """What to tell the user if the backend has exited; None while it runs."""
    process = backend.process
    if process is None or process.poll() is None:
        return None
    tail = "\n".join(f"  {line}" for line in backend.tail(10).splitlines())
    return (
        f"outpost: the backend stopped (exit code {process.returncode}); the app goes on "
        f"offline. Why, in its log {backend.log}:\n{tail}\n"
        f"outpost: start it again with `make run` (or `outpost backend`) once fixed"
    )


def wait_for_app(
    app: subprocess.Popen[bytes], backend: BackendLauncher | None, poll_s: float = 1.0
) -> int:
    """The app's exit code; meanwhile, say once if the backend died."""
    told = False
    while True:
        try:
            return app.wait(poll_s)
        except subprocess.TimeoutExpired:
            pass
        message = None if backend is None or told else backend_died(backend)
        if message is not None:
            print(message, file=sys.stderr, flush=True)
            told = True


def main() -> int:
    backend = None if answers(SERVER) else start_backend()
    if backend is None:
        print(f"outpost: using the backend already running on {SERVER}", flush=True)
    command = [sys.executable, "-m", "outpost", "app", "--server", SERVER, "--demo"]
    app = subprocess.Popen(command + sys.argv[1:])  # e.g. --verbose
    try:
        return wait_for_app(app, backend)
    except KeyboardInterrupt:  # the app had the Ctrl-C too: it closes (and saves) itself
        try:
            app.wait(15)
        except subprocess.TimeoutExpired:
            app.kill()
        return 130
    finally:
        if backend is not None:
            print("outpost: stopping the backend", flush=True)
            with contextlib.suppress(LaunchError):
                backend.stop(30)  # SIGTERM: it stops its nats-server too


if __name__ == "__main__":
    raise SystemExit(main())
