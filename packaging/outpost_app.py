"""The desktop bundle's entry point: ``outpost app`` and nothing else (``outpost-app``).

PyInstaller builds ``dist/outpost-app/`` from this script (``packaging/outpost.spec``). It
takes the flags of ``outpost app`` (``--data-dir``, ``--server``, ``--demo``) and opens the
app; with no server reachable it opens offline, as ``outpost app`` does.
"""

import sys

from outpost.cli import app_main

if __name__ == "__main__":
    sys.exit(app_main())
