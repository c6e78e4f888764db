"""``ticker``: drives the Engine's election and lease deadlines off trio's clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .notifications import Tick

if TYPE_CHECKING:
    from .raft_core import RaftCore


async def ticker(core: RaftCore) -> None:
    """Send a Tick when the engine's next deadline (election timeout, lease expiry) is due.

    Deadline-driven rather than periodic: a follower that hears heartbeats keeps pushing its
    election deadline back, so the ticker mostly sleeps. When a deadline moves *earlier*
    the core wakes the ticker to re-arm. Deadlines are in the node's clock; sleeping uses
    trio's, so under clock skew the ticker re-checks and sleeps again if it woke early.
    """
    notify = core.notify_tx
    min_sleep = core.config.heartbeat_interval / 50
    # A deadline still due after a tick (ticks or elections switched off at runtime) is
    # re-checked at this period, like a plain periodic ticker.
    idle_period = core.config.heartbeat_interval / 5
    while True:
        remaining = core.next_deadline - core.clock()
        if remaining > 0:
            with trio.move_on_after(max(remaining, min_sleep)):
                await core.deadline_moved_earlier.wait()
            continue
        await notify.send(Tick())
        core.wake()
        # Give the core a round to act on the tick and publish a new deadline.
        await trio.sleep(min_sleep)
        if core.next_deadline <= core.clock():
            await trio.sleep(idle_period)
