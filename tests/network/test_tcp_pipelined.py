"""The TCP transport's pipelined AppendEntries (``TcpNetwork.send_append_entries``).

Most tests replace the factory's channels to node 2 with ones whose connection is a memory
stream to a :class:`FakePeer` the test drives frame by frame, under the autojump clock:
order, reply matching, and every way a call ends (reply, timeout, connection loss, close,
remote error), each callback exactly once. One test speaks to a real node over loopback.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import openraft_trio as raft
from openraft_trio import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Entry,
    LeaderId,
    LogId,
    Node,
    Normal,
    RPCOption,
    Vote,
)
from openraft_trio.network import PipelinedAppend, RaftNetwork
from openraft_trio.network import _wire as wire
from openraft_trio.network._client import RpcChannel
from openraft_trio.network._conn import ConnectionClosed, FramedStream
from openraft_trio.network.tcp import (
    CONTROL,
    DATA,
    NodeStopped,
    TcpNetwork,
    TcpNetworkFactory,
    open_tcp_network,
)

from ._tcp_nodes import CONFIG, run_node

ADDR = "peer.invalid:7002"
TTL = RPCOption(hard_ttl=5.0)
VOTE = Vote(LeaderId(1, 1), committed=True)
Outcome = AppendEntriesResponse | raft.RPCError


def append_req(index: int) -> AppendEntriesRequest:
    """An append of entry ``index`` after ``index - 1`` (tells requests apart)."""
    prev = LogId(LeaderId(1, 1), index - 1)
    entry = Entry(LogId(LeaderId(1, 1), index), Normal(index))
    return AppendEntriesRequest(VOTE, prev, (entry,), None)


HEARTBEAT = AppendEntriesRequest(VOTE, None, (), None)


def matching(req: AppendEntriesRequest) -> AppendEntriesResponse:
    last = req.entries[-1].log_id if req.entries else None
    return AppendEntriesResponse(VOTE, True, last)


@attrs.define(eq=False)
class FakePeer:
    """The far end of the memory connections: records the requests, replies on demand."""

    nursery: trio.Nursery
    requests: list[tuple[str, int, Any]] = attrs.Factory(list)
    lanes: list[str] = attrs.Factory(list)  # the lane of each request
    conns: dict[str, FramedStream] = attrs.Factory(dict)
    arrived: trio.Event = attrs.Factory(trio.Event)

    def accept(self, lane: str, stream: trio.abc.Stream) -> None:
        conn = FramedStream(stream)
        self.conns[lane] = conn
        self.nursery.start_soon(self._serve, lane, conn)

    async def _serve(self, lane: str, conn: FramedStream) -> None:
        async def read(_nursery: trio.Nursery) -> None:
            while True:
                for frame in await conn.receive_frames():
                    self.requests.append(wire.decode_message(frame))
                    self.lanes.append(lane)
                    self.arrived.set()

        with contextlib.suppress(ConnectionClosed, trio.ClosedResourceError):
            await conn.run(read)  # until either end closes the connection

    async def wait_requests(self, count: int) -> None:
        while len(self.requests) < count:
            self.arrived = trio.Event()
            await self.arrived.wait()

    def reply(self, rid: int, kind: str, body: Any, lane: str = DATA) -> None:
        self.conns[lane].send_nowait(wire.encode_message(kind, rid, body))


class MemoryChannel(RpcChannel):
    """An :class:`RpcChannel` whose connections are memory streams to a :class:`FakePeer`
    (no handshake)."""

    def __init__(self, peer: FakePeer, lane: str, factory: TcpNetworkFactory) -> None:
        super().__init__(
            factory.nursery,
            ADDR,
            wire.Hello(CONFIG.cluster_name, "raft", 1, 2),
            max_frame_size=factory.max_frame_size,
            stats=factory.stats,
        )
        self.peer = peer
        self.lane = lane

    async def _connect(self) -> FramedStream:
        ours, theirs = trio.testing.memory_stream_pair()
        self.peer.accept(self.lane, theirs)
        return FramedStream(ours, max_frame_size=self.max_frame_size)


@attrs.define(eq=False)
class Setup:
    factory: TcpNetworkFactory
    client: TcpNetwork
    peer: FakePeer
    outcomes: dict[int, list[Outcome]] = attrs.Factory(dict)

    def send(self, key: int, req: AppendEntriesRequest, option: RPCOption = TTL) -> bool:
        """Send pipelined; the outcome(s) go to ``outcomes[key]``."""
        got = self.outcomes.setdefault(key, [])
        taken = self.client.send_append_entries(req, option, got.append)
        assert got == []  # never answered inside the call
        return taken

    async def connect(self) -> None:
        """Connect both lanes through the awaiting path (the peer answers)."""
        for lane, req in ((DATA, append_req(1)), (CONTROL, HEARTBEAT)):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.client.append_entries, req, TTL)
                await self.peer.wait_requests(len(self.peer.requests) + 1)
                _, rid, _ = self.peer.requests[-1]
                self.peer.reply(rid, "append_resp", matching(req), lane)
        self.peer.requests.clear()
        self.peer.lanes.clear()

    def each_once(self) -> dict[int, Outcome]:
        assert all(len(got) == 1 for got in self.outcomes.values()), self.outcomes
        return {key: got[0] for key, got in self.outcomes.items()}


@asynccontextmanager
async def pipelined(connect: bool = True) -> AsyncIterator[Setup]:
    async with open_tcp_network(1, CONFIG) as factory, trio.open_nursery() as nursery:
        peer = FakePeer(nursery)
        for lane in (CONTROL, DATA):
            factory._channels[(2, lane)] = MemoryChannel(peer, lane, factory)
        client = await factory.new_client(2, Node(ADDR))
        setup = Setup(factory, client, peer)
        if connect:
            await setup.connect()
        yield setup
        nursery.cancel_scope.cancel()


async def test_the_tcp_client_offers_the_pipelined_append() -> None:
    async with open_tcp_network(1, CONFIG) as factory:
        client = await factory.new_client(2, Node(ADDR))
        assert isinstance(client, RaftNetwork)
        assert isinstance(client, PipelinedAppend)


async def test_requests_leave_in_order_and_replies_reach_their_callbacks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined() as s:
        count = 200
        for i in range(count):
            assert s.send(i, append_req(i + 1))
        await s.peer.wait_requests(count)
        assert [req.entries[0].log_id.index for _, _, req in s.peer.requests] == [
            i + 1 for i in range(count)
        ]
        assert set(s.peer.lanes) == {DATA}
        answers = list(s.peer.requests)
        random.Random(7).shuffle(answers)  # replies come back in any order
        for _, rid, req in answers:
            s.peer.reply(rid, "append_resp", matching(req))
        await trio.sleep(1)
        outcomes = s.each_once()
        assert outcomes == {i: matching(append_req(i + 1)) for i in range(count)}
        await trio.sleep(TTL.hard_ttl * 2)  # their deadlines pass: nothing more arrives
        assert s.each_once() == outcomes


async def test_heartbeats_take_the_control_lane(autojump_clock: trio.testing.MockClock) -> None:
    async with pipelined() as s:
        assert s.send(0, append_req(1))
        assert s.send(1, HEARTBEAT)
        await s.peer.wait_requests(2)
        by_lane = {lane: r for r, lane in zip(s.peer.requests, s.peer.lanes, strict=True)}
        assert by_lane[DATA][2] == append_req(1)
        assert by_lane[CONTROL][2] == HEARTBEAT
        s.peer.reply(by_lane[CONTROL][1], "append_resp", matching(HEARTBEAT), CONTROL)
        s.peer.reply(by_lane[DATA][1], "append_resp", matching(append_req(1)), DATA)
        await trio.sleep(1)
        assert s.each_once() == {0: matching(append_req(1)), 1: matching(HEARTBEAT)}


async def test_not_connected_refuses_and_the_awaiting_path_still_works(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined(connect=False) as s:
        assert not s.send(0, append_req(1))
        assert not s.send(1, HEARTBEAT)
        await trio.sleep(TTL.hard_ttl * 2)
        assert s.outcomes == {0: [], 1: []}  # refused: never called
        assert s.peer.requests == []  # nothing sent
        await s.connect()  # append_entries dials, and works
        assert s.send(2, append_req(2))
        await s.peer.wait_requests(1)
        s.peer.reply(s.peer.requests[0][1], "append_resp", matching(append_req(2)))
        await trio.sleep(1)
        assert s.outcomes[2] == [matching(append_req(2))]


async def test_no_reply_within_hard_ttl_is_rpc_timeout_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined() as s:
        sent_at = trio.current_time()
        for i in range(10):
            assert s.send(i, append_req(i + 1), RPCOption(hard_ttl=1.0 + i))
        await s.peer.wait_requests(10)
        await trio.sleep(5.5)  # the first five expired
        assert [len(s.outcomes[i]) for i in range(10)] == [1] * 5 + [0] * 5
        assert all(isinstance(s.outcomes[i][0], raft.RPCTimeout) for i in range(5))
        assert trio.current_time() >= sent_at + 5.0
        for _, rid, req in s.peer.requests:  # late replies for all: only 5..9 take them
            s.peer.reply(rid, "append_resp", matching(req))
        await trio.sleep(20)
        outcomes = s.each_once()
        assert all(isinstance(outcomes[i], raft.RPCTimeout) for i in range(5))
        assert [outcomes[i] for i in range(5, 10)] == [
            matching(append_req(i + 1)) for i in range(5, 10)
        ]
        assert s.factory.stats.timeouts == 5
        assert s.factory.channel(2, ADDR, DATA).connected  # a timeout keeps the connection


async def test_a_lost_connection_fails_every_pending_call_with_network_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined() as s:
        for i in range(20):
            assert s.send(i, append_req(i + 1))
        assert s.send(20, HEARTBEAT)  # the other lane's connection survives
        await s.peer.wait_requests(21)
        data = [r for r, lane in zip(s.peer.requests, s.peer.lanes, strict=True) if lane == DATA]
        s.peer.reply(data[0][1], "append_resp", matching(data[0][2]))  # key 0's
        await trio.sleep(1)
        await s.peer.conns[DATA].aclose()
        await trio.sleep(1)
        outcomes = {k: v for k, v in s.outcomes.items() if k != 20}
        assert outcomes[0] == [matching(append_req(1))]
        assert all(
            len(got) == 1 and isinstance(got[0], raft.NetworkError)
            for key, got in outcomes.items()
            if key
        )
        assert s.outcomes[20] == []
        assert not s.factory.channel(2, ADDR, DATA).connected
        assert not s.send(21, append_req(22))  # reconnecting is the awaiting path's
        await trio.sleep(TTL.hard_ttl * 2)  # no timeout follows a loss
        assert all(len(got) == 1 for key, got in s.outcomes.items() if key < 20)
        assert [type(e) for e in s.outcomes[20]] == [raft.RPCTimeout]


async def test_remote_errors_map_as_for_append_entries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined() as s:
        replies = [
            ("error", wire.ErrorReply("InvalidRequest", "no")),
            ("error", wire.ErrorReply("Stopped", "stopping")),
            ("error", wire.ErrorReply("PayloadTooLarge", "big", [10, 5, "entry"])),
            ("vote_resp", raft.VoteResponse(VOTE, False, None)),  # the wrong reply
        ]
        for i in range(len(replies)):
            assert s.send(i, append_req(i + 1))
        await s.peer.wait_requests(len(replies))
        for (_, rid, _), (kind, body) in zip(s.peer.requests, replies, strict=True):
            s.peer.reply(rid, kind, body)
        await trio.sleep(1)
        outcomes = s.each_once()
        assert isinstance(outcomes[0], raft.RemoteError)
        assert outcomes[0].remote.error_type == "InvalidRequest"
        assert isinstance(outcomes[1], NodeStopped)
        assert type(outcomes[2]) is raft.Unreachable
        assert isinstance(outcomes[2].__cause__, raft.PayloadTooLarge)
        assert type(outcomes[3]) is raft.NetworkError
        assert s.factory.channel(2, ADDR, DATA).connected


async def test_closing_the_client_fails_its_pending_calls_and_refuses_new_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined() as s:
        other = await s.factory.new_client(2, Node(ADDR))
        other_got: list[Outcome] = []
        assert other.send_append_entries(append_req(99), TTL, other_got.append)
        for i in range(5):
            assert s.send(i, append_req(i + 1))
        assert s.send(5, HEARTBEAT)
        await s.peer.wait_requests(7)
        await s.client.aclose()
        outcomes = s.each_once()
        assert all(type(e) is raft.NetworkError for e in outcomes.values())
        assert "client closed" in str(outcomes[0])
        for _, rid, req in s.peer.requests:  # replies to the closed client are dropped
            s.peer.reply(rid, "append_resp", matching(req), CONTROL if req.is_heartbeat else DATA)
        await trio.sleep(TTL.hard_ttl * 2)
        assert s.each_once() == outcomes
        assert not s.send(6, append_req(7))
        await trio.sleep(TTL.hard_ttl * 2)
        assert s.outcomes[6] == []
        assert other_got == [matching(append_req(99))]  # the connection serves on


async def test_closing_the_factory_fails_pending_calls_with_network_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined() as s:
        for i in range(5):
            assert s.send(i, append_req(i + 1))
        assert s.send(5, HEARTBEAT)
        await s.peer.wait_requests(6)
        await s.factory.aclose()
        await trio.sleep(1)
        outcomes = s.each_once()
        assert all(type(e) is raft.NetworkError for e in outcomes.values())
        await trio.sleep(TTL.hard_ttl * 2)
        assert s.each_once() == outcomes


async def test_a_frame_over_max_frame_size_is_refused_and_nothing_is_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pipelined() as s:
        limit = s.factory.max_frame_size
        huge = AppendEntriesRequest(
            VOTE,
            LogId(LeaderId(1, 1), 0),
            (Entry(LogId(LeaderId(1, 1), 1), Normal("x" * limit)),),
            None,
        )
        assert not s.send(0, huge)
        with pytest.raises(raft.Unreachable):  # what the caller's fallback then gets
            await s.client.append_entries(huge, TTL)
        assert s.send(1, append_req(1))  # the connection is unaffected
        await s.peer.wait_requests(1)
        s.peer.reply(s.peer.requests[0][1], "append_resp", matching(append_req(1)))
        await trio.sleep(1)
        assert s.outcomes == {0: [], 1: [matching(append_req(1))]}


class TaskCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.spawned: list[str] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned.append(task.name)


async def test_no_task_is_started_per_request(autojump_clock: trio.testing.MockClock) -> None:
    async with pipelined() as s:
        assert s.send(-1, append_req(1))  # the channel's deadline task starts once
        await s.peer.wait_requests(1)
        counter = TaskCounter()
        trio.lowlevel.add_instrument(counter)
        try:
            for i in range(100):
                assert s.send(i, append_req(i + 2))
            await s.peer.wait_requests(101)
            for _, rid, req in s.peer.requests:
                s.peer.reply(rid, "append_resp", matching(req))
            await trio.sleep(1)
        finally:
            trio.lowlevel.remove_instrument(counter)
        assert len(s.each_once()) == 101
        assert counter.spawned == []


async def test_pipelined_appends_to_a_real_node_over_loopback() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            node = await nursery.start(run_node, 2, CONFIG)
            async with open_tcp_network(1, CONFIG) as factory:
                client = await factory.new_client(2, Node(node.addr))
                refused: list[Outcome] = []
                assert not client.send_append_entries(HEARTBEAT, TTL, refused.append)
                assert (await client.append_entries(HEARTBEAT, TTL)).success
                bad = AppendEntriesRequest(Vote(LeaderId(1, 1)), None, (), None)
                got: dict[int, list[Outcome]] = {}
                done = trio.Event()

                def on_reply(key: int, outcome: Outcome) -> None:
                    got.setdefault(key, []).append(outcome)
                    if len(got) == 11:
                        done.set()

                for i in range(10):
                    assert client.send_append_entries(HEARTBEAT, TTL, partial(on_reply, i))
                # An uncommitted vote: the node refuses it.
                assert client.send_append_entries(bad, TTL, partial(on_reply, 10))
                await done.wait()
                assert refused == []
                assert all(len(outcomes) == 1 for outcomes in got.values())
                assert all(got[i][0] == AppendEntriesResponse(VOTE, True) for i in range(10))
                assert isinstance(got[10][0], raft.RemoteError)
            nursery.cancel_scope.cancel()
