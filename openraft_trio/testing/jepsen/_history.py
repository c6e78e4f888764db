"""The record of a run: every client operation with its outcome, and every fault injected.

Times are seconds since the run started, on the driver's clock (``trio.current_time()`` of
the driver process, the real clock: real processes cannot run on a virtual one).

An operation ends in one of three outcomes:

* ``ok``: the client got the reply; it is checked against the model.
* ``fail``: it certainly had no effect: a read that errored, or a write the cluster refused
  before appending it (no node would take it within the client's timeout, or a non-leader
  refused it with ``ForwardToLeader`` and ``maybe_committed`` false). It is left out of the
  check: if it did take effect after all, a read that sees its unique value has no write
  to explain it, and the check fails.
* ``unknown``: a write that may or may not take effect (``AmbiguousOutcome``, a timeout,
  any other error once it was sent). It is checked as an operation that returns at
  infinity: it may take effect at any time after its call, or never.
"""

from __future__ import annotations

import enum
import math
from typing import Any, final

import attrs

from ...kv import CompareAndSwap, Delete, Get, Set
from ..linearizability import Operation


class OpKind(enum.Enum):
    """What a client did; the two linearizable reads are told apart by their policy."""

    PUT = "put"
    DELETE = "delete"
    CAS = "cas"
    INCR = "incr"
    GET_READ_INDEX = "get/read_index"
    GET_LEASE = "get/lease"

    @property
    def is_read(self) -> bool:
        """True for the read kinds (``GET_READ_INDEX``, ``GET_LEASE``)."""
        return self in (OpKind.GET_READ_INDEX, OpKind.GET_LEASE)


class OpOutcome(enum.Enum):
    """How an operation ended (see the module docstring)."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


@final
@attrs.define
class OpRecord:
    """One client operation.

    Attributes:
        client: the client's number.
        kind: what it did.
        request: the KV request (``Set``, ``Delete``, ``CompareAndSwap``, ``Get``).
        call: when it was sent (seconds since the start).
        ret: when its reply (or failure) came back; ``None`` until then.
        outcome: how it ended; ``None`` until then.
        reply: the reply: the previous value (put, delete), ``(swapped, value_after)``
            (cas), the value (get).
        error: for ``fail`` and ``unknown``, the error's type and message.
        served_by: the node that answered (``ok`` only; ``None`` if not known).
        direct_to: for a direct operation, the one node it was sent to.
    """

    client: int
    kind: OpKind
    request: Any
    call: float
    ret: float | None = None
    outcome: OpOutcome | None = None
    reply: Any = None
    error: str = ""
    served_by: int | None = None
    direct_to: int | None = None

    @property
    def key(self) -> str:
        """The key the request reads or writes."""
        key: str = self.request.key
        return key

    def written_value(self) -> tuple[bool, Any]:
        """``(writes, value)``: whether this operation, if it took effect, set the key, and
        to what (``None`` for a delete). A cas that was seen not to swap writes nothing."""
        request = self.request
        if isinstance(request, Set):
            return True, request.value
        if isinstance(request, Delete):
            return True, None
        if isinstance(request, CompareAndSwap):
            if self.outcome is OpOutcome.OK and not self.reply[0]:
                return False, None
            return True, request.new
        return False, None

    def operation(self) -> Operation | None:
        """The checker's view of this operation; ``None`` for ``fail`` (no effect)."""
        if self.outcome is OpOutcome.OK:
            assert self.ret is not None
            return Operation(self.client, self.request, self.reply, self.call, self.ret)
        if self.outcome is OpOutcome.UNKNOWN:
            return Operation(self.client, self.request, None, self.call, math.inf)
        return None

    def describe(self) -> str:
        """One line: who, what, the reply, when, and which node served it."""
        if self.outcome is OpOutcome.OK:
            result = f"-> {self.reply!r}"
            if self.served_by is not None:
                result += f" from node {self.served_by}"
        else:
            outcome = self.outcome.value if self.outcome is not None else "pending"
            result = f"-> {outcome} ({self.error})" if self.error else f"-> {outcome}"
        ret = f"{self.ret:.3f}" if self.ret is not None and self.outcome is OpOutcome.OK else "?"
        direct = f" (direct to node {self.direct_to})" if self.direct_to is not None else ""
        return (
            f"client {self.client} {self.kind.value}{direct} {_request_args(self.request)} "
            f"{result}  [{self.call:.3f} .. {ret}]"
        )


def _request_args(request: Any) -> str:
    if isinstance(request, Set):
        return f"{request.key}={request.value!r}"
    if isinstance(request, CompareAndSwap):
        return f"{request.key}: {request.expected!r} -> {request.new!r}"
    if isinstance(request, Delete | Get):
        return request.key
    return repr(request)


class FaultKind(enum.Enum):
    """What the nemesis can do to a node."""

    KILL = "kill"  # SIGKILL, then restart on the same data directory
    PAUSE = "pause"  # SIGSTOP, then SIGCONT
    TRANSFER = "transfer"  # the leader hands its leadership to another voter


@final
@attrs.define
class FaultRecord:
    """One fault.

    Attributes:
        kind: what was done.
        node: the node it was done to (for a transfer: the leader that was asked).
        on_leader: whether ``node`` led when the fault started (as the statuses said).
        start: when it started (seconds since the run started).
        end: when it was healed (the node restarted or resumed, the transfer call
            returned); ``None`` while in progress.
        detail: e.g. ``"to node 3"``, ``"down 0.8 s"``, or why a transfer was refused.
    """

    kind: FaultKind
    node: int
    on_leader: bool
    start: float
    end: float | None = None
    detail: str = ""

    def describe(self) -> str:
        """A one-line description: the kind, the node, the time span and the detail."""
        end = f"{self.end:.3f}" if self.end is not None else "..."
        who = f"node {self.node}" + (" (leader)" if self.on_leader else "")
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.kind.value} {who} [{self.start:.3f} .. {end}]{detail}"


@final
@attrs.define
class History:
    """Every operation and fault of one run, in the order they started."""

    ops: list[OpRecord] = attrs.field(factory=list)
    faults: list[FaultRecord] = attrs.field(factory=list)

    def operations(self) -> list[Operation]:
        """The checker's history: every operation that did not certainly fail."""
        return [op for record in self.ops if (op := record.operation()) is not None]

    def close_pending(self, now: float, reason: str) -> None:
        """End the operations the run stopped waiting for: a write becomes ``unknown`` (it
        may have been sent), a read ``fail``."""
        for record in self.ops:
            if record.outcome is None:
                record.ret = now
                record.outcome = OpOutcome.FAIL if record.kind.is_read else OpOutcome.UNKNOWN
                record.error = reason

    def record_for(self, operation: Operation) -> OpRecord:
        """The record an :class:`Operation` of :meth:`operations` was made from (a client
        runs one operation at a time, so client and call time identify it)."""
        for record in self.ops:
            if record.client == operation.client_id and record.call == operation.call:
                return record
        raise KeyError(operation)

    def faults_near(self, start: float, end: float, margin: float = 1.0) -> list[FaultRecord]:
        """The faults active within ``margin`` seconds of ``[start, end]``."""
        return [
            fault
            for fault in self.faults
            if fault.start <= end + margin
            and (fault.end if fault.end is not None else math.inf) >= start - margin
        ]

