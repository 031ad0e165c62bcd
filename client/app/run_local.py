"""``make run``: the backend on the embedded defaults, and the app signed in to a demo
account on it, so a newcomer sees a working board within a minute.

Starts ``outpost backend`` in the background (data in ``outpost-data/``, its log there
too) unless one already answers on http://127.0.0.1:8000, waits for ``/v1/sync/info``, runs
``outpost app --demo`` in the foreground, and stops the backend it started when the app
closes (or on Ctrl-C).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SERVER = "http://127.0.0.1:8000"
DATA_DIR = Path("outpost-data")
START_TIMEOUT_S = 60


def answers(server: str) -> bool:
    try:
        with urllib.request.urlopen(f"{server}/v1/sync/info", timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_backend() -> subprocess.Popen[bytes]:
    DATA_DIR.mkdir(exist_ok=True)
    log = (DATA_DIR / "backend.log").open("ab")
    command = [sys.executable, "-m", "outpost", "backend", "--data-dir", str(DATA_DIR)]
    backend = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child has its own copy
    print(f"outpost: starting the backend (log: {DATA_DIR / 'backend.log'})", flush=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(SERVER):
        if backend.poll() is not None:
            raise SystemExit(f"outpost: the backend exited ({backend.returncode}); see its log")
        if time.monotonic() > deadline:
            stop(backend)
            raise SystemExit(f"outpost: the backend did not answer in {START_TIMEOUT_S}s")
        time.sleep(0.2)
    return backend


def stop(backend: subprocess.Popen[bytes]) -> None:
    if backend.poll() is None:
        backend.terminate()  # SIGTERM: the backend stops its nats-server too
        try:
            backend.wait(30)
        except subprocess.TimeoutExpired:
            backend.kill()
            backend.wait()


def main() -> int:
    backend = None if answers(SERVER) else start_backend()
    if backend is None:
        print(f"outpost: using the backend already running on {SERVER}", flush=True)
    app = subprocess.Popen([sys.executable, "-m", "outpost", "app", "--server", SERVER, "--demo"])
    try:
        return app.wait()
    except KeyboardInterrupt:  # the app had the Ctrl-C too: it closes (and saves) itself
        try:
            app.wait(15)
        except subprocess.TimeoutExpired:
            app.kill()
        return 130
    finally:
        if backend is not None:
            print("outpost: stopping the backend", flush=True)
            stop(backend)


if __name__ == "__main__":
    raise SystemExit(main())
