"""A cluster of KV-service nodes as real OS processes on loopback: each node is
``python -m openraft_trio serve`` in a process of its own. Used by the demo (``python -m
openraft_trio demo``) and, under its public name :mod:`openraft_trio.testing.processes`
(where the example is), by the multi-process tests, the Jepsen-style test and the TCP
benchmarks. Leaving :func:`open_process_cluster` kills every process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, final

import attrs
import trio

from .._errors import RaftError
from .._nursery import background_nursery
from ..objects._client import ObjectClient, open_object_client
from ..objects._declare import ReplicatedObject
from ._client import KvClient, open_kv_client


class ProcessClusterError(Exception):
    """A node process did not start, died, or the cluster did not reach a state in time."""


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports that were free a moment ago (bound to port 0, then closed)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@final
@attrs.define
class NodeProcess:
    """One node of a :class:`ProcessCluster`: its id, address, data directory, log file and
    (while it runs) its process."""

    node_id: int
    addr: str
    data_dir: str | None
    log_path: str
    process: trio.Process | None = None
    starts: int = 0

    @property
    def running(self) -> bool:
        """True while the node's process was started and has not exited."""
        return self.process is not None and self.process.returncode is None


@final
class ProcessCluster:
    """Node processes ``1..n``; see the module docstring."""

    def __init__(
        self,
        nursery: trio.Nursery,
        addrs: dict[int, str],
        base_dir: str,
        *,
        mem: bool,
        cluster_name: str,
        extra_args: Sequence[str],
        env: dict[str, str] | None,
        node_args: Mapping[int, Sequence[str]] | None = None,
    ) -> None:
        self.nursery = nursery
        self.base_dir = base_dir
        self.cluster_name = cluster_name
        self.extra_args = list(extra_args)
        self.node_args = dict(node_args or {})
        self.env = env
        self.mem = mem
        self.nodes = {
            i: NodeProcess(
                i,
                addr,
                None if mem else os.path.join(base_dir, f"node-{i}"),
                os.path.join(base_dir, f"node-{i}.log"),
            )
            for i, addr in addrs.items()
        }

    def add_node(self, node_id: int) -> NodeProcess:
        """Register node ``node_id`` on a free port (start it with :meth:`start`; it joins
        through ``add_learner``). Its ``--peers`` are the nodes registered so far."""
        if node_id in self.nodes:
            raise ProcessClusterError(f"node {node_id} exists")
        addr = f"127.0.0.1:{free_ports(1)[0]}"
        data_dir = None if self.mem else os.path.join(self.base_dir, f"node-{node_id}")
        log_path = os.path.join(self.base_dir, f"node-{node_id}.log")
        self.nodes[node_id] = NodeProcess(node_id, addr, data_dir, log_path)
        return self.nodes[node_id]

    @property
    def addrs(self) -> list[str]:
        """The nodes' ``host:port`` addresses, in node order."""
        return [n.addr for n in self.nodes.values()]

    def peers_arg(self) -> str:
        """The ``--peers`` argument naming every node: ``id=host:port,...``."""
        return ",".join(f"{i}={n.addr}" for i, n in self.nodes.items())

    def argv(self, node_id: int) -> list[str]:
        """The command line that starts node ``node_id`` (``python -m openraft_trio serve ...``)."""
        node = self.nodes[node_id]
        argv = [sys.executable, "-m", "openraft_trio", "serve", "--id", str(node_id)]
        argv += ["--listen", node.addr, "--peers", self.peers_arg()]
        argv += ["--cluster-name", self.cluster_name]
        argv += ["--mem"] if node.data_dir is None else ["--data-dir", node.data_dir]
        return argv + self.extra_args + list(self.node_args.get(node_id, ()))

    async def start(self, node_id: int, *, wait: bool = True, timeout: float = 20.0) -> None:
        """Start (or restart) node ``node_id``; with ``wait``, until it answers ``status``."""
        node = self.nodes[node_id]
        if node.running:
            raise ProcessClusterError(f"node {node_id} is already running")
        env = dict(os.environ, **(self.env or {}))
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(node.log_path, "ab") as log:  # noqa: ASYNC230 (a local file, opened once)
            node.process = await trio.lowlevel.open_process(
                self.argv(node_id), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        node.starts += 1
        if wait:
            await self.wait_ready(node_id, timeout=timeout)

    async def wait_ready(self, node_id: int, *, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until node ``node_id`` answers ``status``; returns that status."""
        node = self.nodes[node_id]
        async with self.client([node.addr], timeout=timeout) as kv:
            with trio.move_on_after(timeout):
                while True:
                    if not node.running:
                        raise ProcessClusterError(
                            f"node {node_id} exited with status "
                            f"{node.process.returncode if node.process else None}; "
                            f"log:\n{self.log_tail(node_id)}"
                        )
                    try:
                        status: dict[str, Any] = await kv.call(node.addr, "status")
                        return status
                    except RaftError:
                        await trio.sleep(0.05)
        raise ProcessClusterError(f"node {node_id} did not answer within {timeout}s")

    async def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: a crash) and wait for the process to exit."""
        node = self.nodes[node_id]
        if node.process is None:
            return
        if node.process.returncode is None:
            node.process.send_signal(sig)
        with trio.CancelScope(shield=True):
            await node.process.wait()

    async def stop_all(self) -> None:
        """Kill every node (SIGKILL) and wait for each process to exit."""
        for node_id in self.nodes:
            await self.kill(node_id)

    def log_tail(self, node_id: int, lines: int = 20) -> str:
        """The last ``lines`` lines of node ``node_id``'s log, or ``"(no log)"`` if it cannot be
        read."""
        try:
            with open(self.nodes[node_id].log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    @asynccontextmanager
    async def client(
        self, addrs: Sequence[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[KvClient]:
        """A ``KvClient`` of this cluster (``open_kv_client`` to ``addrs``, default every
        node; ``kwargs`` passed on), closed on exit."""
        async with open_kv_client(
            addrs or self.addrs, cluster_name=self.cluster_name, **kwargs
        ) as kv:
            yield kv

    @asynccontextmanager
    async def object_client(
        self,
        object_class: type[ReplicatedObject] | None = None,
        addrs: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ObjectClient]:
        """An ``ObjectClient`` of this cluster's nodes (started with ``object_spec=``), as
        ``open_object_client(addrs or every node, object_class, **kwargs)``."""
        async with open_object_client(
            addrs or self.addrs, object_class, cluster_name=self.cluster_name, **kwargs
        ) as client:
            yield client

    async def initialize(self, *, timeout: float = 20.0) -> int:
        """``init`` through node 1 with every node as a voter; returns the leader's id."""
        async with self.client() as kv:
            await kv.init(addr=self.nodes[min(self.nodes)].addr)
        return await self.wait_leader(timeout=timeout)

    async def statuses(self) -> dict[int, dict[str, Any]]:
        """The status of every running node that answers."""
        result: dict[int, dict[str, Any]] = {}
        async with self.client(rpc_timeout=1.0) as kv:
            for node_id, node in self.nodes.items():
                if node.running:
                    with contextlib.suppress(RaftError):
                        result[node_id] = await kv.call(node.addr, "status")
        return result

    async def wait_leader(self, *, timeout: float = 20.0, exclude: int | None = None) -> int:
        """Wait until the running nodes agree on one leader (not ``exclude``); its id."""
        with trio.move_on_after(timeout):
            while True:
                statuses = await self.statuses()
                leaders = {s["id"] for s in statuses.values() if s["state"] == "LEADER"}
                seen = {s.get("leader") for s in statuses.values()}
                if len(leaders) == 1 and seen == leaders and exclude not in leaders:
                    leader: int = leaders.pop()
                    return leader
                await trio.sleep(0.02)
        raise ProcessClusterError(f"no agreed leader within {timeout}s")


    async def wait_converged(self, *, timeout: float = 20.0) -> int:
        """Wait until the running nodes agree on a leader that has committed its whole log,
        and every running member has applied that much; return that log index. (Right after
        restarts the nodes may know an older commit index than was acknowledged before; the
        acknowledged writes are there once a leader commits an entry of its term.)"""
        with trio.move_on_after(timeout):
            while True:
                leader = await self.wait_leader(timeout=timeout)
                statuses = await self.statuses()
                lead = statuses.get(leader)
                if lead is not None and lead["committed"] == lead["last_log_index"]:
                    target: int = lead["committed"]
                    members = {int(i) for i in lead["nodes"]}
                    running = [i for i, n in self.nodes.items() if n.running and i in members]
                    if all(
                        i in statuses and (statuses[i]["applied"] or 0) >= target
                        for i in running
                    ):
                        return target
                await trio.sleep(0.02)
        raise ProcessClusterError(f"the cluster did not converge within {timeout}s")


@asynccontextmanager
async def open_process_cluster(
    n: int = 3,
    *,
    base_dir: str,
    mem: bool = False,
    cluster_name: str = "openraft_trio",
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    start: bool = True,
    node_args: Mapping[int, Sequence[str]] | None = None,
    object_spec: str | None = None,
) -> AsyncIterator[ProcessCluster]:
    """Nodes ``1..n`` on free loopback ports, started (unless ``start`` is false) and
    answering; every process is killed on exit. ``extra_args`` go to every node's
    ``serve``, ``node_args[i]`` to node ``i``'s only. With ``object_spec`` (``"module:Class"``,
    importable from the current directory), the nodes serve that replicated object
    (``serve --object``): call it with :meth:`ProcessCluster.object_client`.
    """
    if object_spec is not None:
        extra_args = [*extra_args, "--object", object_spec]
    os.makedirs(base_dir, exist_ok=True)
    ports = free_ports(n)
    addrs = {i + 1: f"127.0.0.1:{port}" for i, port in enumerate(ports)}
    async with background_nursery() as nursery:
        cluster = ProcessCluster(
            nursery,
            addrs,
            base_dir,
            mem=mem,
            cluster_name=cluster_name,
            extra_args=extra_args,
            env=env,
            node_args=node_args,
        )
        try:
            if start:
                for node_id in cluster.nodes:
                    await cluster.start(node_id, wait=False)
                for node_id in cluster.nodes:
                    await cluster.wait_ready(node_id)
            yield cluster
        finally:
            await cluster.stop_all()
