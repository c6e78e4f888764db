"""``open_raft()``: how applications start a node.

It validates its arguments, opens the durable default log store when given ``data_dir``
and picks the codec's checks for what the store and network encode, then runs the node
(:func:`openraft_trio._core.node.open_node`, which owns the task tree). The runtime in
``_core`` imports neither the concrete stores nor the codec: they are chosen here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from typing_extensions import TypeVar

from ._config import Config
from ._core.handle import Raft
from ._core.node import open_node
from ._core.raft_core import RaftCore
from ._errors import InvalidRequest, PayloadTooLarge, short_repr
from ._types import Normal
from .codec import ENCODE_ERRORS, check_payload, entry_size
from .network import RaftNetworkFactory
from .storage import EncodesEntries, RaftLogStorage, RaftStateMachine, open_file_log_store

# Inferred from the state machine: what ``client_write`` takes and what it answers.
_Command = TypeVar("_Command", default=Any)
_Reply = TypeVar("_Reply", default=Any)

@asynccontextmanager
async def open_raft(
    node_id: int,
    config: Config,
    *,
    network: RaftNetworkFactory,
    log_store: RaftLogStorage | None = None,
    state_machine: RaftStateMachine[_Command, _Reply],
    data_dir: str | os.PathLike[str] | None = None,
    rng: random.Random | None = None,
    clock: Callable[[], float] | None = None,
    observer: Callable[[RaftCore], None] | None = None,
) -> AsyncIterator[Raft[_Command, _Reply]]:
    """Start a Raft node; leaving the block stops it.

    The handle is typed by the state machine: with one whose ``apply`` takes
    ``Sequence[Entry[Deposit]]`` and returns ``list[Receipt]`` it is a ``Raft[Deposit,
    Receipt]`` (``client_write`` takes a ``Deposit``; ``resp.data`` is a ``Receipt``).

    Errors out of the block (docs/guide.md, "Errors out of ``async with``"): an exception
    raised by the body comes out as itself, not wrapped in an ``ExceptionGroup`` (the same
    object, with its traceback, ``__cause__`` and ``__context__``); cancellation and
    ``KeyboardInterrupt`` pass as they are. A storage failure stops the node (fail-stop:
    calls raise ``StorageError``, see ``Raft.fatal_error``) and leaves the body running. A
    task of the node that fails otherwise (a bug, in the library or in the state machine,
    log store or network) cancels the body, and the block raises ``Fatal`` chained
    (``__cause__``) from what the task raised. If the body raised too, both come out in
    one ``ExceptionGroup``.

    Args:
        node_id: this node's id (an int).
        config: validated with ``Config.validate()`` (``ConfigError`` names the bad field).
        network: a ``RaftNetworkFactory``.
        log_store: a ``RaftLogStorage``; omit it and give ``data_dir`` for the durable
            default, a :class:`~openraft_trio.storage.FileLogStore` in ``data_dir/log``.
        state_machine: a ``RaftStateMachine``.
        data_dir: the node's directory for the durable default log store (see
            ``log_store``). Give a durable state machine a directory of its own, e.g.
            ``KvStateMachine(snapshot_dir=data_dir / "snapshots")``.
        rng: randomness for election timeouts (seed it for reproducible runs).
        clock: the node's clock for protocol time (default ``trio.current_time``). Leases
            stay safe while clock *rates* differ by less than
            ``lease_clock_drift / election_timeout_max`` (offsets do not matter).
        observer: called with the RaftCore after every core round (testing hook: the
            simulator checks its invariants there; it must not block or mutate).
    """
    config.validate()
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise InvalidRequest(f"node_id must be an int, got {short_repr(node_id)}")
    if (log_store is None) == (data_dir is None):
        raise InvalidRequest("give open_raft either log_store or data_dir (exactly one)")
    async with contextlib.AsyncExitStack() as stack:
        if log_store is None:
            assert data_dir is not None
            log_store = await stack.enter_async_context(
                open_file_log_store(os.path.join(os.fspath(data_dir), "log"))
            )
        async with open_node(
            node_id,
            config,
            network=network,
            log_store=log_store,
            state_machine=state_machine,
            check_write=_write_checker(config, log_store, network),
            entry_size=entry_size,
            rng=rng,
            clock=clock,
            observer=observer,
        ) as raft:
            # The node applies whatever the state machine is; its types are the caller's.
            typed: Raft[_Command, _Reply] = raft
            yield typed


def _write_checker(
    config: Config, log_store: RaftLogStorage, network: RaftNetworkFactory
) -> Callable[[Normal], None]:
    """What ``Raft`` runs on a client write's payload before anything is logged: encode it
    (once: ``Normal.encoded`` keeps the bytes the log, wire and disk then carry), refuse
    data over ``Config.max_entry_bytes`` (encoded) and, when the log store or the network
    encodes entries (:class:`~openraft_trio.storage.EncodesEntries`), data that cannot be
    encoded. With in-memory storage and network such data is never encoded, so only its
    size is checked, when it has one."""
    max_entry_bytes = config.max_entry_bytes
    if any(
        isinstance(part, EncodesEntries) and part.requires_encodable_data
        for part in (log_store, network)
    ):
        return functools.partial(check_payload, max_bytes=max_entry_bytes)

    def check_size(payload: Normal) -> None:
        try:
            size = len(payload.encoded)
        except ENCODE_ERRORS:
            return
        if size > max_entry_bytes:
            raise PayloadTooLarge(size, max_entry_bytes)

    return check_size


__all__ = ["open_raft"]
