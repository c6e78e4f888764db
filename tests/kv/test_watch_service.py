"""Watches end to end on an in-process cluster under MockClock: the ``watch`` operation of
KvService (long poll, leader only, arguments) and ``KvClient.watch`` through leader
transfers, a leader crash, a reconnect and a compacted history — the events a client sees
are exactly the changes of the log, in log order, each once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from openraft_trio import ForwardToLeader, InvalidRequest
from openraft_trio.kv import (
    AmbiguousOutcome,
    ChangeKind,
    KvClient,
    KvStateMachine,
    KvWatch,
    WatchCompacted,
    WatchEvent,
)
from openraft_trio.testing import Cluster, open_cluster

from ._in_process_client import open_in_process_client, service

PUT, DELETE = ChangeKind.PUT, ChangeKind.DELETE


async def log_changes(cluster: Cluster, node_id: int, prefix: str, upto: int) -> list[WatchEvent]:
    """The changes to ``prefix`` keys in ``node_id``'s log up to index ``upto``, found by
    applying its entries to a fresh state machine."""
    entries = await cluster.log_stores[node_id].try_get_log_entries(0, upto + 1)
    assert [e.log_id.index for e in entries] == list(range(upto + 1))
    replay = KvStateMachine(watch_history=upto + 1)
    await replay.apply(entries)
    events, _ = replay.history.read(prefix, 0, 1000, upto)
    return events


async def consume(watch: KvWatch, seen: list[WatchEvent]) -> None:
    async for event in watch:
        seen.append(event)


async def wait_until_watched(cluster: Cluster, watch: KvWatch) -> int:
    """Wait until ``watch`` has passed everything the leader applied; that index."""
    leader = await cluster.wait_for_leader()
    applied = cluster.state_machines[leader].last_applied  # acknowledged writes included
    assert applied is not None
    # A client attribute has no event to wait on: poll it.
    while watch.next_index is None or watch.next_index <= applied.index:  # noqa: ASYNC110
        await trio.sleep(0.05)
    return applied.index


class Writes:
    """Writes with unique values through a client: the acknowledged ones by log index, the
    ambiguous ones by value."""

    def __init__(self, client: KvClient) -> None:
        self.client = client
        self.acknowledged: dict[int, tuple[str, ChangeKind, Any]] = {}
        self.ambiguous: set[Any] = set()

    async def write(self, op: str, key: str, *args: Any) -> None:
        try:
            reply = await self.client.leader_call(op, key, *args, idempotent=False)
        except AmbiguousOutcome:
            self.ambiguous.add(args[-1] if args else None)
            return
        if op == "put":
            self.acknowledged[reply["index"]] = (key, PUT, args[0])
        elif op == "cas" and reply["swapped"]:
            self.acknowledged[reply["index"]] = (key, PUT, args[1])
        elif op == "delete" and reply["prev"] is not None:
            self.acknowledged[reply["index"]] = (key, DELETE, None)

    async def some(self, count: int, start: int = 0) -> None:
        """``count`` writes: puts to ``user:`` and ``job:`` keys, swaps and deletes."""
        for i in range(start, start + count):
            key = f"user:{i % 5}"
            if i % 4 == 3:
                await self.write("put", f"job:{i}", f"v{i}")
            elif i % 6 == 5:
                await self.write("delete", key)
            elif i % 6 == 4:
                await self.write("cas", key, f"v{i - 1}", f"v{i}")
            else:
                await self.write("put", key, f"v{i}")

    def check(self, seen: list[WatchEvent], prefix: str) -> None:
        """Every acknowledged change to a ``prefix`` key was seen; everything else seen is
        an ambiguous write that took effect."""
        got = {e.index: (e.key, e.kind, e.value) for e in seen}
        for index, change in self.acknowledged.items():
            if change[0].startswith(prefix):
                assert got.get(index) == change
        for index, (_, _, value) in got.items():
            if index not in self.acknowledged:
                assert value in self.ambiguous or value is None


@attrs.define
class Watching:
    """A 3-node cluster, a writer and a watch from index 0 whose events go to ``seen``."""

    cluster: Cluster
    writes: Writes
    watcher: KvClient
    watch: KvWatch
    seen: list[WatchEvent] = attrs.Factory(list)


@asynccontextmanager
async def watching(
    monkeypatch: pytest.MonkeyPatch, seed: int, prefix: str
) -> AsyncIterator[Watching]:
    """Watch ``prefix`` while the body writes and fails nodes; then check that the watch
    saw exactly the changes of the log, in order, each once, and every acknowledged one."""
    async with (
        open_cluster(3, seed=seed) as c,
        open_in_process_client(c, monkeypatch) as writer,
        open_in_process_client(c, monkeypatch) as watcher,
    ):
        await c.wait_for_leader()
        w = Watching(c, Writes(writer), watcher, watcher.watch(prefix, from_index=0))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, w.watch, w.seen)
            yield w
            upto = await wait_until_watched(c, w.watch)
            nursery.cancel_scope.cancel()
        indexes = [e.index for e in w.seen]
        assert indexes == sorted(set(indexes))  # log order, no duplicates
        assert w.seen == await log_changes(c, await c.wait_for_leader(), prefix, upto)  # no gaps
        w.writes.check(w.seen, prefix)


async def test_a_watch_sees_each_change_once_across_leader_transfers(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with watching(monkeypatch, 5, "user:") as w:
        c = w.cluster
        leaders = {await c.wait_for_leader()}
        for round_ in range(3):
            await w.writes.some(20, start=20 * round_)
            # Hand the leadership on while the watch is polling the leader.
            leader = await c.wait_for_leader()
            successor = next(n for n in c.node_ids if n != leader)
            await c.nodes[leader].trigger.transfer_leader(successor)
            await c.nodes[successor].wait(10).current_leader(successor)
            leaders.add(successor)
        await w.writes.some(20, start=60)
    assert len(leaders) >= 2
    assert len(w.seen) > 40


async def test_a_watch_continues_on_a_new_leader_when_the_leader_crashes(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with watching(monkeypatch, 6, "") as w:
        c = w.cluster
        await w.writes.some(15)
        old = await c.wait_for_leader()
        while w.watcher.leader_addr is None:  # noqa: ASYNC110 (until the watch found it)
            await trio.sleep(0.01)
        await c.crash(old)
        await w.writes.some(15, start=15)
        await c.restart(old)
        await w.writes.some(15, start=30)
        assert c.nodes[await c.wait_for_leader()].metrics.current_term > 1  # a new leader
    assert len(w.seen) > 30


async def test_a_new_watch_resumes_after_the_last_event_seen(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cluster(3, seed=7) as c, open_in_process_client(c, monkeypatch) as client:
        await c.wait_for_leader()
        writes = Writes(client)
        await writes.some(24)
        seen: list[WatchEvent] = []
        first = client.watch("user:", from_index=0, max_events=4)
        async for event in first:
            seen.append(event)
            if len(seen) == 6:  # in the middle of the second batch
                break
        assert first.next_index == seen[-1].index + 1
        # Another connection (another client), later, from where the first one stopped.
        async with open_in_process_client(c, monkeypatch) as other:
            second = other.watch("user:", from_index=first.next_index)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume, second, seen)
                await writes.some(6, start=24)
                upto = await wait_until_watched(c, second)
                nursery.cancel_scope.cancel()
        assert seen == await log_changes(c, await c.wait_for_leader(), "user:", upto)


async def test_a_watch_from_now_sees_only_later_changes(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cluster(3, seed=8) as c, open_in_process_client(c, monkeypatch) as client:
        await client.put("k", "before")  # in a client session, like the writes below
        applied = c.state_machines[await c.wait_for_leader()].last_applied
        assert applied is not None
        watch = client.watch("k")
        assert watch.next_index is None
        async with trio.open_nursery() as nursery:
            seen: list[WatchEvent] = []
            nursery.start_soon(consume, watch, seen)
            await trio.sleep(5)  # a few empty polls
            assert seen == []
            assert watch.next_index == applied.index + 1
            await client.put("k", "after")
            await client.delete("k")
            await wait_until_watched(c, watch)
            nursery.cancel_scope.cancel()
        assert [(e.key, e.kind, e.value) for e in seen] == [("k", PUT, "after"), ("k", DELETE, None)]
        assert applied.index < seen[0].index < seen[1].index


async def test_a_compacted_watch_names_the_oldest_index_and_resumes_from_a_read(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        open_cluster(3, seed=9, state_machine_factory=lambda: KvStateMachine(watch_history=2)) as c,
        open_in_process_client(c, monkeypatch) as client,
    ):
        indexes = [(await client.write("put", f"k{i}", i))["index"] for i in range(4)]
        with pytest.raises(WatchCompacted) as info:
            await client.watch("k", from_index=indexes[0]).__anext__()
        # The last two changes are held.
        assert (info.value.from_index, info.value.oldest_index) == (indexes[0], indexes[2])
        # What the client does: read the state, then watch from the oldest index held.
        assert [await client.get(f"k{i}") for i in range(4)] == [0, 1, 2, 3]
        watch = client.watch("k", from_index=info.value.oldest_index)
        assert [await watch.__anext__(), await watch.__anext__()] == [
            WatchEvent(indexes[2], "k2", PUT, 2),
            WatchEvent(indexes[3], "k3", PUT, 3),
        ]


async def test_the_watch_op_waits_for_a_change_or_answers_empty(autojump_clock: Any) -> None:
    async with open_cluster(3, seed=3) as c:
        leader = await c.wait_for_leader()
        kv = service(c, leader)
        await kv.handle("put", ["a", 1])  # index 2
        assert await kv.handle("watch", ["a", 0]) == {"events": [[2, "a", "put", 1]], "next": 3}
        # Nothing matches from 3 on: after ``wait`` seconds, an empty batch and where to go on.
        await kv.handle("put", ["b", 1])  # index 3
        start = trio.current_time()
        assert await kv.handle("watch", ["a", 3, 10, 2.0]) == {"events": [], "next": 4}
        assert trio.current_time() - start == pytest.approx(2.0)
        # A change that arrives while the call waits ends the wait.
        async with trio.open_nursery() as nursery:
            replies: list[Any] = []

            async def watch() -> None:
                replies.append(await kv.handle("watch", ["a", 4, 10, 30.0]))

            nursery.start_soon(watch)
            await trio.sleep(1)
            await kv.handle("cas", ["a", 1, 2])  # index 4
        assert replies == [{"events": [[4, "a", "put", 2]], "next": 5}]
        # None: from after what the leader has applied.
        assert await kv.handle("watch", ["", None, 10, 0]) == {"events": [], "next": 5}


async def test_only_the_leader_serves_watches(autojump_clock: Any) -> None:
    async with open_cluster(3, seed=4) as c:
        leader = await c.wait_for_leader()
        follower = next(n for n in c.node_ids if n != leader)
        await c.nodes[follower].wait(5).current_leader(leader)
        with pytest.raises(ForwardToLeader) as info:
            await service(c, follower).handle("watch", ["", 0])
        assert info.value.leader_id == leader
        # A leader that hands over while a watch waits answers ForwardToLeader too.
        kv = service(c, leader)
        async with trio.open_nursery() as nursery:
            outcome: list[BaseException] = []

            async def watch() -> None:
                try:
                    await kv.handle("watch", ["", 10, 10, 30.0])
                except ForwardToLeader as e:
                    outcome.append(e)

            nursery.start_soon(watch)
            await trio.sleep(0.5)
            await c.nodes[leader].trigger.transfer_leader(follower)
        assert len(outcome) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([5], "prefix is a str"),
        (["", -1], "from_index must be None or a log index"),
        (["", 1.5], "from_index must be None or a log index"),
        (["", 0, 0], "max_events must be an int"),
        (["", 0, 10, "soon"], "wait must be seconds"),
        (["", 0, 10, 1.0, "extra"], "watch takes 1 to 4 arguments, got 5"),
        ([], "watch takes 1 to 4 arguments, got 0"),
    ],
)
async def test_bad_watch_arguments_are_refused(
    autojump_clock: Any, args: list[Any], message: str
) -> None:
    async with open_cluster(3, seed=3) as c:
        kv = service(c, await c.wait_for_leader())
        with pytest.raises(InvalidRequest, match=message):
            await kv.handle("watch", args)


async def test_the_client_refuses_bad_watch_arguments_before_sending(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_cluster(1, seed=3) as c, open_in_process_client(c, monkeypatch) as client:
        for kwargs in (
            {"prefix": 5},
            {"prefix": "", "from_index": -1},
            {"prefix": "", "max_events": 0},
        ):
            with pytest.raises(InvalidRequest):
                client.watch(**kwargs)
