"""The app as the end-to-end tests run it: ``outpost app`` with the test control added.

``python -m tests.support.app_under_test --control SOCKET [--server URL] [--data-dir DIR]``
(from the repository's root) runs the shipped ``OutpostApp`` through the shipped
``run_app``, as ``outpost app`` does, with one difference: once the app is built, the
control (``tests/support/app_control.py``) listens on ``SOCKET``. The shipped app has no
hook for it: the control exists only in this process.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.app_under_test")
    parser.add_argument("--control", required=True, help="the control's Unix socket path")
    parser.add_argument("--server")
    parser.add_argument("--data-dir")
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    from client.app.quiet import prepare_terminal

    prepare_terminal(args.verbose)  # as `outpost app`, before Kivy is imported
    from client.app.main import OutpostApp, run_app

    class AppUnderTest(OutpostApp):
        def build(self) -> Any:
            root = super().build()
            # imported only now: importing Kivy's window creates it, after run_app set it up
            from tests.support.app_control import install

            install(args.control, lambda: self.shell, self.stop)
            return root

    data_dir = Path(args.data_dir) if args.data_dir else None
    return run_app(
        args.server, data_dir, demo=args.demo, app_class=AppUnderTest, verbose=args.verbose
    )


if __name__ == "__main__":
    raise SystemExit(main())
