"""``RuntimeConfig``: switches that can be flipped on a running node."""

from __future__ import annotations

from typing import final

import attrs


@final
@attrs.define
class RuntimeConfig:
    """Switches that can be flipped while running (openraft ``runtime_config``)."""

    tick: bool = True
    heartbeat: bool = True
    elect: bool = True
