"""A linearizability checker for recorded client histories (test tooling, not runtime code).

Theory of operation
-------------------

A history is a set of :class:`Operation` s, each with the interval ``[call, ret]`` in which
some client saw it run. The history is *linearizable* if every operation can be given a
single instant inside its interval at which it takes effect, such that executing the
operations one at a time in the order of those instants, against a sequential
specification (a :class:`Model`), produces exactly the replies the clients saw.

Real-time order is strict: ``a`` must take effect before ``b`` only if ``a.ret < b.call``.
Operations with ``a.ret == b.call`` are concurrent. An operation whose outcome the client
never learnt (a timeout, a crash) has ``ret = math.inf``: it may take effect at any instant
after its call with whatever reply the model gives, or never.

The search is Wing & Gong's, with Lowe's memoization, as in Porcupine:

* Every operation contributes a *call* and a *return* event. The events are sorted by time
  (calls before returns at equal times, which keeps equal-time operations concurrent) and
  kept in a doubly linked list.
* Walking the list from the head, each call reached is a candidate to linearize next: every
  operation that must precede it in real time has already returned, hence is already
  linearized. If the model accepts it, it is *lifted* out of the list (call and return) and
  the walk restarts from the head. Reaching a *return* means that operation can no longer
  be put off, so the search backtracks: it re-inserts the last lifted operation and tries
  the next candidate after it.
* A pair ``(set of linearized operations, model state)`` already reached once cannot lead
  anywhere new, so it is cached and never expanded twice. The set is a Python ``int``
  used as a bitset.
* The search succeeds as soon as every operation with a known outcome is linearized;
  unknown-outcome operations left over simply never took effect.

Operations on different keys commute, so a history is linearizable iff each per-key
sub-history is (P-compositionality, Horn & Kroening). :meth:`Model.partition` splits the
history and each part is searched on its own, smallest first, which keeps the exponential
search small.

A failing part is then shrunk greedily to the operations whose
replies conflict plus those their replies depend on (see :class:`_Shrinker`). The result is
the :attr:`CheckResult.counterexample`.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Hashable, Sequence
from typing import Any, Final, final

import attrs

from ..kv import CompareAndSwap, Delete, Get, Increment, Set

__all__ = [
    "ANY_OUTPUT",
    "CheckResult",
    "KvModel",
    "Model",
    "Operation",
    "Outcome",
    "check",
]

# How many search steps run between two looks at the clock.
_CLOCK_EVERY: Final = 256


class _AnyOutput(enum.Enum):
    ANY_OUTPUT = "ANY_OUTPUT"

    def __repr__(self) -> str:
        return "ANY_OUTPUT"


ANY_OUTPUT: Final = _AnyOutput.ANY_OUTPUT
"""The ``output`` passed to :meth:`Model.step` for an operation whose outcome is unknown.

It means "whatever reply the model gives is fine". It is a sentinel rather than ``None``
because ``None`` is a real reply (``Get`` of an absent key).
"""


@final
@attrs.frozen
class Operation:
    """One client operation as the client saw it.

    Attributes:
        client_id: who issued it (for the explanation only).
        input: the request, e.g. ``Set("k", 1)``, ``Delete("k")``,
            ``CompareAndSwap("k", 1, 2)``, ``Get("k")``.
        output: the reply the client saw. Ignored when ``ret`` is ``math.inf``
            (conventionally ``None`` then).
        call: when the client sent it.
        ret: when the client got the reply; ``math.inf`` if it never learnt the outcome
            (the operation may take effect at any time after ``call``, or never).
    """

    client_id: int
    input: Any
    output: Any
    call: float
    ret: float

    @property
    def outcome_known(self) -> bool:
        """True if the operation returned (``ret`` is not ``math.inf``): its output is known."""
        return self.ret != math.inf


class Outcome(enum.Enum):
    """The verdict of :func:`check`."""

    #: Every partition is linearizable.
    OK = "ok"
    #: Some partition is not linearizable; see the counterexample.
    ILLEGAL = "illegal"
    #: The budget or timeout ran out first. A test must treat this as a failure.
    UNKNOWN = "unknown"


@final
@attrs.frozen
class CheckResult:
    """What :func:`check` found.

    Attributes:
        outcome: the verdict.
        counterexample: for ``ILLEGAL``: operations of the smallest failing partition, in
            call order, shrunk greedily to a sub-history that is still illegal by itself:
            the operations whose replies conflict, plus those needed to explain their
            replies (marked ``*`` in the explanation).
        explanation: a readable account of the verdict (empty for ``OK``).
        partitions_checked: how many partitions were fully decided.
        partitions_total: how many partitions the model split the history into.
        steps: model steps spent, including shrinking the counterexample.
    """

    outcome: Outcome
    counterexample: tuple[Operation, ...] = ()
    explanation: str = ""
    partitions_checked: int = 0
    partitions_total: int = 0
    steps: int = 0


class Model:
    """The sequential specification a history is checked against.

    Subclass it and override :meth:`init` and :meth:`step`; override :meth:`partition` when
    the state splits into independent parts (keys), which makes checking far cheaper.
    """

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        """Split the history into independently checkable parts (default: one part).

        Operations in different parts must commute: no operation in one part may change
        what an operation in another part replies.
        """
        return [list(operations)]

    def init(self) -> Hashable:
        """The initial state. States must be hashable and compare by value."""
        raise NotImplementedError

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        """Apply ``input`` to ``state``.

        Args:
            state: the current state (never mutate it).
            input: the operation's request.
            output: the reply the client saw, or :data:`ANY_OUTPUT` if its outcome is unknown.

        Returns:
            ``(legal, new_state)``: whether ``output`` is the reply the specification gives
            from ``state`` (always true for :data:`ANY_OUTPUT`), and the state afterwards.
        """
        raise NotImplementedError

    def describe(self, op: Operation) -> str:
        """One line naming ``op`` in an explanation."""
        reply = "?" if not op.outcome_known else repr(op.output)
        return f"client {op.client_id}: {op.input!r} -> {reply}"

    def describe_state(self, state: Any) -> str:
        """How a state reads in an explanation."""
        return repr(state)


@attrs.frozen
class _FrozenDict:
    items: frozenset[tuple[Any, Any]]

    def __repr__(self) -> str:
        return repr(dict(self.items))


def _freeze(value: Any) -> Any:
    """A hashable stand-in for ``value`` that compares equal exactly when ``value`` does.

    Lists and tuples both become tuples: a snapshot (CBOR) turns stored tuples into lists,
    and the CompareAndSwap reply may arrive as either.
    """
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, dict):
        return _FrozenDict(frozenset((key, _freeze(item)) for key, item in value.items()))
    return value


@final
class KvModel(Model):
    """The specification of :class:`~openraft_trio.kv.KvStateMachine`, one key at a time.

    The state of a key is its value, or ``None`` when absent. Replies, as the state machine
    gives them:

    * ``Set(key, value)`` -> the previous value, or ``None``;
    * ``Delete(key)`` -> the previous value, or ``None``;
    * ``CompareAndSwap(key, expected, new)`` -> ``(swapped, value_after)``; absent compares
      equal to ``None``;
    * ``Increment(key, delta)`` -> the new value (absent counts as ``0``), or ``None``
      when the value is not an integer (unchanged);
    * ``Get(key)`` -> the value, or ``None``.

    Values are compared after :func:`_freeze`, so a list and a tuple with equal items are
    the same value (as they are after a snapshot round trip).
    """

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        by_key: dict[str, list[Operation]] = {}
        for op in operations:
            if not isinstance(op.input, Set | Delete | CompareAndSwap | Increment | Get):
                raise TypeError(f"KvModel: not a kv request: {op.input!r}")
            by_key.setdefault(op.input.key, []).append(op)
        return list(by_key.values())

    def init(self) -> Hashable:
        return None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        if isinstance(input, Set):
            reply, new_state = state, _freeze(input.value)
        elif isinstance(input, Delete):
            reply, new_state = state, None
        elif isinstance(input, CompareAndSwap):
            if state == _freeze(input.expected):
                new_state = _freeze(input.new)
                reply = (True, new_state)
            else:
                new_state = state
                reply = (False, state)
        elif isinstance(input, Increment):
            current = 0 if state is None else state
            if type(current) is int and type(input.delta) is int:
                new_state = reply = current + input.delta
            else:
                reply, new_state = None, state
        elif isinstance(input, Get):
            reply, new_state = state, state
        else:
            raise TypeError(f"KvModel: not a kv request: {input!r}")
        legal = output is ANY_OUTPUT or _freeze(output) == reply
        return legal, new_state


# -- the search -----------------------------------------------------------------------------


class _Entry:
    """A call or return event in the search's doubly linked list."""

    __slots__ = ("is_call", "match", "next", "op_index", "prev")

    def __init__(self, op_index: int, is_call: bool) -> None:
        self.op_index = op_index
        self.is_call = is_call
        self.match: _Entry = self  # a call's return event, and a return's call event
        self.prev: _Entry = self
        self.next: _Entry | None = None


def _lift(call: _Entry) -> None:
    """Unlink ``call`` and its return from the list."""
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    """Undo :func:`_lift` (return first, then call: the exact reverse)."""
    ret = call.match
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def _build_list(operations: Sequence[Operation]) -> _Entry:
    """Return the head sentinel of the time-ordered event list."""
    events: list[tuple[float, int, int, _Entry]] = []
    for index, op in enumerate(operations):
        call = _Entry(index, is_call=True)
        ret = _Entry(index, is_call=False)
        call.match = ret
        ret.match = call
        # At equal times calls sort before returns, so a.ret == b.call stays concurrent.
        events.append((op.call, 0, index, call))
        events.append((op.ret, 1, index, ret))
    events.sort(key=lambda event: event[:3])
    head = _Entry(-1, is_call=False)
    previous = head
    for *_, entry in events:
        entry.prev = previous
        previous.next = entry
        previous = entry
    return head


@attrs.define
class _Limits:
    steps_left: int
    deadline: float | None
    steps_taken: int = 0

    def spend(self) -> bool:
        """Count one step; false when the budget or the deadline is exhausted."""
        if self.steps_left <= 0:
            return False
        if (
            self.deadline is not None
            and self.steps_taken % _CLOCK_EVERY == 0
            and time.monotonic() >= self.deadline
        ):
            return False
        self.steps_left -= 1
        self.steps_taken += 1
        return True

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


@attrs.frozen
class _SearchResult:
    outcome: Outcome
    # OK: the operations linearized when the search succeeded (a bitset).
    linearized: int = 0
    # ILLEGAL: the longest partial linearization reached (indices into the searched
    # operations) and the model state after it: where the search got stuck.
    longest: tuple[int, ...] = ()
    state_after_longest: Any = None


def _search(
    operations: Sequence[Operation],
    model: Model,
    limits: _Limits,
    *,
    required: int | None = None,
    free: int = 0,
) -> _SearchResult:
    """Search for a linearization of ``operations``.

    Args:
        required: the operations that must take effect (a bitset); default: every one with a
            known outcome. Other known-outcome operations become *optional*: when the walk
            reaches the return of one not yet linearized, it may be skipped as if it never
            ran (its reply is still checked if it does take effect).
        free: operations whose reply is not checked (a bitset).
    """
    known = 0
    for index, op in enumerate(operations):
        if op.outcome_known:
            known |= 1 << index
    if required is None:
        required = known
    optional = known & ~required
    head = _build_list(operations)
    state = model.init()
    linearized = 0
    skipped = 0
    # (lifted call, state before it, whether it was skipped rather than linearized)
    stack: list[tuple[_Entry, Any, bool]] = []
    # The future depends only on which operations are still pending and on the state, so
    # "decided" (linearized or skipped) plus the state is the cache key.
    seen: set[tuple[int, Any]] = {(0, state)}
    longest: tuple[int, ...] = ()
    state_after_longest = state
    entry = head.next
    while linearized & required != required:
        # The list always ends with the return of an undecided operation, so the walk
        # reaches a return (and skips or backtracks) before it could run off the end.
        assert entry is not None
        bit = 1 << entry.op_index
        if entry.is_call:
            op = operations[entry.op_index]
            if not limits.spend():
                return _SearchResult(Outcome.UNKNOWN)
            output = op.output if op.outcome_known and not free & bit else ANY_OUTPUT
            legal, new_state = model.step(state, op.input, output)
            key = (linearized | skipped | bit, new_state)
            if legal and key not in seen:
                seen.add(key)
                stack.append((entry, state, False))
                state = new_state
                linearized |= bit
                if linearized.bit_count() > len(longest):
                    longest = tuple(call.op_index for call, _, was_skip in stack if not was_skip)
                    state_after_longest = state
                _lift(entry)
                entry = head.next
            else:
                entry = entry.next
            continue
        # A return: this operation cannot be put off any longer.
        key = (linearized | skipped | bit, state)
        if optional & bit and key not in seen:
            seen.add(key)
            call = entry.match
            stack.append((call, state, True))
            skipped |= bit
            _lift(call)
            entry = head.next
            continue
        while True:  # backtrack to the last linearized operation and try the next candidate
            if not stack:
                return _SearchResult(
                    Outcome.ILLEGAL, longest=longest, state_after_longest=state_after_longest
                )
            call, state, was_skip = stack.pop()
            _unlift(call)
            if was_skip:
                # Undoing a skip leaves the walk at that return again: backtrack further.
                skipped &= ~(1 << call.op_index)
                continue
            linearized &= ~(1 << call.op_index)
            entry = call.next
            break
    return _SearchResult(Outcome.OK, linearized=linearized)


def _validate(operations: Sequence[Operation]) -> None:
    for op in operations:
        if not math.isfinite(op.call):
            raise ValueError(f"an operation's call time must be finite: {op!r}")
        if math.isnan(op.ret) or op.ret < op.call:
            raise ValueError(f"an operation cannot return before its call: {op!r}")


class _OutOfLimits(Exception):
    pass


@attrs.define
class _Shrinker:
    """Shrink an illegal partition to the operations that make it illegal.

    Simply dropping operations while the rest stays illegal would mislead: drop the write a
    read observed and the read becomes a "read of a value never written", a new violation
    that the history did not have. So shrinking goes in two passes.

    1. *Relax* operations: accept any reply from them, and let them never take effect at
       all (they still cannot take effect outside their interval). Keep them relaxed if the
       partition stays illegal. Relaxing only adds possible orders, so trying groups and
       halving the ones that fail (latest operations first) still leaves a minimal set of
       constrained operations whose replies conflict, in few searches.
    2. *Drop* relaxed operations the constrained ones do not need. A constrained operation
       is *explained* if some subset of the others lets it take effect with its own reply
       (a search in which it alone is required and the others are optional); the search's
       linearized operations are its witness. A relaxed operation is dropped unless that
       breaks an explanation. Dropping a relaxed operation cannot make the partition legal,
       since it could have never taken effect anyway.

    Operations are named by their index in the partition; witnesses and ``relaxed`` are
    bitsets of those. Unknown-outcome operations start relaxed.
    """

    partition: list[Operation]
    model: Model
    limits: _Limits

    def _run(self, kept: list[int], relaxed: int, required: int | None = None) -> _SearchResult:
        """Search ``kept`` with ``relaxed`` (and, unless given, the rest required)."""
        operations = [self.partition[index] for index in kept]
        free = _positions(kept, relaxed)
        if required is None:
            required = ((1 << len(kept)) - 1) & ~free
        result = _search(operations, self.model, self.limits, required=required, free=free)
        if result.outcome is Outcome.UNKNOWN:
            raise _OutOfLimits
        return result

    def witnesses(self, kept: list[int], relaxed: int, targets: list[int]) -> dict[int, int | None]:
        """Target -> the witness of its explanation among ``kept``, or ``None`` if it has none."""
        found: dict[int, int | None] = {}
        for target in targets:
            result = self._run(kept, relaxed, required=1 << kept.index(target))
            if result.outcome is Outcome.OK:
                found[target] = sum(
                    1 << index
                    for position, index in enumerate(kept)
                    if result.linearized >> position & 1
                )
            else:
                found[target] = None
        return found

    def shrink(self) -> tuple[list[int], int, dict[int, int | None]]:
        """Return the kept indices, which are relaxed, and the constrained ones' witnesses.

        Stops early, with what it has, when the limits run out.
        """
        kept = list(range(len(self.partition)))
        relaxed = 0
        for index in kept:
            if not self.partition[index].outcome_known:
                relaxed |= 1 << index
        witness: dict[int, int | None] = {}
        try:
            # Latest first: a violation rarely needs what came long after it.
            by_call = sorted(kept, key=lambda index: self.partition[index].call, reverse=True)
            pending = [[index for index in by_call if not relaxed >> index & 1]]
            while pending:
                group = pending.pop()
                bits = sum(1 << index for index in group)
                if self._run(kept, relaxed | bits).outcome is Outcome.ILLEGAL:
                    relaxed |= bits
                elif len(group) > 1:
                    middle = len(group) // 2
                    pending += [group[middle:], group[:middle]]  # the first half is tried first
            constrained = [index for index in kept if not relaxed >> index & 1]
            witness = self.witnesses(kept, relaxed, constrained)
            for index in kept[:]:
                if not relaxed >> index & 1:
                    continue
                candidate = [other for other in kept if other != index]
                affected = [
                    target
                    for target in constrained
                    if (known := witness[target]) is not None and known >> index & 1
                ]
                rechecked = self.witnesses(candidate, relaxed, affected)
                if all(rechecked[target] is not None for target in affected):
                    kept = candidate
                    witness.update(rechecked)
        except _OutOfLimits:
            pass
        return kept, relaxed, witness


def _positions(kept: list[int], indices: int) -> int:
    """Translate a bitset of partition indices to one of positions in ``kept``."""
    return sum(1 << position for position, index in enumerate(kept) if indices >> index & 1)


def _explain_illegal(
    counterexample: Sequence[Operation],
    relaxed: Sequence[bool],
    partition_size: int,
    search: _SearchResult | None,
    unexplained: Sequence[int],
    model: Model,
) -> str:
    """Explain a counterexample; ``search`` and ``unexplained`` index into it."""
    lines = [
        f"not linearizable: no legal order exists for these {len(counterexample)} operations "
        f"(shrunk from a partition of {partition_size}):"
    ]
    for number, (op, free) in enumerate(zip(counterexample, relaxed, strict=True), start=1):
        if not op.outcome_known:
            when = f"called {op.call!r}, outcome unknown"
        else:
            when = f"called {op.call!r}, returned {op.ret!r}"
        lines.append(f"  [{number}]{'*' if free else ' '} {model.describe(op)}  ({when})")
    if any(relaxed):
        lines.append(
            "  * free: the violation stays whatever it replied, even if it never took effect; "
            "kept because the others' replies need it"
        )
    if unexplained:
        names = ", ".join(f"[{index + 1}]" for index in unexplained)
        lines.append(
            f"{names} cannot be explained: no legal order of any of the others gives it "
            "the reply seen"
        )
    if search is not None:
        if search.longest:
            order = ", ".join(f"[{index + 1}]" for index in search.longest)
            lines.append(
                f"the longest legal prefix found is {order}, leaving the state at "
                f"{model.describe_state(search.state_after_longest)}; no remaining "
                "operation can take effect next"
            )
        else:
            lines.append(
                f"no operation can take effect first from the initial state "
                f"{model.describe_state(model.init())}"
            )
    return "\n".join(lines)


def _illegal_result(
    partition: list[Operation], model: Model, deadline: float | None, budget: int
) -> tuple[tuple[Operation, ...], str, int]:
    """Shrink an illegal partition; return the counterexample, its explanation, steps spent."""
    limits = _Limits(steps_left=budget, deadline=deadline)
    kept, relaxed, witness = _Shrinker(partition, model, limits).shrink()
    kept.sort(key=lambda index: partition[index].call)  # stable: ties stay in history order
    counterexample = [partition[index] for index in kept]
    free = _positions(kept, relaxed)
    required = ((1 << len(kept)) - 1) & ~free
    search = _search(counterexample, model, limits, required=required, free=free)
    stuck_at = search if search.outcome is Outcome.ILLEGAL else None  # else out of limits
    unexplained = [number for number, index in enumerate(kept) if witness.get(index, 0) is None]
    explanation = _explain_illegal(
        counterexample,
        [bool(relaxed >> index & 1) for index in kept],
        len(partition),
        stuck_at,
        unexplained,
        model,
    )
    return tuple(counterexample), explanation, limits.steps_taken


def check(
    operations: Sequence[Operation],
    model: Model,
    *,
    budget: int = 2_000_000,
    timeout: float | None = None,
) -> CheckResult:
    """Decide whether ``operations`` is linearizable with respect to ``model``.

    Args:
        operations: the history, in any order.
        model: the sequential specification, e.g. :class:`KvModel`.
        budget: the most model steps the search may take over all partitions. Shrinking a
            counterexample gets a separate allowance of the same size.
        timeout: seconds (``time.monotonic``) the whole check may take, shrinking included.

    Returns:
        ``OK``; ``ILLEGAL`` with a counterexample; or ``UNKNOWN`` if the budget or the
        timeout ran out before a verdict. ``UNKNOWN`` is never a pass.

    Raises:
        ValueError: if an operation has a non-finite call time or returns before its call.
    """
    _validate(operations)
    deadline = None if timeout is None else time.monotonic() + timeout
    limits = _Limits(steps_left=budget, deadline=deadline)
    partitions = sorted(model.partition(operations), key=len)
    for checked, partition in enumerate(partitions):
        if limits.expired():
            result = _SearchResult(Outcome.UNKNOWN)
        else:
            result = _search(partition, model, limits)
        if result.outcome is Outcome.UNKNOWN:
            return CheckResult(
                Outcome.UNKNOWN,
                explanation=(
                    f"gave up after {limits.steps_taken} steps "
                    f"({'timeout' if limits.expired() else 'budget'} exhausted) on a partition "
                    f"of {len(partition)} operations; {checked} of {len(partitions)} "
                    "partitions were linearizable"
                ),
                partitions_checked=checked,
                partitions_total=len(partitions),
                steps=limits.steps_taken,
            )
        if result.outcome is Outcome.ILLEGAL:
            counterexample, explanation, shrink_steps = _illegal_result(
                partition, model, deadline, budget
            )
            return CheckResult(
                Outcome.ILLEGAL,
                counterexample=counterexample,
                explanation=explanation,
                partitions_checked=checked + 1,
                partitions_total=len(partitions),
                steps=limits.steps_taken + shrink_steps,
            )
    return CheckResult(
        Outcome.OK,
        partitions_checked=len(partitions),
        partitions_total=len(partitions),
        steps=limits.steps_taken,
    )
