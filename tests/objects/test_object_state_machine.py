"""ObjectStateMachine and the declaration of replicated objects, without an engine."""

from __future__ import annotations

from typing import Any

import attrs
import cbor2
import pytest

from openraft_trio import (
    Blank,
    Membership,
    MembershipChange,
    Node,
    SnapshotMeta,
    StoredMembership,
    codec,
)
from openraft_trio.objects import (
    BadArgumentsError,
    Call,
    ErrorReply,
    MalformedSnapshotError,
    ObjectStateMachine,
    ReplicatedMethodError,
    ReplicatedObject,
    UnknownMethodError,
    UnknownVersionError,
    Upgrade,
    VersionNotActiveError,
    make_call,
    query,
    replicated,
)
from openraft_trio.storage import RaftStateMachine

from ._objects import Account, Counter, Log, apply, call, log_id

MEMBERSHIP = Membership(configs=[{1, 2, 3}], nodes={n: Node(f"node-{n}") for n in (1, 2, 3)})


async def test_is_a_raft_state_machine_starting_empty() -> None:
    sm = ObjectStateMachine(Counter)
    assert isinstance(sm, RaftStateMachine)
    assert await sm.applied_state() == (None, StoredMembership())
    assert await sm.get_current_snapshot() is None
    assert sm.object == Counter(value=0)
    assert sm.active_version == 1


async def test_commands_reply_their_return_values() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    replies = await apply(sm, log, call("add", 5), call("add"), call("add", n=-2))
    assert replies == [5, 6, 4]
    assert sm.object.value == 4
    assert await sm.applied_state() == (log_id(3), StoredMembership())


async def test_an_instance_is_the_initial_state_and_is_copied() -> None:
    start = Account(balances={"ann": 10})
    sm, log = ObjectStateMachine(start), Log()
    assert await apply(sm, log, call("transfer", "ann", "bob", 4)) == [True]
    assert sm.object.balances == {"ann": 6, "bob": 4}
    assert start.balances == {"ann": 10}


async def test_transfer_refuses_an_overdraft() -> None:
    sm, log = ObjectStateMachine(Account), Log()
    replies = await apply(
        sm,
        log,
        call("deposit", "ann", 5),
        call("transfer", "ann", "bob", 6),
        call("transfer", "ann", "bob", 5),
    )
    assert replies == [5, False, True]
    assert sm.object.balances == {"ann": 0, "bob": 5}


async def test_log_time_is_the_largest_stamp_and_log_index_the_entry_index() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    replies = await apply(
        sm, log, call("stamp", now=10.0), Blank(), call("stamp", now=7.5), call("stamp", now=12.0)
    )
    # Tuples come back as lists: replies are what a follower decodes, too.
    assert replies == [(10.0, 1), None, (10.0, 3), (12.0, 4)]
    assert (sm.object.log_time, sm.object.log_index) == (12.0, 4)


async def test_membership_entries_are_recorded() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    assert await apply(sm, log, Blank(), MembershipChange(MEMBERSHIP), call("add")) == [
        None,
        None,
        1,
    ]
    assert await sm.applied_state() == (log_id(3), StoredMembership(log_id(2), MEMBERSHIP))


async def test_a_payload_that_is_not_a_call_is_answered_none_and_counted() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    assert await apply(sm, log, "junk", Upgrade("2"), call("add")) == [None, None, 1]  # type: ignore[arg-type]
    assert sm.rejected == 2
    assert sm.object.log_index == 3


# -- errors: each is a reply, the same on every replica ----------------------------------------


async def test_unknown_method_is_an_error_reply() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    (reply,) = await apply(sm, log, call("get"))  # a query is not a command
    assert reply == ErrorReply("unknown_method", "", "Counter has no command 'get' at version 1")
    with pytest.raises(UnknownMethodError, match="no command 'get'"):
        raise reply.to_exception()


async def test_bad_arguments_are_an_error_reply_and_change_nothing() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    (reply,) = await apply(sm, log, call("add", 1, 2))
    assert reply == ErrorReply("bad_arguments", "TypeError", "add: too many positional arguments")
    assert isinstance(reply.to_exception(), BadArgumentsError)
    assert sm.object.value == 0


async def test_a_method_that_raises_replies_its_error_and_keeps_its_effects() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    (reply,) = await apply(sm, log, call("fail", "no"))
    assert reply == ErrorReply("method_raised", "ValueError", "no")
    error = reply.to_exception()
    assert isinstance(error, ReplicatedMethodError)
    assert (error.type_name, error.message, str(error)) == ("ValueError", "no", "ValueError: no")
    assert sm.object.value == 100


async def test_a_version_not_active_is_an_error_reply() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    (reply,) = await apply(sm, log, call("add", version=2))
    assert reply == ErrorReply(
        "version_not_active",
        "",
        "add: version 2 is not active (the active version is 1; run upgrade first)",
    )
    assert isinstance(reply.to_exception(), VersionNotActiveError)


async def test_an_upgrade_to_a_version_this_code_lacks_stops_the_node() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    with pytest.raises(UnknownVersionError, match="code up to version 1, asked for version 2"):
        await apply(sm, log, Upgrade(2))
    assert sm.active_version == 1


def test_an_initial_version_this_code_lacks_is_refused() -> None:
    with pytest.raises(UnknownVersionError):
        ObjectStateMachine(Counter, initial_version=2)
    with pytest.raises(TypeError):
        ObjectStateMachine(Counter, initial_version="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ObjectStateMachine(int)  # type: ignore[type-var]


def test_make_call_refuses_arguments_that_cannot_be_encoded() -> None:
    from openraft_trio import InvalidRequest

    with pytest.raises(InvalidRequest, match="cannot encode the arguments of 'add'"):
        make_call("add", [object()])


def test_call_round_trips_through_the_codec_with_registered_arguments() -> None:
    @attrs.frozen
    class Money:
        cents: int

    codec.register_data_type(Money, "tests.objects.Money")
    original = Call("pay", 2, (Money(5), (1, 2)), 3.5, {"memo": "x"})
    decoded = codec.decode_payload(codec.encoded_data(original))
    assert decoded == Call("pay", 2, (Money(5), [1, 2]), 3.5, {"memo": "x"})


@pytest.mark.parametrize(
    "raw",
    [
        ["add"],
        [1, None, [], 0.0, {}],
        ["add", "1", [], 0.0, {}],
        ["add", None, [], "now", {}],
        ["add", None, {}, 0.0, {}],
        ["add", None, [], 0.0, {1: [None, 2]}],
    ],
)
def test_malformed_calls_do_not_decode(raw: Any) -> None:
    with pytest.raises(codec.PayloadDecodeError):
        codec.decode_payload(cbor2.dumps(["objects.Call", raw]))


# -- declaring ----------------------------------------------------------------------------------


def test_declaration_errors() -> None:
    with pytest.raises(TypeError, match="two implementations of 'add' version 1"):

        class Twice(ReplicatedObject):
            @replicated
            def add(self) -> None: ...

            @replicated(name="add")
            def add_again(self) -> None: ...

    with pytest.raises(TypeError, match="both @replicated and @query"):

        class Both(ReplicatedObject):
            @replicated
            def get(self) -> None: ...

            @query
            def read(self) -> None: ...

            read.__openraft_trio_object_method__ = attrs.evolve(  # type: ignore[attr-defined]
                read.__openraft_trio_object_method__,
                name="get",  # type: ignore[attr-defined]
            )

    with pytest.raises(TypeError, match="synchronous"):

        class Async(ReplicatedObject):
            @replicated
            async def add(self) -> None: ...

    with pytest.raises(ValueError, match="at least 1"):
        replicated(version=0)
    with pytest.raises(TypeError, match="must be an int"):
        replicated(version=True)
    with pytest.raises(ValueError, match="public identifier"):
        replicated(name="_hidden")


def test_mutable_defaults_are_copied_per_instance() -> None:
    first, second = Account(), Account()
    first.deposit("ann", 1)
    assert second.balances == {}


def test_a_subclass_inherits_fields_and_methods() -> None:
    class Bigger(Counter):
        extra: str = "x"

        @replicated
        def double(self) -> int:
            self.value *= 2
            return self.value

    assert set(Bigger.object_methods.commands) == {"add", "fail", "stamp", "double"}
    assert Bigger(value=2, extra="y").double() == 4


# -- snapshots ----------------------------------------------------------------------------------


async def test_snapshot_round_trip_restores_fields_log_position_and_version() -> None:
    sm, log = ObjectStateMachine(Account), Log()
    await apply(sm, log, MembershipChange(MEMBERSHIP), call("deposit", "ann", 7, now=5.0))
    snapshot = await sm.build_snapshot()
    assert snapshot.meta == SnapshotMeta(
        log_id(2), StoredMembership(log_id(1), MEMBERSHIP), "1-2-1"
    )
    assert await sm.get_current_snapshot() == snapshot

    other = ObjectStateMachine(Account)
    await other.install_snapshot(snapshot.meta, snapshot.data)
    assert other.object == Account(balances={"ann": 7})
    assert (other.object.log_time, other.object.log_index) == (5.0, 2)
    assert await other.applied_state() == await sm.applied_state()
    assert await other.get_current_snapshot() == snapshot
    assert other.state() == sm.state()


async def test_install_ignores_a_snapshot_not_newer_than_applied() -> None:
    sm, log = ObjectStateMachine(Counter), Log()
    await apply(sm, log, call("add", 1))
    old = await sm.build_snapshot()
    await apply(sm, log, call("add", 1))
    await sm.install_snapshot(old.meta, old.data)
    assert sm.object.value == 2
    assert await sm.applied_state() == (log_id(2), StoredMembership())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not valid CBOR"),
        (cbor2.dumps({"format": 99}), "format 1"),
        (cbor2.dumps([1]), "format 1"),
    ],
)
async def test_install_refuses_malformed_data(data: bytes, message: str) -> None:
    sm = ObjectStateMachine(Counter)
    meta = SnapshotMeta(log_id(3), StoredMembership(), "x")
    with pytest.raises(MalformedSnapshotError, match=message):
        await sm.install_snapshot(meta, data)
    assert sm.last_applied is None


async def _counter_snapshot_document() -> tuple[SnapshotMeta, dict[str, Any]]:
    sm, log = ObjectStateMachine(Counter), Log()
    await apply(sm, log, call("add", 3))
    snapshot = await sm.build_snapshot()
    return snapshot.meta, cbor2.loads(snapshot.data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"object": "Account"}, "snapshot of 'Account', not of Counter"),
        ({"fields": {"value": "three"}}, "do not fit Counter"),
        ({"log_index": "1"}, "malformed"),
        ({"last_log_id": [1, 1, 9]}, "but its meta says"),
        ({"last_log_id": "x"}, "a log id is"),
        ({"last_membership": [None, [[[1]], {1: ["a", {}]}]]}, "disagree on the last membership"),
    ],
)
async def test_install_refuses_data_that_disagrees(change: dict[str, Any], message: str) -> None:
    meta, document = await _counter_snapshot_document()
    sm = ObjectStateMachine(Counter)
    with pytest.raises(MalformedSnapshotError, match=message):
        await sm.install_snapshot(meta, cbor2.dumps({**document, **change}))
    assert sm.last_applied is None
    assert sm.object == Counter()


async def test_install_refuses_a_snapshot_of_a_version_this_code_lacks() -> None:
    meta, document = await _counter_snapshot_document()
    sm = ObjectStateMachine(Counter)
    with pytest.raises(UnknownVersionError):
        await sm.install_snapshot(meta, cbor2.dumps({**document, "active_version": 2}))
    assert sm.last_applied is None


async def test_a_type_error_raised_inside_a_method_is_not_bad_arguments() -> None:
    class Strict(ReplicatedObject):
        total: int = 0

        @replicated
        def add(self, n: Any) -> int:
            self.total += 1
            return self.total + n  # a str: TypeError from inside the method

    sm, log = ObjectStateMachine(Strict), Log()
    replies = await apply(sm, log, call("add", "x"), call("add"), call("add", 1))
    assert replies == [
        ErrorReply(
            "method_raised", "TypeError", "unsupported operand type(s) for +: 'int' and 'str'"
        ),
        ErrorReply("bad_arguments", "TypeError", "add: missing a required argument: 'n'"),
        3,
    ]
    assert sm.object.total == 2
