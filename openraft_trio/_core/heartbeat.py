"""``heartbeat[target]``: asserts leadership on its own schedule.

Separate from replication so a large batch never delays the acks that keep the leader
lease alive. A heartbeat carries only the leader's vote (no entries, no log position, no
commit index), so a transport may send it apart from the appends, and the TCP transport
does: on its own control connection, never queued behind a data frame. Each ack reports
the time its heartbeat was *sent*: the lease counts from there (PROTOCOL-NOTES
"Replication"). A triggered heartbeat (a ReadIndex round) is sent at
once, after the read arrived.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from .._config import Config
from .._errors import RPCError
from .._messages import AppendEntriesRequest
from .._types import Vote
from ..network import RaftNetwork, RPCOption
from .notifications import HeartbeatAck
from .runtime_config import RuntimeConfig
from .signals import HeartbeatTrigger, Notifier


async def heartbeat_task(
    *,
    target: int,
    vote: Vote,
    trigger: HeartbeatTrigger,
    client: RaftNetwork,
    config: Config,
    notify: Notifier,
    runtime_config: RuntimeConfig,
    clock: Callable[[], float] = trio.current_time,
) -> None:
    req = AppendEntriesRequest(vote, None, (), None)
    option = RPCOption(hard_ttl=config.election_timeout_min)
    while True:
        triggered = False
        with trio.move_on_after(config.heartbeat_interval):
            await trigger.wait()
            triggered = True
        if not triggered and not runtime_config.heartbeat:
            continue
        send_time = clock()  # the node's clock: the lease is measured in it
        read_round = trigger.read_round
        try:
            resp = await client.append_entries(req, option)
        except RPCError:
            continue
        await notify.send(HeartbeatAck(target, vote, send_time, resp.vote, read_round))
