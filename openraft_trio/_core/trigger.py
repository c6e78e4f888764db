"""``Trigger``: ask a node to do something now (``await raft.trigger.elect()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from .._errors import InvalidRequest, short_repr
from .api_calls import (
    TriggerElect,
    TriggerHeartbeat,
    TriggerPurge,
    TriggerSnapshot,
    TriggerTransferLeader,
)

if TYPE_CHECKING:
    from .handle import Raft


@final
class Trigger:
    """Ask the node to do something now: ``await raft.trigger.elect()``."""

    def __init__(self, raft: Raft) -> None:
        self._raft = raft

    async def elect(self) -> None:
        """Start an election at once (a pre-vote round first, if enabled).

        Does nothing on the leader, on a learner, or while this node heard from a live
        leader within the lease (or started less than a lease ago): leader stickiness binds
        the node's own vote. Use ``transfer_leader`` to move leadership on purpose.
        """
        await self._raft._send(TriggerElect())

    async def heartbeat(self) -> None:
        """Make the leader send a heartbeat to every target now."""
        await self._raft._send(TriggerHeartbeat())

    async def snapshot(self) -> None:
        """Build a snapshot of everything applied now (then purge per the config)."""
        await self._raft._send(TriggerSnapshot())

    async def purge_log(self, upto: int) -> None:
        """Purge log entries up to index ``upto``, never beyond the latest snapshot."""
        if not isinstance(upto, int) or isinstance(upto, bool):
            raise InvalidRequest(f"purge_log(upto) takes a log index, got {short_repr(upto)}")
        await self._raft._send(TriggerPurge(upto))

    async def transfer_leader(self, to: int) -> None:
        """Hand leadership to voter ``to`` (leader only; otherwise nothing happens).

        The leader stops accepting writes (they raise ``ForwardToLeader(to)``), brings
        ``to`` up to date, then tells it to campaign at once; if ``to`` has not taken over
        within ``election_timeout_max`` the leader accepts writes again. From the start of
        the transfer to the end of its term the leader serves ``LEASE_READ`` as
        ``READ_INDEX`` (the target may be let through every follower's lease).

        Returns once the leader has started the transfer (not when ``to`` leads: watch
        ``raft.wait(timeout).current_leader(to)`` for that).

        Raises:
            NotAVoter: ``to`` is not a voter of the leader's effective membership (a
                learner, or an unknown id); raised at once, and nothing changed.
        """
        if not isinstance(to, int) or isinstance(to, bool):
            raise InvalidRequest(f"transfer_leader(to) takes a node id, got {short_repr(to)}")
        await self._raft._call(lambda responder: TriggerTransferLeader(to, responder))
