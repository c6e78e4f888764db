"""One run: start the cluster, run clients and nemesis for ``duration`` seconds, heal, read
the final state from every node, check."""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
from typing import Any, final

import attrs
import trio

from ..._errors import RaftError
from ..processes import ProcessCluster, ProcessClusterError, open_process_cluster
from ._checks import Findings, Verdict, check_history
from ._clients import ClientOptions, Clients
from ._history import History
from ._nemesis import Nemesis, NemesisOptions


@final
@attrs.frozen
class JepsenOptions:
    """One run's parameters.

    Attributes:
        seed: every client and nemesis choice is drawn from ``random.Random`` s seeded
            from it.
        duration: seconds of client load and faults (setup, healing and checking come
            on top).
        nodes: how many ``serve`` processes (durable storage, loopback).
        clients: what the clients do.
        nemesis: which faults, how often.
        base_dir: where the run's directory (node data and logs) is made; default: the
            system's temporary directory.
        keep_dir: keep the run's directory even if the run passes (it is always kept
            when it does not).
        converge_timeout: seconds the healed cluster has to elect a leader that committed
            its whole log, applied everywhere.
        check_timeout: seconds the linearizability check may take.
    """

    seed: int = 0
    duration: float = 30.0
    nodes: int = 3
    clients: ClientOptions = attrs.field(factory=ClientOptions)
    nemesis: NemesisOptions = attrs.field(factory=NemesisOptions)
    base_dir: str | None = None
    keep_dir: bool = False
    converge_timeout: float = 30.0
    check_timeout: float = 300.0


@final
@attrs.define
class JepsenReport:
    """What a run did and found.

    Attributes:
        options: the run's parameters.
        history: every operation and fault.
        findings: the checks' results.
        final_state: ``{node id: {key: value}}`` after convergence (empty if none).
        final_statuses: each node's ``status`` at the end.
        run_dir: the run's directory (``None`` once removed).
        elapsed: wall-clock seconds of the whole run, checking included.
    """

    options: JepsenOptions
    history: History
    findings: Findings
    final_state: dict[int, dict[str, Any]]
    final_statuses: dict[int, dict[str, Any]]
    run_dir: str | None
    elapsed: float

    @property
    def verdict(self) -> Verdict:
        """The findings' verdict."""
        return self.findings.verdict


async def run_jepsen(options: JepsenOptions) -> JepsenReport:
    """Run once (see the package docstring). Never raises for what it finds: a violation, a
    node that died or a cluster that did not converge is in the report's findings."""
    started = trio.current_time()
    run_dir = tempfile.mkdtemp(prefix=f"jepsen-seed{options.seed}-", dir=options.base_dir)
    history = History()
    problems: list[str] = []
    final_state: dict[int, dict[str, Any]] = {}
    statuses: dict[int, dict[str, Any]] = {}
    async with open_process_cluster(
        options.nodes, base_dir=run_dir, cluster_name=f"jepsen-{options.seed}"
    ) as cluster:
        await cluster.initialize()
        t0 = trio.current_time()

        def now() -> float:
            return trio.current_time() - t0

        nemesis = Nemesis(cluster, history, options.nemesis, seed=options.seed, now=now)
        try:
            await _load(cluster, history, nemesis, options, now)
            await nemesis.heal()
            await cluster.wait_converged(timeout=options.converge_timeout)
            await _final_reads(cluster, history, options, now)
            final_state = await _final_state(cluster, options)
        except* ProcessClusterError as group:
            problems += [f"{type(e).__name__}: {e}" for e in _leaves(group)]
        finally:
            history.close_pending(now(), "the run stopped waiting")
        problems[:0] = nemesis.crashes
        statuses = await cluster.statuses()
    findings = check_history(
        history, final_state, problems=problems, timeout=options.check_timeout
    )
    keep = options.keep_dir or findings.verdict is not Verdict.PASS
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return JepsenReport(
        options,
        history,
        findings,
        final_state,
        statuses,
        run_dir if keep else None,
        trio.current_time() - started,
    )


async def _load(
    cluster: ProcessCluster,
    history: History,
    nemesis: Nemesis,
    options: JepsenOptions,
    now: Any,
) -> None:
    """The clients and the nemesis, for ``options.duration`` seconds."""
    clients = Clients(
        history,
        options.clients,
        seed=options.seed,
        now=now,
        node_ids=_ids(cluster),
    )
    stop_at = now() + options.duration
    order = random.Random(f"{options.seed}-addresses")
    async with contextlib.AsyncExitStack() as stack:
        pairs = []
        for _ in range(options.clients.count):
            addrs = order.sample(cluster.addrs, len(cluster.addrs))  # where each one starts
            kv = await stack.enter_async_context(
                cluster.client(
                    addrs,
                    timeout=options.clients.op_timeout,
                    rpc_timeout=options.clients.rpc_timeout,
                )
            )
            direct = await stack.enter_async_context(
                cluster.client(addrs, rpc_timeout=options.clients.direct_timeout)
            )
            pairs.append((kv, direct))
        async with trio.open_nursery() as nursery:
            for client_id, (kv, direct) in enumerate(pairs):
                nursery.start_soon(clients.worker, client_id, kv, direct, stop_at)
            nursery.start_soon(nemesis.run, stop_at)


def _leaves(group: BaseExceptionGroup[ProcessClusterError]) -> list[ProcessClusterError]:
    leaves: list[ProcessClusterError] = []
    for exc in group.exceptions:
        leaves += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return leaves


def _ids(cluster: ProcessCluster) -> dict[str, int]:
    return {node.addr: node_id for node_id, node in cluster.nodes.items()}


async def _final_reads(
    cluster: ProcessCluster, history: History, options: JepsenOptions, now: Any
) -> None:
    clients = Clients(history, options.clients, seed=options.seed, now=now, node_ids=_ids(cluster))
    async with cluster.client(timeout=options.clients.op_timeout) as kv:
        await clients.final_reads(kv, options.clients.count, options.clients.keys)


async def _final_state(
    cluster: ProcessCluster, options: JepsenOptions, attempts: int = 3
) -> dict[int, dict[str, Any]]:
    """Each node's copy of every key. A node may still be applying the last entries right
    after convergence, so a disagreement is read again (after waiting for convergence)
    before it is reported."""
    state: dict[int, dict[str, Any]] = {}
    async with cluster.client(timeout=options.clients.op_timeout) as kv:
        for attempt in range(attempts):
            state = {}
            for node_id, node in sorted(cluster.nodes.items()):
                with contextlib.suppress(RaftError):
                    state[node_id] = {
                        key: await kv.get(key, stale=True, addr=node.addr)
                        for key in options.clients.keys
                    }
            copies = {repr(sorted(values.items())) for values in state.values()}
            if len(state) == len(cluster.nodes) and len(copies) == 1:
                break
            if attempt + 1 < attempts:
                await cluster.wait_converged(timeout=options.converge_timeout)
    missing = sorted(set(cluster.nodes) - set(state))
    if missing:
        raise ProcessClusterError(f"nodes {missing} did not answer a read of their state")
    return state

