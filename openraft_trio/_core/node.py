"""``open_node``: restore a node from its storage and run its task tree.

Task tree (DESIGN.md §3), each task in a module of its own::

    open_node()                      nursery N0 (owned by the context manager)
     ├─ openraft_trio.raft_core       raft_core.py: Engine + log storage calls
     │   ├─ rpc nursery               vote[t], transfer[t]
     │   └─ leader nursery            leader_nursery.py: replication[t] (replication.py),
     │                                heartbeat[t] (heartbeat.py) while leading
     ├─ openraft_trio.sm_worker       sm_worker.py
     └─ openraft_trio.ticker          ticker.py

Leaving the block (or ``await raft.shutdown()``) cancels N0; calls still pending then fail
with ``Stopped``. An exception the body raises comes out as itself; a task of the node that
fails (a bug: storage errors stop the node without failing its task) cancels the body and
comes out as ``Fatal`` (see :mod:`openraft_trio._nursery`). The public entry point,
:func:`openraft_trio.open_raft`, validates its arguments and picks the durable default
store and the codec's checks before it calls this.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio
import trio_util

from .._config import Config
from .._engine import Engine
from .._errors import Fatal, short_text
from .._nursery import background_nursery
from .._types import Entry, Normal
from ..network import RaftNetworkFactory
from ..storage import RaftLogStorage, RaftStateMachine
from .api_calls import ApiCall
from .handle import Raft
from .notifications import Notification
from .raft_core import RaftCore
from .runtime_config import RuntimeConfig
from .sm_worker import ApplyHandle, sm_worker
from .startup import read_startup_state
from .ticker import ticker


@asynccontextmanager
async def open_node(
    node_id: int,
    config: Config,
    *,
    network: RaftNetworkFactory,
    log_store: RaftLogStorage,
    state_machine: RaftStateMachine,
    check_write: Callable[[Normal], None],
    entry_size: Callable[[Entry], int],
    rng: random.Random | None,
    clock: Callable[[], float] | None,
    observer: Callable[[RaftCore], None] | None,
) -> AsyncIterator[Raft]:
    """Run node ``node_id`` (arguments as :func:`openraft_trio.open_raft`'s, already
    validated) until the block is left.

    Args:
        check_write: refuses a client write's payload before it is logged (raises
            ``InvalidRequest``) and encodes it; the ``Raft`` handle calls it.
        entry_size: an entry's encoded size in bytes, for ``max_payload_bytes`` batches.
    """
    engine = Engine(node_id, config, rng if rng is not None else random.Random())
    clock = clock if clock is not None else trio.current_time
    last_applied = await read_startup_state(engine, log_store, state_machine, clock())
    api_tx, api_rx = trio.open_memory_channel[ApiCall](config.channel_capacity)
    notify_tx, notify_rx = trio.open_memory_channel[Notification](config.channel_capacity)
    apply_handle = ApplyHandle(clock=clock)
    apply_handle.latency_next = 0 if last_applied is None else last_applied.index + 1
    core = RaftCore(
        engine=engine,
        config=config,
        network=network,
        log_store=log_store,
        state_machine=state_machine,
        runtime_config=RuntimeConfig(),
        metrics_watch=trio_util.AsyncValue(None),
        api_rx=api_rx,
        notify_tx=notify_tx,
        notify_rx=notify_rx,
        apply_handle=apply_handle,
        entry_size=entry_size,
        clock=clock,
        observer=observer,
    )
    core._publish_metrics()
    core._update_deadline()
    raft = Raft._create(
        node_id=node_id, config=config, core=core, api_tx=api_tx, check_write=check_write
    )
    try:
        async with background_nursery(
            task_failed=functools.partial(_node_failed, node_id)
        ) as node_nursery:
            run = raft._run_task
            node_nursery.start_soon(run, core.run, name="openraft_trio.raft_core")
            node_nursery.start_soon(
                run,
                functools.partial(
                    sm_worker,
                    handle=apply_handle,
                    state_machine=state_machine,
                    log_store=log_store,
                    applied=last_applied,
                    notify=core.notifier(),
                ),
                name="openraft_trio.sm_worker",
            )
            node_nursery.start_soon(
                run, functools.partial(ticker, core), name="openraft_trio.ticker"
            )
            try:
                yield raft
            finally:
                node_nursery.cancel_scope.cancel()
                raft._stop()
    finally:
        raft._stop()
        raft._done.set()


def _node_failed(node_id: int, failure: BaseException) -> Fatal:
    """What leaves ``open_node`` when a task of the node failed (chained from ``failure``)."""
    if isinstance(failure, BaseExceptionGroup):
        what = f"{len(failure.exceptions)} tasks of the node failed"
    else:
        what = f"a task of the node failed: {type(failure).__name__}: {failure}"
    return Fatal(short_text(f"raft node {node_id} stopped: {what}"))
