"""``open_cluster``: an in-process cluster of real ``open_raft`` nodes on a ``Router``."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, final

import trio

from .._config import Config
from .._core.handle import Raft
from .._core.signals import Wakeup
from .._errors import WaitTimeout
from .._nursery import background_nursery
from .._open import open_raft
from .._types import Node, ServerState
from ..kv import KvStateMachine
from ..storage import FileSystem, MemLogStore, open_file_log_store
from ._router import Router
from .crashfs import CrashFS, SimulatedCrash


@final
class Cluster:
    """A running test cluster.

    Attributes:
        nodes: node id -> ``Raft`` handle of every running node.
        state_machines: node id -> its state machine (``KvStateMachine`` by default).
        log_stores: node id -> its ``MemLogStore`` (kept across crash/restart).
        router: the ``Router`` (fault injection).
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        config: Config,
        router: Router,
        seed: int,
        *,
        flush_delay: tuple[float, float] | None = None,
        clock_factory: Callable[[int], Callable[[], float]] | None = None,
        observer: Callable[[Any], None] | None = None,
        state_machine_factory: Callable[[], Any] = KvStateMachine,
        data_dir: str | None = None,
        fs: FileSystem | Callable[[int], FileSystem] | None = None,
        run_io: Any = None,
        disk_latency: tuple[float, float] | None = None,
    ) -> None:
        self._nursery = nursery
        self.disk_latency = disk_latency
        self._runners: dict[int, Any] = {}
        # With data_dir, node n keeps a FileLogStore in data_dir/node-n/log and (with the
        # default state machine factory) a durable KvStateMachine in data_dir/node-n/sm.
        self.data_dir = data_dir
        self._fs_source = fs
        self.node_fs: dict[int, FileSystem | None] = {}
        self.run_io = run_io
        self.state_machine_factory = state_machine_factory
        self.config = config
        self.router = router
        self.seed = seed
        # With flush_delay, log stores acknowledge appends only when a per-node flusher
        # task flushes them (after a random delay in that range), and crash() loses what
        # was not flushed yet — the durability model of a real disk.
        self.flush_delay = flush_delay
        self.clock_factory = clock_factory
        self.observer = observer
        self.rng = random.Random(f"cluster-{seed}")
        self.nodes: dict[int, Raft] = {}
        self.state_machines: dict[int, Any] = {}
        self.log_stores: dict[int, Any] = {}
        self._scopes: dict[int, trio.CancelScope] = {}
        self._exited: dict[int, trio.Event] = {}
        self._starts = 0

    @property
    def node_ids(self) -> list[int]:
        """The ids of the nodes, sorted."""
        return sorted(self.nodes)

    async def start(self, node_id: int) -> Raft:
        """Start (or restart) ``node_id`` with its log store; a fresh state machine."""
        if node_id in self.nodes:
            raise ValueError(f"node {node_id} is already running")
        durable_sm = False
        if self.data_dir is not None:
            store: Any = None  # opened by the node's task (a FileLogStore)
            fs = self._node_fs(node_id)
            run_io = self._node_runner(node_id, fs)
            if self.state_machine_factory is KvStateMachine:
                durable_sm = True
                sm = KvStateMachine(
                    snapshot_dir=os.path.join(self.data_dir, f"node-{node_id}", "sm"),
                    fs=fs,
                    **({} if run_io is None else {"run_io": run_io}),
                )
            else:
                sm = self.state_machine_factory()
        else:
            store = self.log_stores.setdefault(
                node_id, MemLogStore("manual" if self.flush_delay else "immediate")
            )
            sm = self.state_machine_factory()
        previous = self.state_machines.get(node_id)
        if previous is not None and not durable_sm:
            # Restart = latest snapshot (as if kept on disk) + replay of the log after it.
            snapshot = await previous.get_current_snapshot()
            if snapshot is not None:
                await sm.install_snapshot(snapshot.meta, snapshot.data)
        self.state_machines[node_id] = sm
        self._starts += 1
        rng = random.Random(f"{self.seed}-{node_id}-{self._starts}")
        raft: Raft = await self._nursery.start(self._run_node, node_id, store, sm, rng)
        self.nodes[node_id] = raft
        self.router.add(node_id, raft)
        return raft

    async def _run_node(
        self, node_id: int, store: Any, sm: Any, rng: random.Random,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        exited = trio.Event()
        self._exited[node_id] = exited
        try:
            with trio.CancelScope() as scope:
                self._scopes[node_id] = scope
                if store is None:
                    assert self.data_dir is not None
                    try:
                        async with open_file_log_store(
                            os.path.join(self.data_dir, f"node-{node_id}", "log"),
                            fs=self.node_fs.get(node_id),
                            run_io=self._runners.get(node_id, self.run_io),
                        ) as file_store:
                            self.log_stores[node_id] = file_store
                            await self._serve_node(node_id, file_store, sm, rng, task_status)
                    except* SimulatedCrash:
                        # crash() pulled the plug on this node's CrashFS: every write after
                        # that point failed, as after a power cut. Anything else is a bug.
                        if node_id in self.nodes:
                            raise
                else:
                    await self._serve_node(node_id, store, sm, rng, task_status)
        finally:
            exited.set()

    def _node_runner(self, node_id: int, fs: FileSystem | None) -> Any:
        """The node's I/O runner: with ``disk_latency`` and a CrashFS, every I/O call is
        issued at once but its fsyncs complete only after a random delay, so a power cut
        (crash) can land while they are in flight."""
        if self.disk_latency is None or not isinstance(fs, CrashFS):
            return self.run_io
        lo, hi = self.disk_latency
        rng = self.rng
        fs.defer_syncs = True

        async def run_io(fn: Callable[[], Any]) -> Any:
            result = fn()
            await trio.sleep(rng.uniform(lo, hi))
            fs.complete_syncs()
            return result

        self._runners[node_id] = run_io
        return run_io

    def _node_fs(self, node_id: int) -> FileSystem | None:
        fs = self.node_fs.get(node_id)
        if fs is None and self._fs_source is not None:
            fs = self._fs_source(node_id) if callable(self._fs_source) else self._fs_source
            self.node_fs[node_id] = fs
        return fs

    async def _serve_node(
        self, node_id: int, store: Any, sm: Any, rng: random.Random, task_status: Any
    ) -> None:
        async with open_raft(
            node_id,
            self.config,
            network=self.router.factory(node_id),
            log_store=store,
            state_machine=sm,
            rng=rng,
            clock=self.clock_factory(node_id) if self.clock_factory else None,
            observer=self.observer,
        ) as raft:
            task_status.started(raft)
            if self.flush_delay is None:
                await trio.sleep_forever()
            await self._flusher(node_id, store, rng)

    async def _flusher(self, node_id: int, store: MemLogStore, rng: random.Random) -> None:
        """The node's "disk": makes appended entries durable after a random delay. A vote
        write raises ``Cancelled`` if its caller's scope is cancelled, as a real write
        waiting for its fsync would, and otherwise neither yields nor takes time: a
        latency there would delay every election (and with it the stale reads the
        simulator must be able to provoke), a yield would change every schedule."""
        assert self.flush_delay is not None
        lo, hi = self.flush_delay
        pending = Wakeup()
        store.on_unflushed = pending.set
        store.vote_write_latency = trio.lowlevel.checkpoint_if_cancelled
        try:
            while True:
                if not store.pending_flush_count:
                    await pending.wait()
                    continue
                await trio.sleep(rng.uniform(lo, hi))
                store.flush()
        finally:
            store.on_unflushed = None
            store.vote_write_latency = None

    async def crash(self, node_id: int) -> None:
        """Stop ``node_id`` abruptly, as a process crash: its tasks are cancelled, pending
        calls fail with ``Stopped``. Its log store keeps what was durable (log, vote) for
        ``restart``; with ``flush_delay`` set, appends not yet flushed are lost."""
        self.router.remove(node_id)
        self.nodes.pop(node_id)
        fs = self.node_fs.get(node_id)
        if isinstance(fs, CrashFS):
            fs.crash_at = fs.op_count  # power cut: no write from now on reaches the disk
        self._scopes.pop(node_id).cancel()
        await self._exited[node_id].wait()
        store = self.log_stores[node_id]
        if isinstance(store, MemLogStore) and store.flush_mode == "manual":
            store.crash()
        if isinstance(fs, CrashFS):
            # What the disk holds after the power cut: each file keeps a random prefix of
            # the bytes written since its last fsync (nothing, a torn record, or all).
            self.node_fs[node_id] = fs.crash(rng=self.rng)

    def wipe(self, node_id: int) -> None:
        """Lose all of a crashed node's storage — log, vote, committed index, state machine —
        as after a disk replacement: its next ``restart`` starts empty under the same id.

        Raises:
            ValueError: the node is running, or its storage is a custom ``fs`` (only
                in-memory stores and real ``data_dir`` directories can be wiped).
        """
        if node_id in self.nodes:
            raise ValueError(f"node {node_id} is running: crash() it first")
        if self.data_dir is not None:
            if self._fs_source is not None:
                raise ValueError("wipe() supports in-memory stores and real data_dir only")
            shutil.rmtree(os.path.join(self.data_dir, f"node-{node_id}"), ignore_errors=True)
        self.log_stores.pop(node_id, None)
        self.state_machines.pop(node_id, None)

    async def restart(self, node_id: int) -> Raft:
        """Bring a crashed node back, as after a process restart."""
        return await self.start(node_id)

    def leader_id(self) -> int | None:
        """The node that is leader with the highest term right now, if any."""
        best: tuple[int, int] | None = None
        for nid in sorted(self.nodes):
            mtr = self.nodes[nid].metrics
            if mtr.state == ServerState.LEADER and (best is None or mtr.current_term > best[0]):
                best = (mtr.current_term, nid)
        return None if best is None else best[1]

    async def wait_for_leader(self, timeout: float = 10.0) -> int:
        """Wait until some node leads and has committed its blank entry; return its id."""
        with trio.move_on_after(timeout):
            while True:
                lid = self.leader_id()
                if lid is not None:
                    mtr = self.nodes[lid].metrics
                    if mtr.committed is not None and mtr.committed.term == mtr.current_term:
                        return lid
                await trio.sleep(0.005)
        raise WaitTimeout(f"no leader within {timeout}s")

    async def wait_applied(self, index: int, timeout: float = 10.0, nodes: Any = None) -> None:
        """Wait until every (given) running node has applied ``index``."""
        for nid in sorted(nodes if nodes is not None else self.nodes):
            await self.nodes[nid].wait(timeout).applied_index_at_least(index)


@asynccontextmanager
async def open_cluster(
    n: int,
    *,
    config: Config | None = None,
    seed: int = 0,
    initialize: bool = True,
    flush_delay: tuple[float, float] | None = None,
    clock_factory: Callable[[int], Callable[[], float]] | None = None,
    observer: Callable[[Any], None] | None = None,
    state_machine_factory: Callable[[], Any] = KvStateMachine,
    data_dir: str | os.PathLike[str] | None = None,
    fs: FileSystem | Callable[[int], FileSystem] | None = None,
    run_io: Any = None,
    disk_latency: tuple[float, float] | None = None,
) -> AsyncIterator[Cluster]:
    """Start ``n`` nodes (ids 1..n) on a seeded ``Router``; initialize them as one cluster.

    Args:
        flush_delay: model a disk: appends become durable (and acknowledged) only after a
            random delay in this range, and ``crash()`` loses unflushed appends.
        clock_factory: ``node_id -> clock`` for per-node protocol time (clock skew).
        observer: called with each node's RaftCore after every core round.
        state_machine_factory: makes each node's state machine (at every (re)start).
        data_dir: durable nodes: node ``n`` keeps a ``FileLogStore`` in
            ``data_dir/node-n/log`` and (with the default factory) a durable
            ``KvStateMachine`` in ``data_dir/node-n/sm``; a restart reads both back.
        fs: the file system of the durable nodes, or ``node_id -> FileSystem`` (one
            ``CrashFS`` per node: then ``crash()`` is a power cut that keeps a random
            prefix of each file's unsynced bytes).
        run_io: passed to ``open_file_log_store`` and the durable state machine (e.g.
            ``run_inline``, or a runner that sleeps to model fsync latency).
        disk_latency: with a ``CrashFS`` per node: each I/O call's fsyncs take effect a
            random delay in this range after it is issued (a crash in between loses them).

    Leaving the block stops every node. An exception the body raises comes out as itself; a
    node that fails (its ``open_raft`` raised ``Fatal``) cancels the body and its ``Fatal``
    comes out (docs/guide.md, "Errors out of ``async with``").
    """
    config = (config or Config(cluster_name="test")).validate()
    async with background_nursery() as nursery:
        router = Router(seed)
        router.snapshot_chunk_size = config.snapshot_max_chunk_size
        router.attach(nursery)
        cluster = Cluster(
            nursery, config, router, seed,
            flush_delay=flush_delay, clock_factory=clock_factory, observer=observer,
            state_machine_factory=state_machine_factory,
            data_dir=None if data_dir is None else os.fspath(data_dir), fs=fs, run_io=run_io,
            disk_latency=disk_latency,
        )
        for nid in range(1, n + 1):
            await cluster.start(nid)
        if initialize:
            members = {nid: Node(f"node-{nid}") for nid in range(1, n + 1)}
            await cluster.nodes[1].initialize(members)
        try:
            yield cluster
        finally:
            nursery.cancel_scope.cancel()
