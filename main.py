"""Android's entry point (buildozer.spec: python-for-android runs ``main.py``): ``outpost app``.

On Android the profile goes to the app's private folder (platformdirs knows it) and there is
no command line; on a desktop, ``outpost app`` or the bundle (``make bundle``) is the way in.
"""

import sys

from outpost.cli import app_main

if __name__ == "__main__":
    sys.exit(app_main([]))
