"""``python -m openraft_trio.testing.sim``: see ``_cli.py`` and ``docs/simulator.md``."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
