"""Large values (issue 11, defect 6): a write over ``Config.max_entry_bytes`` is refused
with ``PayloadTooLarge`` before anything is logged, AppendEntries requests stay within
``Config.max_payload_bytes``, and no error message embeds a whole value."""

from __future__ import annotations

from typing import Any

import pytest

import openraft_trio as raft
from openraft_trio import codec
from openraft_trio.kv import AmbiguousOutcome, KvService, Set
from openraft_trio.testing import Cluster, open_cluster

BIG = 10 * 1024 * 1024  # 10 MB: the size the issue measured str() of an error at
SHORT = 1024  # what "short" means for an error message


async def test_a_write_over_max_entry_bytes_is_refused_before_anything_is_logged(
    autojump_clock: Any,
) -> None:
    config = raft.Config(cluster_name="test", max_entry_bytes=4096)
    async with open_cluster(3, seed=11, config=config) as c:
        leader = c.nodes[await c.wait_for_leader()]
        before = leader.metrics.last_log_index
        assert before is not None
        with pytest.raises(raft.PayloadTooLarge) as info:
            await leader.client_write(Set("k", b"x" * 5000))
        error = info.value
        assert isinstance(error, raft.InvalidRequest)
        assert error.limit == 4096
        assert error.size > 5000
        assert "4096" in str(error)
        assert "max_entry_bytes" in str(error)
        assert leader.metrics.last_log_index == before  # nothing was appended
        # A batch: the oversized item is refused on its own; the others commit.
        outcomes = await leader.client_write_many(
            [Set("a", 1), Set("big", b"y" * 5000), Set("b", 2)], return_exceptions=True
        )
        assert isinstance(outcomes[1], raft.PayloadTooLarge)
        assert [o.log_id.index for o in (outcomes[0], outcomes[2])] == [before + 1, before + 2]
        with pytest.raises(raft.PayloadTooLarge):
            await leader.client_write_many([Set("c", 3), Set("big", b"y" * 5000)])
        assert leader.metrics.last_log_index == before + 2
        # Just under the limit is fine, and the node keeps working.
        resp = await leader.client_write(Set("k", b"x" * 4000))
        await c.wait_applied(resp.log_id.index)
        for sm in c.state_machines.values():
            assert sm.data["k"] == b"x" * 4000
            assert "big" not in sm.data


async def test_error_messages_never_embed_a_whole_value(autojump_clock: Any) -> None:
    big = "v" * BIG
    errors: list[BaseException] = []
    async with open_cluster(1, seed=12) as c:
        node = c.nodes[await c.wait_for_leader()]
        calls: list[Any] = [
            lambda: node.client_write(Set("k", big)),
            lambda: node.trigger.purge_log(big),  # type: ignore[arg-type]
            lambda: node.trigger.transfer_leader(big),  # type: ignore[arg-type]
            lambda: node.ensure_linearizable(big),  # type: ignore[arg-type]
        ]
        kv = KvService(
            node, c.state_machines[1], addr="127.0.0.1:7001", peers={}, transport_stats=dict
        )
        calls += [
            lambda: kv.handle("put", [big, 1]),
            lambda: kv.handle("get", ["k", big]),
            lambda: kv.handle("add_learner", [big, "127.0.0.1:1"]),
            lambda: kv.handle("add_learner", [2, big]),
            lambda: kv.handle(big, []),
        ]
        for call in calls:
            with pytest.raises(raft.RaftError) as info:
                await call()
            errors.append(info.value)
    errors.append(AmbiguousOutcome("put", ["k", big], "connection lost"))
    with pytest.raises(raft.ConfigError) as config_error:
        raft.Config(heartbeat_interval=big).validate()  # type: ignore[arg-type]
    errors.append(config_error.value)
    with pytest.raises(codec.DecodeError) as decode_error:
        codec.decode_data(["no.such.tag", big])
    errors.append(decode_error.value)
    with pytest.raises(raft.InvalidRequest) as encode_error:
        codec.check_encodable([big, object()])
    errors.append(encode_error.value)
    for error in errors:
        assert len(str(error)) < SHORT, (type(error).__name__, str(error)[:200])


def _payload_bytes(req: raft.AppendEntriesRequest) -> int:
    return sum(codec.entry_size(e) for e in req.entries)


class _Recorder:
    """Stands in for a node on the Router: records the AppendEntries it receives."""

    def __init__(self, target: raft.Raft, seen: list[raft.AppendEntriesRequest]) -> None:
        self._target = target
        self._seen = seen

    async def append_entries(self, req: raft.AppendEntriesRequest) -> Any:
        if req.entries:
            self._seen.append(req)
        return await self._target.append_entries(req)

    def post_append_entries(self, req: raft.AppendEntriesRequest, on_done: Any) -> bool:
        # The Router's pipelined path (a fault-free link) hands requests over this way.
        taken: bool = self._target.post_append_entries(req, on_done)
        if taken and req.entries:
            self._seen.append(req)
        return taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _record_appends(c: Cluster) -> list[raft.AppendEntriesRequest]:
    seen: list[raft.AppendEntriesRequest] = []
    for node_id, node in c.nodes.items():
        c.router.add(node_id, _Recorder(node, seen))
    return seen


async def test_append_entries_stay_within_max_payload_bytes(autojump_clock: Any) -> None:
    budget = 4096
    config = raft.Config(cluster_name="test", max_payload_bytes=budget)
    async with open_cluster(3, seed=13, config=config) as c:
        leader = c.nodes[await c.wait_for_leader()]
        seen = _record_appends(c)
        values = [Set(f"k{i}", b"x" * 1000) for i in range(40)]
        values.insert(20, Set("huge", b"h" * 3 * budget))  # over the budget: goes alone
        resps = await leader.client_write_many(values)
        await c.wait_applied(resps[-1].log_id.index)
        entries = [e for req in seen for e in req.entries]
        assert {e.index for e in entries} >= {r.log_id.index for r in resps}
        alone = 0
        for req in seen:
            if _payload_bytes(req) > budget:
                assert len(req.entries) == 1, [e.index for e in req.entries]
                alone += 1
            assert len(req.entries) <= config.max_payload_entries
        assert alone >= 2  # the huge entry went alone, to each follower
        assert max(len(req.entries) for req in seen) >= 3  # small ones are still batched
