"""The ordered event trace of a simulation, its hash, and the timeline views.

Every event is a tuple ``(time, kind, *fields)`` with ``time`` in virtual seconds since the
run started. The trace hash is SHA-256 over the events' reprs, in order: one seed always
gives the same hash, and any difference in what happened, or in what order, changes it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TextIO


class Trace:
    def __init__(self, keep: bool) -> None:
        self._hash = hashlib.sha256()
        self.keep = keep
        self.events: list[tuple[Any, ...]] = []
        self.count = 0

    def add(self, event: tuple[Any, ...]) -> None:
        self.count += 1
        self._hash.update(repr(event).encode())
        if self.keep:
            self.events.append(event)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def write_jsonl(self, out: TextIO) -> None:
        for e in self.events:
            out.write(json.dumps({"t": e[0], "kind": e[1], "data": [_plain(x) for x in e[2:]]}))
            out.write("\n")


def _plain(x: Any) -> Any:
    if x is None or isinstance(x, bool | int | float | str):
        return x
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return str(x)
