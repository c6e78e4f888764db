"""KvService (the client API of a node) on the in-process Router, under MockClock: argument
checks, replies, the leader hint, and batches of requests that arrived together."""

from __future__ import annotations

from typing import Any

import pytest

from openraft_trio import ForwardToLeader, InvalidRequest
from openraft_trio.kv import KvService
from openraft_trio.testing import Cluster, open_cluster


def service(cluster: Cluster, node_id: int) -> KvService:
    return KvService(
        cluster.nodes[node_id],
        cluster.state_machines[node_id],
        addr=f"127.0.0.1:{7000 + node_id}",
        peers={},
        transport_stats=dict,
    )


async def test_requests_and_replies(autojump_clock: Any) -> None:
    async with open_cluster(3, seed=3) as c:
        kv = service(c, await c.wait_for_leader())
        assert await kv.handle("put", ["k", "v1"]) == {"prev": None, "index": 2}
        assert await kv.handle("put", ["k", "v2"]) == {"prev": "v1", "index": 3}
        assert await kv.handle("get", ["k", False]) == {"value": "v2", "index": 3}
        assert await kv.handle("get", ["k", False, "LeaseRead"]) == {"value": "v2", "index": 3}
        assert (await kv.handle("cas", ["k", "v1", "x"]))["swapped"] is False
        assert await kv.handle("cas", ["k", "v2", "x"]) == {
            "swapped": True,
            "value": "x",
            "index": 5,
        }
        assert await kv.handle("delete", ["k"]) == {"prev": "x", "index": 6}
        assert await kv.handle("get", ["k", True]) == {"value": None, "index": 6}
        status = await kv.handle("status", [])
        assert (status["state"], status["voters"], status["keys"]) == ("LEADER", [1, 2, 3], 0)
        assert status["log_reversions"] == {}


async def test_status_shows_a_follower_that_lost_its_log(autojump_clock: Any) -> None:
    async with open_cluster(3, seed=4) as c:
        lid = await c.wait_for_leader()
        kv = service(c, lid)
        await kv.handle("put", ["k", "v"])
        wiped = min(n for n in c.node_ids if n != lid)
        await c.wait_applied(2, nodes=[wiped])
        await c.crash(wiped)
        c.wipe(wiped)
        await c.restart(wiped)
        await c.nodes[lid].wait(10).metrics(
            lambda m: m.replication_status is not None
            and m.replication_status[wiped].halted,
            "replication halted",
        )
        status = await kv.handle("status", [])
        assert status["log_reversions"] == {
            wiped: {"count": 1, "reverted_to": 0, "halted": True}
        }
        assert status["replication"][wiped] is None


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("nope", [], "unknown operation"),
        ("put", ["k"], "put takes 2 arguments, got 1"),
        ("put", [1, "v"], "a key is a non-empty str"),
        ("put", ["", "v"], "a key is a non-empty str"),
        ("get", ["k", "yes"], "stale must be a bool"),
        ("get", ["k", False, "Fast"], "policy must be one of 'ReadIndex', 'LeaseRead'"),
        ("add_learner", [4, "nowhere"], "host:port"),
        ("change_membership", [[]], "non-empty list"),
        ("init", [{"a": "127.0.0.1:1"}], "node id"),
    ],
)
async def test_bad_arguments_are_refused(
    autojump_clock: Any, op: str, args: list[Any], message: str
) -> None:
    async with open_cluster(3, seed=3) as c:
        leader = await c.wait_for_leader()
        kv = service(c, leader)
        with pytest.raises(InvalidRequest, match=message):
            await kv.handle(op, args)
        # Nothing was written by the refused request.
        assert c.state_machines[leader].data == {}


async def test_a_batch_gets_one_outcome_per_request_in_order(autojump_clock: Any) -> None:
    async with open_cluster(3, seed=4) as c:
        leader = await c.wait_for_leader()
        kv = service(c, leader)
        results = await kv.handle_batch(
            [
                ("put", ["a", 1]),
                ("put", [5, 1]),  # bad key: refused alone
                ("cas", ["a", 1, 2]),
                ("status", []),
                ("put", ["b"]),  # missing value: refused alone
                ("delete", ["a"]),
                ("nope", []),
            ]
        )
        assert results[0] == {"prev": None, "index": 2}
        assert isinstance(results[1], InvalidRequest)
        # The writes of one batch are consecutive entries, applied in order.
        assert results[2] == {"swapped": True, "value": 2, "index": 3}
        assert results[3]["state"] == "LEADER"
        assert isinstance(results[4], InvalidRequest)
        assert results[5] == {"prev": 2, "index": 4}
        assert isinstance(results[6], InvalidRequest)
        assert c.state_machines[leader].data == {}


async def test_a_batch_on_a_follower_is_forwarded(autojump_clock: Any) -> None:
    async with open_cluster(3, seed=4) as c:
        leader = await c.wait_for_leader()
        follower = next(n for n in c.nodes if n != leader)
        await c.nodes[follower].wait(5).current_leader(leader)
        results = await service(c, follower).handle_batch([("put", ["a", 1]), ("put", ["b", 2])])
        for r in results:
            assert isinstance(r, ForwardToLeader)
            assert r.leader_id == leader
            assert not r.maybe_committed
        assert c.state_machines[follower].data == {}


async def test_a_kv_node_serves_client_batches_through_its_batch_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The node's server gets the service's batch handler: client requests that arrive
    together on a connection become one Raft batch (it was accepted and then dropped, so
    batching was never on)."""
    from openraft_trio.kv import _service

    seen: dict[str, Any] = {}

    async def fake_serve_raft(raft: Any, host: str, port: int, **kwargs: Any) -> None:
        seen.update(kwargs)

    async def handle(op: str, args: list[Any]) -> Any:
        return None

    async def handle_batch(requests: list[tuple[str, list[Any]]]) -> list[Any]:
        return []

    monkeypatch.setattr(_service, "serve_raft", fake_serve_raft)
    options = _service.KvNodeOptions(node_id=1, listen="127.0.0.1:0", data_dir=None)
    await _service._serve(None, "127.0.0.1", 0, options, handle, handle_batch)  # type: ignore[arg-type]
    assert seen["client_handler"] is handle
    assert seen["client_batch_handler"] is handle_batch
