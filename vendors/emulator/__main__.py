"""``python -m vendors.emulator [--port P] [knobs]``: a RunningHub emulator in the foreground."""

from __future__ import annotations

import sys

from vendors.emulator.server import main

if __name__ == "__main__":
    sys.exit(main())
