"""Consecutive log entries for driving a state machine in tests."""

from __future__ import annotations

from typing import Any

from openraft_trio import Blank, Entry, LeaderId, LogId, MembershipChange, Normal
from openraft_trio.kv import KvStateMachine


def log_id(term: int, index: int, node_id: int = 1) -> LogId:
    return LogId(LeaderId(term, node_id), index)


class Log:
    """Builds consecutive entries for a state machine."""

    def __init__(self, term: int = 1) -> None:
        self.term = term
        self.next_index = 1

    def entry(self, payload: Any) -> Entry:
        if not isinstance(payload, Blank | MembershipChange):
            payload = Normal(payload)
        entry = Entry(log_id(self.term, self.next_index), payload)
        self.next_index += 1
        return entry


async def apply(sm: KvStateMachine, log: Log, *payloads: Any) -> list[Any]:
    return await sm.apply([log.entry(p) for p in payloads])
