"""``Raft``, ``ClientWriteResponse``, ``Entry``, ``Normal`` and ``RaftStateMachine`` are
generic in the state machine's command and reply types for type checkers (mypy checks
``check_generics.py``), and unchanged at run time: the same classes, the same encodings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

import openraft_trio as raft
from openraft_trio import codec
from openraft_trio.network._wire import decode_message, encode_message

from .check_generics import Deposit, Receipt

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

codec.register_data_type(Deposit, "test_generics.Deposit")
codec.register_data_type(Receipt, "test_generics.Receipt")


def lid(index: int) -> raft.LogId:
    return raft.LogId(raft.LeaderId(1, 1), index)


def test_mypy_infers_the_command_and_reply_types_from_the_state_machine() -> None:
    # mypy is in the test extra (and ``nox -s typecheck`` checks the same file); only an
    # environment installed without that extra skips this.
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (the test extra)")
    stdout, stderr, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), str(HERE / "check_generics.py")]
    )
    assert status == 0, stdout + stderr
    assert "Success" in stdout


def test_the_generic_classes_are_the_same_classes_at_run_time() -> None:
    response = raft.ClientWriteResponse[Receipt](lid(3), Receipt(10))
    assert type(response) is raft.ClientWriteResponse
    assert response == raft.ClientWriteResponse(lid(3), Receipt(10))
    payload = raft.Normal[Deposit](Deposit("a", 1))
    assert type(payload) is raft.Normal
    assert payload == raft.Normal(Deposit("a", 1))
    assert hash(payload) == hash(raft.Normal(Deposit("a", 1)))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        payload._data = 2  # type: ignore[misc]
    entry = raft.Entry[Deposit](lid(1), payload)
    assert type(entry) is raft.Entry
    assert entry == raft.Entry(lid(1), raft.Normal(Deposit("a", 1)))
    assert raft.Raft[Deposit, Receipt].__origin__ is raft.Raft  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="no public constructor"):
        raft.Raft[Deposit, Receipt]()


@pytest.mark.parametrize(
    "data", [Receipt(5), None, [True, "v", {"k": 1}]], ids=["attrs", "none", "plain"]
)
def test_a_client_write_responses_data_round_trips_through_the_codec(data: Any) -> None:
    response = raft.ClientWriteResponse[Any](lid(4), data)
    back = codec.decode_payload(codec.encoded_data(response.data))
    assert raft.ClientWriteResponse(response.log_id, back) == response


def test_typed_entries_round_trip_through_the_codec_and_the_wire() -> None:
    entries = (
        raft.Entry[Deposit](lid(1), raft.Normal(Deposit("a", 1))),
        raft.Entry(lid(2), raft.Blank()),
        raft.Entry(lid(3), raft.Normal(Receipt(1))),
    )
    for entry in entries:
        assert codec.loads(codec.dumps(entry), raft.Entry) == entry
    request = raft.AppendEntriesRequest(
        vote=raft.Vote(raft.LeaderId(1, 1), committed=True),
        prev_log_id=None,
        entries=entries,
        leader_commit=lid(1),
    )
    assert decode_message(encode_message("append", 9, request)) == ("append", 9, request)
