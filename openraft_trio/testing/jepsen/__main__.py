"""``python -m openraft_trio.testing.jepsen``: see ``_cli.py`` and ``docs/kv-service.md``."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
